"""append: single-event commands through the application, against raw inserts.

Each writer is a thread (of one process, or of one per core). Variants, at 1, 8 and
32 writers, each run ``--repeats`` times (3 by default; the median is printed):

* ``raw``: one plain ``INSERT`` + ``COMMIT`` per event, each thread on its own
  connection, into a table shaped like the events table (uuid, bigint version, text
  topic, bytea state as long as a real stored ``PurchaseMade``);
* ``eventsourcing``: the plain library, ``Application.save`` of one event of a
  trivial aggregate per call, with eventsourcing's own recorder
  (``PERSISTENCE_MODULE=eventsourcing.postgres`` or ``.sqlite``) in a store of its own;
* ``crm own``: ``RecordPurchase`` through ``CrmApplication.execute`` (load, decide,
  encrypt, save), each writer on clients of its own — no conflicts;
* ``crm shared``: the same, all writers on the same few clients, so commands meet
  concurrent writes and are re-run (retries are counted; a command that gives up
  counts as failed);
* ``crm own, N processes``: ``crm own`` with the writers shared out over one process
  per core (N), each with its own application and group commit, as the API's workers
  run commands: the writer threads of one process share one interpreter lock.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from api.bootstrap import Crm, bootstrap
from application.clients import RecordPurchase
from application.settings import Settings
from bench.common import (
    POSTGRES_URL,
    Options,
    Place,
    client_ids,
    median,
    note,
    per_event_micros,
    percentile,
    place,
    postgres_connection,
    ratio,
    server_cpu_seconds,
    server_cpu_since,
    table,
    title,
)
from bench.generate import generate
from domain.client import Client
from domain.envelope import Envelope

WRITERS = (1, 8, 32)
EVENTS_PER_CLIENT = 4
"""``crm own``: purchases each client receives in a run, at most."""
WARM_UP = 2
"""Untimed writes per writer before the clock starts."""
ENVELOPE = Envelope(actor_id="bench", actor_role="admin", source="api", correlation_id="bench")

Op = Callable[[int], None]
"""One writer's n-th write."""
Setup = Callable[[int], tuple[Op, Callable[[], None]]]
"""Writer number → (its write, its clean-up)."""


@dataclass
class Run:
    ops: int
    seconds: float
    latencies: list[float]
    failed: int = 0
    retries: int = 0
    error: str = ""
    cpu_seconds: float = 0.0
    """CPU time of the writers' process (all its threads) over the timed writes;
    summed over the processes in ``drive_processes``."""
    server_seconds: float | None = None
    """CPU time of the PostgreSQL processes of this machine over the timed writes."""

    def micros_per_op(self, seconds: float | None) -> float | None:
        return per_event_micros(seconds, self.ops)

    @property
    def per_second(self) -> float:
        return (self.ops - self.failed) / self.seconds if self.seconds else 0.0


def _write(op: Op, n: int, errors: list[str]) -> bool:
    """One write; False (and the first error kept) if it failed."""
    try:
        op(n)
    except Exception as error:  # noqa: BLE001 (counted and reported, not fatal)
        if not errors:
            errors.append(f"{type(error).__name__}: {error}")
        return False
    return True


def drive(
    writers: int,
    per_writer: int,
    setup: Setup,
    *,
    budget: float,
    warm_up: int = WARM_UP,
    gate: Callable[[], object] | None = None,
) -> Run:
    """Run ``per_writer`` writes on each of ``writers`` threads, all starting together
    (after ``warm_up`` untimed writes each, and after ``gate`` returns, if given), or
    as many as fit in ``budget`` seconds; the wall time to the last write."""
    ready = threading.Barrier(writers + 1)
    latencies: list[list[float]] = [[] for _ in range(writers)]
    failures = [0] * writers
    errors: list[str] = []
    stopping = threading.Event()

    def writer(w: int) -> None:
        try:
            op, cleanup = setup(w)
        except Exception as error:  # noqa: BLE001 (reported by the main thread)
            errors.append(f"setting up writer {w}: {type(error).__name__}: {error}")
            ready.abort()
            return
        try:
            for n in range(warm_up):
                _write(op, n, errors)
            ready.wait()
            deadline = time.perf_counter() + budget
            mine = latencies[w]
            for n in range(warm_up, warm_up + per_writer):
                started = time.perf_counter()
                if stopping.is_set() or started > deadline:
                    return
                if not _write(op, n, errors):
                    failures[w] += 1
                mine.append(time.perf_counter() - started)
        except threading.BrokenBarrierError:
            return
        finally:
            cleanup()

    threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
    for thread in threads:
        thread.start()
    try:
        if gate is not None:  # the writers wait at the barrier until it opens
            gate()
        ready.wait()
        started, cpu, server = time.perf_counter(), time.process_time(), server_cpu_seconds()
        for thread in threads:
            thread.join()
    except threading.BrokenBarrierError:
        for thread in threads:
            thread.join(timeout=30)
        raise RuntimeError(errors[0] if errors else "a writer failed to start") from None
    except BaseException:  # Ctrl-C: let the writers finish their current write, then stop
        stopping.set()
        ready.abort()
        for thread in threads:
            thread.join(timeout=30)
        raise
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Run(
        sum(map(len, latencies)),
        seconds,
        [x for xs in latencies for x in xs],
        sum(failures),
        error=errors[0] if errors else "",
        cpu_seconds=cpu,
        server_seconds=server_cpu_since(server),
    )


# ------------------------------------------------------------------ the variants


def raw_postgres(where: Place, state: bytes, topic: str) -> Setup:
    with postgres_connection(where.schema) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS raw_events (originator_id uuid NOT NULL,"
            " originator_version bigint NOT NULL, topic text, state bytea,"
            " notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
        )
        conn.execute(
            "CREATE UNIQUE INDEX IF NOT EXISTS raw_events_position ON raw_events (notification_id)"
        )
        conn.commit()

    def setup(_: int) -> tuple[Op, Callable[[], None]]:
        conn = postgres_connection(where.schema)
        originator = uuid.uuid4()

        def op(n: int) -> None:
            conn.execute(
                "INSERT INTO raw_events (originator_id, originator_version, topic, state)"
                " VALUES (%s, %s, %s, %s)",
                (originator, n + 1, topic, state),
            )
            conn.commit()

        return op, conn.close

    return setup


def raw_sqlite(where: Place, state: bytes, topic: str) -> Setup:
    path = where.directory / "raw.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS raw_events (originator_id TEXT NOT NULL,"
            " originator_version INTEGER NOT NULL, topic TEXT, state BLOB,"
            " PRIMARY KEY (originator_id, originator_version))"
        )
    conn.close()

    def setup(_: int) -> tuple[Op, Callable[[], None]]:
        conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        originator = uuid.uuid4().hex

        def op(n: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO raw_events (originator_id, originator_version, topic, state)"
                " VALUES (?, ?, ?, ?)",
                (originator, n + 1, topic, state),
            )
            conn.execute("COMMIT")

        return op, conn.close

    return setup


class Counter(Aggregate):
    """The trivial aggregate of the plain-eventsourcing peer."""

    def __init__(self) -> None:
        self.count = 0

    @event("Incremented")
    def increment(self) -> None:
        self.count += 1


@contextmanager
def plain_application(where: Place, writers: int) -> Iterator[Application[uuid.UUID]]:
    """eventsourcing's own ``Application`` and recorder on the same store (its table,
    ``application_events``, beside ours; SQLite: a file of its own)."""
    if where.backend == "postgresql":
        url = urlsplit(POSTGRES_URL)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(url.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": unquote(url.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(url.password or ""),
            "POSTGRES_SCHEMA": where.schema,
            "POSTGRES_POOL_SIZE": str(writers + 1),
            "POSTGRES_MAX_OVERFLOW": "0",
        }
    else:
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(where.directory / "plain.db"),
            "SQLITE_LOCK_TIMEOUT": "60",
        }
    app: Application[uuid.UUID] = Application(env=env)
    try:
        yield app
    finally:
        app.close()


def plain_eventsourcing(app: Application[uuid.UUID]) -> Setup:
    def setup(_: int) -> tuple[Op, Callable[[], None]]:
        counter = Counter()
        app.save(counter)

        def op(_: int) -> None:
            counter.increment()
            app.save(counter)

        return op, lambda: None

    return setup


def crm_commands(crm: Crm, clients: list[list[uuid.UUID]]) -> Setup:
    """``RecordPurchase`` commands, writer ``w`` cycling through ``clients[w]``."""

    def setup(w: int) -> tuple[Op, Callable[[], None]]:
        mine = clients[w]

        def op(n: int) -> None:
            command = RecordPurchase(
                client_id=mine[n % len(mine)],
                amount=Decimal("12.50"),
                cost=Decimal("7.10"),
                currency=crm.settings.currency,
            )
            crm.app.execute(command, ENVELOPE)

        return op, lambda: None

    return setup


def drive_processes(setting: Setting, writers: int, *, budget: float) -> Run:
    """``crm own`` with the writers shared out over ``PROCESSES`` processes (fewer if
    there are fewer writers), each with its own application, all starting together:
    the writes per second over the longest process's time to its last write."""
    processes = min(PROCESSES, writers)
    clients = setting.own(writers)
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(processes + 1)
    results = context.Queue()
    children = [
        context.Process(
            target=_process_writers,
            args=(
                setting.where.settings(pool_size=writers + 1),
                clients[p::processes],
                setting.per_writer[writers],
                budget,
                start,
                results,
            ),
            daemon=True,
        )
        for p in range(processes)
    ]
    for child in children:
        child.start()
    try:
        start.wait(timeout=120)  # every process has its writers warmed up
        server = server_cpu_seconds()
        runs: list[Run] = [results.get(timeout=budget + 120) for _ in children]
        server_seconds = server_cpu_since(server)
    finally:
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
    return Run(
        sum(r.ops for r in runs),
        max(r.seconds for r in runs),
        [x for r in runs for x in r.latencies],
        sum(r.failed for r in runs),
        error=next((r.error for r in runs if r.error), ""),
        cpu_seconds=sum(r.cpu_seconds for r in runs),
        server_seconds=server_seconds,
    )


def _process_writers(
    settings: Settings,
    clients: list[list[uuid.UUID]],
    per_writer: int,
    budget: float,
    start: Any,
    results: Any,
) -> None:
    """One process of ``drive_processes``: its writers, on an application of its own.
    If it cannot start them, the barrier breaks, so the others and the parent stop
    waiting at once."""
    try:
        with bootstrap(settings) as crm:
            run = drive(
                len(clients),
                per_writer,
                crm_commands(crm, clients),
                budget=budget,
                gate=start.wait,
            )
    except BaseException:
        start.abort()
        raise
    results.put(run)


class RetryCounter(logging.Handler):
    """Counts the application's "running the command again" (a concurrent write)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "again" in record.getMessage():
            self.count += 1


@contextmanager
def counting_retries() -> Iterator[RetryCounter]:
    logger = logging.getLogger("application.app")
    counter = RetryCounter()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(counter)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(level)
        logger.propagate = propagate


def sample_state(crm: Crm, client: uuid.UUID) -> tuple[bytes, str]:
    """The stored state and topic of a real ``PurchaseMade``, as the store holds it."""
    crm.app.execute(
        RecordPurchase(
            client_id=client, amount=Decimal("12.50"), cost=Decimal("7.10"), currency="EUR"
        ),
        ENVELOPE,
    )
    events = list(crm.app.events.get(client))
    stored = crm.app.mapper.to_stored_event(events[-1])
    assert stored.topic == get_topic(Client.PurchaseMade)
    return stored.state, stored.topic


# ----------------------------------------------------------------------- the run


PROCESSES = os.cpu_count() or 1
"""Processes of the ``crm own, N processes`` variant: one per core, as the API's workers."""
IN_PROCESSES = f"crm own, {PROCESSES} processes"
VARIANTS = ("raw", "eventsourcing", "crm own", "crm shared", IN_PROCESSES)


@dataclass
class Setting:
    """What the variants need, made once per run of the benchmark: a store holding a
    generated history (so clients look like real ones, about ten events each) whose
    clients are handed out fresh to each run, and a real stored event's size."""

    where: Place
    clients: list[uuid.UUID]
    state: bytes
    topic: str
    per_writer: dict[int, int]
    taken: int = 0

    @classmethod
    def make(cls, where: Place, total: int, runs: int) -> Setting:
        per_writer = {writers: max(1, total // writers) for writers in WRITERS}
        needed = runs * sum(
            2 * writers * -(-(per_writer[writers] + WARM_UP) // EVENTS_PER_CLIENT)  # own x2
            + per_writer[writers]
            + WARM_UP  # shared
            for writers in WRITERS
        )
        with bootstrap(where.settings()) as crm:
            generated = generate(crm, (needed + 1) * 10)
            clients = client_ids(crm, generated.clients)
            state, topic = sample_state(crm, clients.pop())
        if len(clients) < needed:
            raise RuntimeError(f"generated {len(clients)} clients, {needed} needed")
        return cls(where, clients, state, topic, per_writer)

    def take(self, n: int) -> list[uuid.UUID]:
        """``n`` clients that no run has written to yet."""
        chosen = self.clients[self.taken : self.taken + n]
        self.taken += n
        return chosen

    def own(self, writers: int) -> list[list[uuid.UUID]]:
        """For each writer, clients of its own: each receives ``EVENTS_PER_CLIENT``
        purchases at most, spread over the run."""
        each = -(-(self.per_writer[writers] + WARM_UP) // EVENTS_PER_CLIENT)
        return [self.take(each) for _ in range(writers)]

    def shared(self, writers: int) -> list[list[uuid.UUID]]:
        """One list for all writers, walked in step: every writer's n-th write goes to
        the same client, so ``writers`` commands meet on each client at once."""
        common = self.take(self.per_writer[writers] + WARM_UP)
        return [common] * writers


@contextmanager
def variant(name: str, setting: Setting, writers: int) -> Iterator[Setup]:
    """The writes of variant ``name``, with connections enough for ``writers`` (opened
    for this run only: the server is shared)."""
    where = setting.where
    if name == "raw":
        raw = raw_postgres if where.backend == "postgresql" else raw_sqlite
        yield raw(where, setting.state, setting.topic)
    elif name == "eventsourcing":
        with plain_application(where, writers) as app:
            yield plain_eventsourcing(app)
    else:
        clients = setting.own(writers) if name == "crm own" else setting.shared(writers)
        with bootstrap(where.settings(pool_size=writers + 1)) as crm:
            yield crm_commands(crm, clients)


def run(options: Options) -> None:
    total = 128 if options.quick else 2000
    budget = 5.0 if options.quick else 15.0
    title(
        "append",
        {
            "backend": options.backend,
            "writers": "/".join(map(str, WRITERS)),
            "events per run": f"{total:,} split across the writers (after {WARM_UP} untimed"
            f" each), or as many as fit in {budget:.0f} s",
            "runs": f"{options.runs} (median)",
            "clients": "generated (about 10 events each), fresh for every run;"
            f" own: each gets at most {EVENTS_PER_CLIENT} events of one writer;"
            " shared: every writer's n-th command goes to the same client",
        },
    )
    runs: dict[tuple[str, int], list[Run]] = {}
    with place(options.backend) as where:
        setting = Setting.make(where, total, options.runs)
        note(
            f"{len(setting.clients):,} generated clients; a stored PurchaseMade holds"
            f" {len(setting.state)} bytes of state, and so does each raw row"
        )
        for repeat in range(options.runs):
            for writers in WRITERS:
                for name in VARIANTS:
                    if name == IN_PROCESSES:
                        result = drive_processes(setting, writers, budget=budget)
                    else:
                        with (
                            variant(name, setting, writers) as setup,
                            counting_retries() as retries,
                        ):
                            result = drive(
                                writers, setting.per_writer[writers], setup, budget=budget
                            )
                        result.retries = retries.count
                    runs.setdefault((name, writers), []).append(result)
                    if result.failed:
                        note(f"{name} x{writers}: {result.failed} failed: {result.error}")
            note(f"run {repeat + 1}/{options.runs} done")
    report(runs, server=options.backend == "postgresql")


def report(runs: dict[tuple[str, int], list[Run]], *, server: bool) -> None:
    rows: list[list[Any]] = []
    for writers in WRITERS:
        baseline = median([r.per_second for r in runs[("raw", writers)]])
        for variant in VARIANTS:
            results = runs[(variant, writers)]
            per_second = median([r.per_second for r in results])
            latencies = [x for r in results for x in r.latencies]
            rows.append(
                [
                    writers,
                    variant,
                    per_second,
                    ratio(per_second, baseline),
                    percentile(latencies, 50) * 1000,
                    percentile(latencies, 99) * 1000,
                    sum(r.retries for r in results),
                    sum(r.failed for r in results),
                    _median_micros([r.micros_per_op(r.cpu_seconds) for r in results]),
                    _median_micros(
                        [r.micros_per_op(r.server_seconds) for r in results] if server else []
                    ),
                ]
            )
    table(
        [
            "writers",
            "variant",
            "events/s (median)",
            "vs raw",
            "p50 ms",
            "p99 ms",
            "retries",
            "failed",
            "CPU µs/op",
            "server µs/op",
        ],
        rows,
    )
    note("raw = psycopg/sqlite3 INSERT + COMMIT per event (the baseline); retries and")
    note("failures are summed over the runs; a failed command gave up after 20 attempts.")
    note("CPU µs/op: the writers' CPU time per write (all threads of their process or")
    note("processes), median of the runs; server: every PostgreSQL process of this machine.")


def _median_micros(values: list[float | None]) -> float | None:
    measured = [value for value in values if value is not None]
    return median(measured) if measured else None
