"""PostgreSQL connections: the pool's checkout check (a connection the server ended
is replaced before anyone uses it; one in steady use is not pinged on every
checkout), and processes that start at once on a new schema."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import OperationalError
from psycopg_pool import ConnectionPool

from adapters import postgres
from adapters.postgres import ConnectionCheck, SchemaDatastore
from adapters.sql import PostgresDatabase
from api.bootstrap import Crm, bootstrap
from tests.conftest import POSTGRES_URL, OwnDatabase, make_settings


@pytest.fixture
def datastore(postgres_schema: str) -> Iterator[SchemaDatastore]:
    store = postgres.connect(POSTGRES_URL, schema=postgres_schema, pool_size=1)
    try:
        yield store
    finally:
        store.close()


def backend_pid(db: PostgresDatabase) -> int:
    return int(db.query("SELECT pg_backend_pid()")[0][0])


def test_a_connection_the_server_ended_is_replaced_before_the_next_query(
    datastore: SchemaDatastore,
) -> None:
    db = PostgresDatabase(datastore)
    first = backend_pid(db)  # the pool's only connection
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    time.sleep(0.2)  # the server's goodbye reaches the idle socket

    assert db.query("SELECT 1") == [(1,)]  # no error reaches the caller
    assert backend_pid(db) != first


def test_a_connection_in_steady_use_is_pinged_only_when_idle_too_long(
    datastore: SchemaDatastore, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings: list[object] = []
    real_ping = ConnectionPool.check_connection
    monkeypatch.setattr(
        ConnectionPool, "check_connection", lambda conn: (pings.append(conn), real_ping(conn))
    )
    datastore.pool._usable = ConnectionCheck(idle_seconds=0.3)
    db = PostgresDatabase(datastore)

    db.query("SELECT 1")  # first sight of this connection: pinged
    for _ in range(20):
        db.query("SELECT 1")
    assert len(pings) == 1

    time.sleep(0.4)
    db.query("SELECT 1")
    assert len(pings) == 2


def test_products_starting_at_once_on_a_new_schema_all_start_and_agree(
    postgres_schema: str, tmp_path: Path
) -> None:
    """As API workers and a projector starting together on a new database (without
    the schema lock, PostgreSQL refused the concurrent table creations of every one
    of ten such starts)."""
    settings = make_settings("postgresql", tmp_path, database_schema=postgres_schema)
    barrier = threading.Barrier(4)

    def start(_: int) -> str:
        barrier.wait()
        product: Crm = bootstrap(settings)
        with product:
            product.projector()  # the read models' tables too
            return product.app.blind_index.digest("phone", "+4930123456")

    with ThreadPoolExecutor(4) as pool:
        digests = list(pool.map(start, range(4)))
    assert len(set(digests)) == 1  # one blind-index key was made, and all use it
    with bootstrap(settings) as product:
        (pipelines,) = product.db.query(
            "SELECT COUNT(DISTINCT originator_id) FROM events WHERE topic LIKE %s",
            ("%PipelineDefined",),
        )[0]
        assert pipelines == 1  # the default pipeline was defined once


def test_a_metrics_scrape_does_not_wait_for_a_process_changing_the_schema(
    postgres_schema: str, tmp_path: Path
) -> None:
    """A scrape reads positions and lag only: it must not queue behind the schema
    lock that a starting process (an API worker, a projector, a rebuild) holds."""
    from adapters.read_models import registry
    from api.http.metrics import ProjectionCollector

    settings = make_settings("postgresql", tmp_path, database_schema=postgres_schema)
    with bootstrap(settings) as product:
        product.projector()  # the tables exist, as when the API has started
        collector = ProjectionCollector(product)
        scraped: list[Any] = []
        with postgres.ddl_lock(POSTGRES_URL, postgres_schema):  # someone is starting
            scrape = threading.Thread(target=lambda: scraped.extend(collector.collect()))
            scrape.start()
            scrape.join(timeout=5)
            assert scraped, "the scrape waited for the schema lock"
        scrape.join()
    models = {s.labels["read_model"] for family in scraped for s in family.samples if s.labels}
    assert models == set(registry.NAMES)


def _reltuples(product: Crm) -> float:
    return float(
        product.db.query("SELECT reltuples FROM pg_class WHERE oid = 'events'::regclass")[0][0]
    )


def _store_of(postgres_schema: str, tmp_path: Path, events: int) -> Crm:
    """A product over ``events`` stored events that PostgreSQL never analysed."""
    from eventsourcing.persistence import StoredEvent

    settings = make_settings("postgresql", tmp_path, database_schema=postgres_schema)
    product = bootstrap(settings)
    product.db.execute("ALTER TABLE events SET (autovacuum_enabled = false)")
    topic = "tests:Nothing"  # no read model or KPI reads it
    for _ in range(events // 100):
        product.app.recorder.insert_events(
            [StoredEvent(uuid.uuid4(), v, topic, b"{}") for v in range(1, 101)]
        )
    return product


def test_statistics_of_a_never_analysed_store_are_gathered_once(
    postgres_schema: str, tmp_path: Path
) -> None:
    with _store_of(postgres_schema, tmp_path, 1000) as product:
        assert _reltuples(product) < 0  # never analysed: the planner guesses
        assert product.app.recorder.refresh_statistics() is True
        assert _reltuples(product) >= 1000
        assert product.app.recorder.refresh_statistics() is False  # fresh: nothing to do


@pytest.mark.parametrize("reader", ["replay", "catch-up"])
def test_a_replay_and_a_long_catch_up_gather_missing_statistics_first(
    reader: str, postgres_schema: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapters import projector as projector_module
    from adapters.replay import replay
    from examples.kpis import AvgCheck

    monkeypatch.setattr(projector_module, "LONG_CATCH_UP", 200)
    with _store_of(postgres_schema, tmp_path, 300) as product:
        if reader == "replay":
            replay(product.app, AvgCheck())  # type: ignore[arg-type]
        else:
            product.projector(["deals"]).catch_up()
        assert _reltuples(product) >= 300


def test_writes_go_on_working_after_failed_ones_on_the_same_connection(
    postgres_schema: str, tmp_path: Path
) -> None:
    """psycopg prepares a statement on its fifth execution on a connection; in a
    write that fails, a preparation queued after the failure is skipped, and psycopg
    must not believe it done (the next write then failed with "prepared statement
    … does not exist")."""
    from eventsourcing.persistence import IntegrityError, StoredEvent

    settings = make_settings("postgresql", tmp_path, database_schema=postgres_schema, pool_size=1)
    taken = uuid.uuid4()
    with bootstrap(settings) as product:
        recorder = product.app.recorder
        recorder.insert_events([StoredEvent(taken, 1, "tests:Nothing", b"{}")])
        for _ in range(8):  # through the preparation threshold, failing each other time
            assert recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "tests:Nothing", b"{}")])
            with pytest.raises(IntegrityError):
                recorder.insert_events([StoredEvent(taken, 1, "tests:Nothing", b"{}")])
        assert recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "tests:Nothing", b"{}")])


def _datastore_on(database: OwnDatabase, *, pool_size: int, pool_timeout: float = 1.5) -> Any:
    return postgres.connect(
        database.url, schema="crm", pool_size=pool_size, pool_timeout=pool_timeout
    )


def _hold_connections(store: SchemaDatastore, count: int) -> None:
    """Make the pool open ``count`` connections (held together, then given back)."""
    with ExitStack() as held:
        for _ in range(count):
            held.enter_context(store.get_connection())


def test_a_pool_whose_every_connection_the_server_ended_serves_the_next_query(
    own_database: OwnDatabase,
) -> None:
    """As after a restart or a failover. psycopg_pool's own check waited 1 s, 2 s,
    4 s … between the dead connections it found, so the fourth one was never
    reached before the pool gave up."""
    store = _datastore_on(own_database, pool_size=4)
    try:
        _hold_connections(store, 4)
        assert own_database.end_sessions() >= 4
        time.sleep(0.2)  # the server's goodbyes reach the idle sockets

        assert PostgresDatabase(store).query("SELECT 1") == [(1,)]
    finally:
        store.close()


def test_a_read_of_an_unreachable_database_fails_after_one_wait_for_a_connection(
    own_database: OwnDatabase,
) -> None:
    """eventsourcing retried the store's reads ten times: a request hung 17 s."""
    store = _datastore_on(own_database, pool_size=2, pool_timeout=0.3)
    recorder = postgres.PostgresEventRecorder(store)
    recorder.create_table()
    try:
        own_database.refuse_connections()
        own_database.end_sessions()
        time.sleep(0.2)
        before = store.pool.get_stats()["requests_num"]
        for read in (
            recorder.max_notification_id,
            lambda: recorder.select_notifications(start=0, limit=10),
            lambda: recorder.select_events(uuid.uuid4(), desc=True, limit=1),
        ):
            with pytest.raises(OperationalError):
                read()
        # One checkout each, and one for the dead connection the first found (ten
        # each with eventsourcing's retries).
        assert store.pool.get_stats()["requests_num"] - before == 3 + 1
    finally:
        own_database.refuse_connections(False)
        store.close()


def test_a_pool_sees_a_database_that_is_back_within_its_retry_interval(
    own_database: OwnDatabase,
) -> None:
    """psycopg_pool's default retries a lost connection with doubling pauses (1, 2, 4,
    8 s …) for five minutes: after a ten seconds' outage the pool went on failing for
    seconds more with the database back. Now it retries at most ``RECONNECT_SECONDS``
    in a row (1 s, then 2 s apart) and the next request starts again."""
    store = _datastore_on(own_database, pool_size=2, pool_timeout=0.5)
    db = PostgresDatabase(store)
    try:
        own_database.refuse_connections()
        own_database.end_sessions()
        outage = time.monotonic() + 10
        while time.monotonic() < outage:  # every query fails
            with pytest.raises(OperationalError):
                db.query("SELECT 1")
        own_database.refuse_connections(False)
        back = time.monotonic() + 3  # the longest pause between two attempts is 2 s

        answered = None
        while answered is None and time.monotonic() < back:
            with suppress(OperationalError):
                answered = db.query("SELECT 1")
        assert answered == [(1,)]
    finally:
        own_database.refuse_connections(False)
        store.close()


def test_an_idle_pool_shrinks_to_one_connection(own_database: OwnDatabase) -> None:
    store = _datastore_on(own_database, pool_size=6)
    try:
        assert store.pool.min_size == 1
        assert store.pool.max_size == 6
        _hold_connections(store, 6)  # a burst opens up to the maximum
        assert store.pool.get_stats()["pool_size"] == 6
    finally:
        store.close()
