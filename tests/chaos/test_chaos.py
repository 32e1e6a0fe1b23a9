"""What production does to the processes, done on purpose (issue 19): every
acknowledged write is in the store exactly once, no request is answered 500, and the
read models end equal to a clean rebuild."""

from __future__ import annotations

import subprocess
import time

import psycopg
from eventsourcing.utils import get_topic

from adapters.read_models import registry
from api.demo import load_demo
from domain.client import Client
from tests.chaos.conftest import Load, Rig
from tests.conftest import OwnDatabase
from tests.e2e.server import CLI
from tests.integration.test_projector import assert_same_as_a_clean_rebuild

REGISTERED = get_topic(Client.ClientRegistered)


def registered_ids(database: OwnDatabase) -> list[str]:
    with psycopg.connect(database.url) as conn:
        rows = conn.execute(
            "SELECT originator_id FROM crm.events WHERE topic = %s", (REGISTERED,)
        ).fetchall()
    return sorted(str(row[0]) for row in rows)


def tracked(database: OwnDatabase) -> dict[str, int]:
    with psycopg.connect(database.url) as conn:
        rows = conn.execute("SELECT name, position FROM crm.projection_tracking").fetchall()
    return {str(name): int(position) for name, position in rows}


def head(database: OwnDatabase) -> int:
    with psycopg.connect(database.url) as conn:
        row = conn.execute("SELECT MAX(notification_id) FROM crm.events").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def wait_until_projected(database: OwnDatabase, *, timeout: float = 60.0) -> None:
    target = head(database)
    deadline = time.monotonic() + timeout
    while min(tracked(database).values(), default=0) < target:
        assert time.monotonic() < deadline, f"read models at {tracked(database)}, head {target}"
        time.sleep(0.1)


def server_errors(load: Load) -> dict[int, int]:
    """Answers 500 and up other than 503 (which asks for a retry)."""
    return {status: n for status, n in load.statuses.items() if status >= 500 and status != 503}


def test_every_acknowledged_write_is_stored_once_with_the_api_killed_twice(rig: Rig) -> None:
    api = rig.api()
    load = Load(api.base_url, rig.token, writers=16, per_writer=40)

    def kill_twice(load: Load) -> None:
        for share in (4, 2):
            load.wait_for_acks(load.total // share)
            api.kill()  # mid-load: some requests are cut off unanswered
            api.start()

    load.run(kill_twice)

    assert api.started == 3
    assert load.unexpected == [], load.unexpected
    assert server_errors(load) == {}
    assert len(load.acknowledged) == load.total
    # Each write once: retries of the unanswered ones recorded nothing twice.
    assert registered_ids(rig.database) == sorted(load.acknowledged.values())


def test_the_api_and_a_projector_carry_on_after_every_database_session_was_ended_twice(
    rig: Rig,
) -> None:
    api = rig.api("--no-projector")
    projector = rig.process("project")
    load = Load(api.base_url, rig.token, writers=16, per_writer=20, read_back=True)
    ended: list[int] = []

    def end_every_session_twice(load: Load) -> None:
        for share in (4, 2):
            load.wait_for_acks(load.total // share)
            ended.append(rig.database.end_sessions())

    load.run(end_every_session_twice)

    assert all(n >= 2 for n in ended), ended  # the API's and the projector's at least
    assert load.unexpected == [], load.unexpected
    assert server_errors(load) == {}, api.output()
    assert len(load.acknowledged) == load.total
    assert registered_ids(rig.database) == sorted(load.acknowledged.values())
    assert api.alive(), api.output()
    assert projector.alive(), projector.output()  # it healed by itself
    wait_until_projected(rig.database)
    with rig.product() as crm:
        (clients,) = crm.db.query("SELECT COUNT(*) FROM lifecycle_clients")[0]
        assert clients == load.total
        assert_same_as_a_clean_rebuild(crm)


def test_a_projector_killed_during_a_rebuild_resumes_and_converges(rig: Rig) -> None:
    with rig.product() as crm:
        load_demo(crm, clients_count=40)
        crm.projector().catch_up()
    store_head = head(rig.database)
    rebuild = rig.process("project", "--rebuild", "all", "--batch-size", "20")
    deadline = time.monotonic() + 60
    rebuilding: dict[str, int] = {}
    while time.monotonic() < deadline and rebuild.alive():
        rebuilding = {n: p for n, p in tracked(rig.database).items() if n.startswith("rebuild_")}
        if rebuilding and min(rebuilding.values()) > 0:
            break
        time.sleep(0.005)
    rebuild.kill()
    assert rebuilding, f"the rebuild never started:\n{rebuild.output()}"
    assert min(rebuilding.values()) < store_head, "the rebuild finished before it was killed"

    resumed = subprocess.run(  # noqa: PLW1510 - the return code is checked below, with output
        [*CLI, "project", "--rebuild", "all"],
        env=rig.environment,
        cwd=rig.directory,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert tracked(rig.database) == dict.fromkeys(registry.NAMES, store_head)  # swapped in
    with rig.product() as crm:
        assert_same_as_a_clean_rebuild(crm)
