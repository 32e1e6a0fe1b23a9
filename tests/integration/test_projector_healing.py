"""A projector that follows the store carries on by itself after the database ended
every session (as a restart or a failover does), and its read models then equal a
clean rebuild."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from pathlib import Path

from adapters.projector import follow_until_stopped, wait_for
from api.bootstrap import bootstrap
from application import clients
from domain.envelope import Envelope
from tests.conftest import OwnDatabase, make_settings
from tests.integration.test_projector import assert_same_as_a_clean_rebuild


def record(crm: object, envelope: Envelope, first: int, count: int) -> None:
    app = crm.app  # type: ignore[attr-defined]
    for n in range(first, first + count):
        client_id = app.execute(clients.RegisterClient(name=f"client {n}"), envelope).id
        app.execute(
            clients.RecordPurchase(client_id=client_id, amount=Decimal(n + 1), currency="EUR"),
            envelope,
        )


def test_a_following_projector_carries_on_after_every_session_was_ended_twice(
    own_database: OwnDatabase, tmp_path: Path, envelope: Envelope
) -> None:
    settings = make_settings("postgresql", tmp_path, database_url=own_database.url)
    with bootstrap(settings) as crm:
        stop = threading.Event()
        failures: list[BaseException] = []

        def follow() -> None:
            try:
                follow_until_stopped(crm.projector, stop, idle_wait=0.2)
            except BaseException as error:
                failures.append(error)

        follower = threading.Thread(target=follow)
        follower.start()
        try:
            record(crm, envelope, 0, 10)
            for cut in range(2):
                time.sleep(0.3)  # mid-follow: listening, or applying a batch
                assert own_database.end_sessions() >= 1
                time.sleep(0.2)
                record(crm, envelope, 10 + 10 * cut, 10)  # the writers' pool heals too
            projector = crm.projector(setup=False)
            assert wait_for(projector, projector.head(), timeout=30), failures
        finally:
            stop.set()
            follower.join(timeout=30)
        assert not follower.is_alive()
        assert failures == []
        (registered,) = crm.db.query("SELECT COUNT(*) FROM lifecycle_clients")[0]
        assert registered == 30
        assert_same_as_a_clean_rebuild(crm)
