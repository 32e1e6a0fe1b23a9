"""Reads on an event loop (``Crm.reads``, as the HTTP API's keyed reads run): the same
answers as the blocking reads on every store, figures by hand for a small history;
on PostgreSQL, a waiting query leaves the loop free, and a connection the server
ended is replaced before the next read.

    Ann   registered 2024-01-10 with phone +49 30 1234567; buys 2024-02-01 (100) -> new
          from 02-01, dead from 2024-05-01 + 1 µs (more than 90 days without a purchase).
    Bob   registered 2024-02-01; lost 2024-03-01 (price) without paying -> dead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import psycopg
import pytest

from adapters import postgres
from adapters.read_models.audit import AuditFilter, AuditReadModel
from adapters.read_models.base import REBUILD_PREFIX
from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.sql import Query, Reads, Steps
from api.bootstrap import Crm
from domain.envelope import Envelope
from domain.lifecycle import Stage, StageInterval
from tests.conftest import POSTGRES_URL
from tests.story import Story, day

R = TypeVar("R")


def on_loop(crm: Crm, use: Callable[[Reads], Awaitable[R]]) -> R:
    """``use`` the product's event-loop reads, opened and closed on a loop of its own."""

    async def run() -> R:
        async with crm.reads() as reads:
            return await use(reads)

    return asyncio.run(run())


@pytest.fixture
def history(crm: Crm, envelope: Envelope) -> dict[str, UUID]:
    story = Story(crm, envelope)
    ann = story.register("Ann", "2024-01-10", phones=("+49 30 1234567",))
    story.buy(ann, "2024-02-01", "100", "60")
    bob = story.register("Bob", "2024-02-01")
    story.lose(bob, "2024-03-01", "price")
    crm.projector().catch_up()
    return {"ann": ann, "bob": bob}


def test_keyed_reads_on_the_loop_answer_as_the_hand_worked_history_says(
    crm: Crm, history: dict[str, UUID]
) -> None:
    ann, bob = history["ann"], history["bob"]
    token = crm.users.add("reader", "auditor")
    directory = crm.model(DirectoryReadModel)
    lifecycle = crm.model(LifecycleReadModel)
    audit = crm.model(AuditReadModel)

    june = day("2024-06-01")
    assert directory.lookup_query(phone="not a phone", at=june) is None  # nothing to ask

    async def read(reads: Reads) -> dict[str, Any]:
        return {
            "card": await reads.run(directory.card_query(ann)),
            "unknown": await reads.run(directory.card_query(UUID(int=7))),
            "unknown staged": await reads.run(
                directory.staged_card_query(UUID(int=7), day("2024-03-01"))
            ),
            "bob then": [
                await reads.run(directory.staged_card_query(bob, day(when)))
                for when in ("2024-01-15", "2024-02-01", "2024-02-29", "2024-03-01")
            ],
            "by phone": [
                await reads.run(directory.lookup_query(phone="+49 (30) 123-4567", at=when))
                for when in (day("2024-03-01"), june)
            ],
            "unknown phone": await reads.run(
                directory.lookup_query(phone="+49 30 7654321", at=june)
            ),
            "intervals": await reads.run(lifecycle.intervals_query(bob)),
            "counts": await reads.run(LifecycleReadModel.counts_query(day("2024-03-02"))),
            "before": await reads.run(LifecycleReadModel.counts_query(day("2024-01-31"))),
            "page": await reads.run(audit.page_query(AuditFilter(client_id=bob), limit=1)),
            "user": await reads.run(crm.users.token_query(token)),
            "stranger": await reads.run(crm.users.token_query("crm_not-a-token")),
        }

    got = on_loop(crm, read)

    assert got["card"] is not None
    assert got["card"].name == "Ann"
    assert got["card"].purchases_count == 1
    assert got["unknown"] is None
    ann_card = directory.card(ann)
    assert got["by phone"] == [(ann_card, Stage.NEW), (ann_card, Stage.DEAD)]
    assert got["unknown phone"] is None
    assert got["unknown staged"] is None
    bob_card = directory.card(bob)
    assert got["bob then"] == [
        (bob_card, None),  # not registered yet
        (bob_card, Stage.POTENTIAL),
        (bob_card, Stage.POTENTIAL),
        (bob_card, Stage.DEAD),
    ]
    assert got["intervals"] == [
        StageInterval(Stage.POTENTIAL, day("2024-02-01"), day("2024-03-01")),
        StageInterval(Stage.DEAD, day("2024-03-01"), None, "price"),
    ]
    counts = {stage.value: 0 for stage in Stage}
    assert got["counts"] == counts | {"new": 1, "dead": 1}
    assert got["before"] == counts | {"potential": 1}  # Bob is not registered yet
    assert len(got["page"].entries) == 1
    assert got["page"].next_cursor is not None
    assert got["page"].entries[0].client_id == bob
    assert got["user"] is not None
    assert (got["user"].user_id, got["user"].role) == (
        "reader",
        "auditor",
    )
    assert got["stranger"] is None
    # and the same as the blocking reads
    assert got["card"] == directory.card(ann)
    assert got["intervals"] == lifecycle.intervals(bob)
    assert got["counts"] == lifecycle.stage_counts(day("2024-03-02"))
    assert got["page"] == audit.page(client_id=bob, limit=1)


@pytest.mark.parametrize("store", ["postgresql"])
def test_a_query_waiting_for_postgresql_leaves_the_loop_free(crm: Crm) -> None:
    lock = Query("SELECT pg_advisory_xact_lock(4242)", (), len)

    async def scenario(reads: Reads) -> list[int]:
        ticks = []
        with psycopg.connect(POSTGRES_URL) as holder:
            holder.execute("SELECT pg_advisory_xact_lock(4242)")  # held until rollback
            waiting = asyncio.create_task(reads.run(lock))
            for tick in range(20):  # the loop goes on while the read waits
                await asyncio.sleep(0.01)
                ticks.append(tick)
            assert not waiting.done()
            holder.rollback()
        assert await asyncio.wait_for(waiting, 5) == 1
        return ticks

    assert on_loop(crm, scenario) == list(range(20))


@pytest.mark.parametrize("store", ["postgresql"])
def test_a_read_connection_the_server_ended_is_replaced_before_the_next_read(crm: Crm) -> None:
    backend = Query("SELECT pg_backend_pid()", (), lambda rows: int(rows[0][0]))

    async def scenario() -> tuple[int, int]:
        reads = postgres.AsyncReads(crm.datastore, size=1)
        await reads.open()
        try:
            first = await reads.run(backend)  # the pool's only connection
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first,))
            await asyncio.sleep(0.2)  # the server's goodbye reaches the idle socket
            return first, await reads.run(backend)  # no error reaches the caller
        finally:
            await reads.close()

    first, after = asyncio.run(scenario())
    assert after != first


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_steps_on_the_loop_read_one_snapshot_and_write_nothing(crm: Crm) -> None:
    crm.db.execute("CREATE TABLE snapshot_probe (n INTEGER PRIMARY KEY)")
    crm.db.execute("INSERT INTO snapshot_probe (n) VALUES (1)")

    def counts() -> Steps[tuple[int, int]]:
        ((before,),) = yield ("SELECT COUNT(*) FROM snapshot_probe", ())
        crm.db.execute("INSERT INTO snapshot_probe (n) VALUES (2)")  # commits meanwhile
        ((after,),) = yield ("SELECT COUNT(*) FROM snapshot_probe", ())
        return int(before), int(after)

    assert on_loop(crm, lambda reads: reads.run_steps(counts())) == (1, 1)
    assert crm.db.query("SELECT COUNT(*) FROM snapshot_probe") == [(2,)]
    if crm.db.dialect == "postgresql":

        def writes() -> Steps[None]:
            yield ("INSERT INTO snapshot_probe (n) VALUES (3) RETURNING n", ())

        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            on_loop(crm, lambda reads: reads.run_steps(writes()))
        assert on_loop(crm, lambda reads: reads.run(COUNT)) == 2


COUNT = Query("SELECT COUNT(*) FROM snapshot_probe", (), lambda rows: int(rows[0][0]))


@pytest.mark.parametrize("store", ["sqlite"])
def test_a_read_model_is_made_once_per_process_and_a_rebuilds_apart(crm: Crm) -> None:
    live = crm.model(DirectoryReadModel)
    assert crm.model(DirectoryReadModel) is live
    rebuilding = crm.model(DirectoryReadModel, REBUILD_PREFIX)
    assert rebuilding is not live
    assert (live.t["cards"], rebuilding.t["cards"]) == (
        "directory_cards",
        "rebuild_directory_cards",
    )
