"""The tamper-evident hash chain on real stores: an untouched store verifies; a
changed, deleted or inserted stored record breaks it at exactly its position; the
links do not depend on batching or rebuilds; `crm audit verify` and `crm audit head`."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.projector import Projector, rebuild
from adapters.read_models.base import SqlReadModel
from adapters.read_models.chain import (
    CHANGED,
    MISSING,
    UNLINKED,
    ZERO_LINK,
    ChainReadModel,
    canonical,
    next_link,
    verify,
)
from api.bootstrap import Crm
from api.demo import load_demo
from application import clients
from domain.envelope import Envelope
from tests.conftest import fresh_product

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


@pytest.fixture(params=["sqlite", "postgresql"])
def chained(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Crm]:
    """A store with a demo history, fully chained."""
    with fresh_product(request.param, tmp_path) as crm:
        load_demo(crm, clients_count=15)
        crm.projector(["chain"]).catch_up()
        yield crm


def position_column(crm: Crm) -> str:
    return "notification_id" if crm.db.dialect == "postgresql" else "rowid"


def tamper(crm: Crm, sql: str, position: int, *values: object) -> None:
    """Run ``UPDATE events SET …`` or ``DELETE FROM events`` on the stored event at
    ``position``, directly in SQL (``values`` fill the ``%s`` of ``sql``)."""
    crm.db.execute(f"{sql} WHERE {position_column(crm)} = %s", (*values, position))


def links(crm: Crm, prefix: str = "") -> list[tuple[int, str]]:
    table = ChainReadModel.physical("links", prefix)
    rows = crm.db.query(f"SELECT position, link FROM {table} ORDER BY position")
    return [(int(p), str(link)) for p, link in rows]


def expected_links(crm: Crm) -> list[tuple[int, str]]:
    """The chain computed here, independently, from the recorder's notifications."""
    previous, result = ZERO_LINK, []
    for n in crm.app.recorder.select_notifications(start=1, limit=1_000_000):
        record = canonical(n.id, n.originator_id, n.originator_version, n.topic, n.state)
        previous = next_link(previous, record)
        result.append((n.id, previous.hex()))
    return result


def head(crm: Crm) -> int:
    return crm.app.recorder.max_notification_id() or 0


# ---------------------------------------------------------------- untouched


def test_an_untouched_store_verifies_on_every_store(crm: Crm) -> None:
    load_demo(crm, clients_count=5)
    crm.projector(["chain"]).catch_up()
    report = verify(crm.db, crm.app.recorder, page_size=7)
    assert report.ok, report
    assert (report.checked, report.head_position, report.unchained) == (head(crm), head(crm), 0)
    assert links(crm) == expected_links(crm)
    assert report.head_link == expected_links(crm)[-1][1]


def test_events_not_chained_yet_are_counted_not_an_error(chained: Crm, envelope: Envelope) -> None:
    before = head(chained)
    chained.app.execute(clients.RegisterClient(name="Late"), envelope)
    chained.app.execute(clients.RegisterClient(name="Later"), envelope)
    report = verify(chained.db, chained.app.recorder, page_size=10)
    assert report.ok, report
    added = head(chained) - before
    assert added >= 2
    assert (report.checked, report.head_position, report.unchained) == (before, before, added)
    chained.projector(["chain"]).catch_up()
    assert links(chained) == expected_links(chained)


def test_an_empty_chain_verifies_nothing_and_counts_every_event_unchained(
    crm: Crm,
) -> None:
    crm.projector(["lifecycle"]).catch_up()  # the chain's table does not even exist yet
    Projector(crm.app, crm.db, [ChainReadModel(crm.db)]).setup()
    report = verify(crm.db, crm.app.recorder)
    assert report.ok, report
    assert (report.checked, report.head_position, report.head_link) == (0, 0, ZERO_LINK.hex())
    assert report.unchained == head(crm)


# ---------------------------------------------------------------- tampering


def where(crm: Crm, spot: str) -> int:
    return {"first": 1, "middle": head(crm) // 2, "last": head(crm)}[spot]


@pytest.mark.parametrize("spot", ["first", "middle", "last"])
def test_changing_one_stored_state_breaks_the_chain_at_exactly_its_position(
    chained: Crm, spot: str
) -> None:
    position = where(chained, spot)
    column = position_column(chained)
    ((state,),) = chained.db.query(f"SELECT state FROM events WHERE {column} = %s", (position,))
    flipped = bytes(state[:-1]) + bytes([state[-1] ^ 1])  # one bit, same length
    tamper(chained, "UPDATE events SET state = %s", position, flipped)
    report = verify(chained.db, chained.app.recorder, page_size=10)
    assert (report.first_broken_position, report.reason) == (position, CHANGED)
    assert report.checked == position - 1


@pytest.mark.parametrize("spot", ["first", "middle", "last"])
def test_deleting_one_stored_event_breaks_the_chain_at_exactly_its_position(
    chained: Crm, spot: str
) -> None:
    position = where(chained, spot)
    tamper(chained, "DELETE FROM events", position)
    report = verify(chained.db, chained.app.recorder, page_size=10)
    assert (report.first_broken_position, report.reason) == (position, MISSING)


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE events SET topic = topic || 'x'",
        "UPDATE events SET originator_version = originator_version + 1000",
    ],
    ids=["topic", "version"],
)
def test_changing_the_topic_or_version_of_one_event_breaks_the_chain_there(
    chained: Crm, change: str
) -> None:
    position = head(chained) // 3
    tamper(chained, change, position)
    report = verify(chained.db, chained.app.recorder, page_size=10)
    assert (report.first_broken_position, report.reason) == (position, CHANGED)


def test_moving_an_event_to_another_aggregate_breaks_the_chain_there(chained: Crm) -> None:
    position = head(chained) // 3
    other = uuid.uuid4()
    tamper(chained, "UPDATE events SET originator_id = %s", position, other)
    report = verify(chained.db, chained.app.recorder, page_size=10)
    assert (report.first_broken_position, report.reason) == (position, CHANGED)


def test_an_unreadable_stored_value_is_reported_not_a_crash(tmp_path: Path) -> None:
    with fresh_product("sqlite", tmp_path) as crm:
        load_demo(crm, clients_count=3)
        crm.projector(["chain"]).catch_up()
        tamper(crm, "UPDATE events SET originator_id = 'not a uuid', state = 'text'", 5)
        report = verify(crm.db, crm.app.recorder)
        assert (report.first_broken_position, report.reason) == (5, CHANGED)


def test_an_event_whose_link_was_removed_breaks_the_chain_there(chained: Crm) -> None:
    position = head(chained) // 2
    chained.db.execute("DELETE FROM chain_links WHERE position = %s", (position,))
    report = verify(chained.db, chained.app.recorder, page_size=10)
    assert (report.first_broken_position, report.reason) == (position, UNLINKED)


def test_a_rewritten_stored_link_breaks_the_chain_there(chained: Crm) -> None:
    position = head(chained) // 2
    chained.db.execute(
        "UPDATE chain_links SET link = %s WHERE position = %s", ("00" * 32, position)
    )
    report = verify(chained.db, chained.app.recorder, page_size=10)
    assert (report.first_broken_position, report.reason) == (position, CHANGED)


# ------------------------------------------------------- a pure function


@BACKENDS
def test_the_links_do_not_depend_on_how_the_projector_batched(backend: str, tmp_path: Path) -> None:
    with fresh_product(backend, tmp_path) as crm:
        load_demo(crm, clients_count=15)
        one = ChainReadModel(crm.db, prefix="one_")
        many = ChainReadModel(crm.db, prefix="many_")
        for model, size in ((one, 1), (many, 1000)):
            projector = Projector(crm.app, crm.db, [model], batch_size=size)
            projector.setup()
            projector.catch_up()
        assert links(crm, "one_") == links(crm, "many_") == expected_links(crm)
        assert len(links(crm, "one_")) == head(crm)


def test_a_rebuild_of_the_chain_gives_the_same_links(chained: Crm, envelope: Envelope) -> None:
    chained.app.execute(clients.RegisterClient(name="After"), envelope)
    chained.projector(["chain"]).catch_up()
    before = links(chained)

    def make(prefix: str) -> SqlReadModel:
        return chained.read_model("chain", prefix)

    assert rebuild(chained.app, chained.db, make, batch_size=13) == head(chained)
    assert links(chained) == before == expected_links(chained)
    assert verify(chained.db, chained.app.recorder).ok


def test_the_chain_rides_along_with_the_other_read_models(chained: Crm) -> None:
    """In one projector with decoded models (at 0), the chain (half-way) still gets
    every later event exactly once."""
    half = head(chained) // 2 // 17 * 17 + 5  # inside a batch of 17
    chained.db.execute("DELETE FROM chain_links WHERE position > %s", (half,))
    chained.db.execute("UPDATE projection_tracking SET position = %s WHERE name = 'chain'", (half,))
    projector = chained.projector()
    projector.batch_size = 17
    projector.catch_up()
    assert links(chained) == expected_links(chained)


# -------------------------------------------------------------------- CLI


def run_cli(crm: Crm, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    settings = crm.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update(
        CRM_DATABASE_URL=settings.database_url,
        CRM_DATABASE_SCHEMA=settings.database_schema,
        CRM_MASTER_KEY=settings.master_key or "",
        CRM_KEY_FILE=settings.key_file,
        CRM_LOG_LEVEL="warning",
        COLUMNS="80",
    )
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@BACKENDS
def test_crm_audit_verify_and_head_on_the_command_line(backend: str, tmp_path: Path) -> None:
    with fresh_product(backend, tmp_path) as crm:
        load_demo(crm, clients_count=15)  # not chained yet: the commands catch up first
        n = head(crm)
        _, link = expected_links(crm)[-1]
        verified = run_cli(crm, tmp_path, "audit", "verify")
        assert verified.returncode == 0, verified.stderr
        assert f"verified {n} events; head position {n}, link {link}" in verified.stdout
        anchored = run_cli(crm, tmp_path, "audit", "head")
        assert anchored.returncode == 0, anchored.stderr
        assert anchored.stdout.split() == [str(n), link]
        position = n // 2
        tamper(crm, "UPDATE events SET topic = topic || 'x'", position)
        broken = run_cli(crm, tmp_path, "audit", "verify")
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert f"chain broken at position {position}: {CHANGED}" in " ".join(broken.stderr.split())
