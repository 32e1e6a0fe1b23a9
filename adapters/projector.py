"""The projector: feeds stored events to the read models, exactly once.

Each batch of events is applied to every read model, and each model's tracked
position is advanced, in one transaction: a crash leaves either all of a batch or
none of it. Before applying, the transaction locks and re-reads the tracked
positions, so two projector processes never apply the same batch twice.

The events table is written under a table lock (PostgreSQL) or the single writer
lock (SQLite), so positions become visible in order and reading "everything after
my position" never skips an event that commits later.

A raw read model (``SqlReadModel.raw``) gets the stored records of every topic,
undecoded; while one is in the set, batches are read without the topic filter and
only the records a decoded model still needs are decoded.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic

from adapters.gc_pause import gc_paused
from adapters.read_models.base import REBUILD_PREFIX, SqlReadModel, swap_statements
from adapters.sql import DDL_XACT_LOCK_SQL, Cursor, Database
from adapters.telemetry import (
    DATABASE_ERRORS,
    PROJECTOR_RESTARTS,
    PROJECTOR_RETRIES,
    TRANSIENT_ERRORS,
)
from application.app import CrmApplication
from domain.client import Client
from projections.base import Recorded

log = logging.getLogger(__name__)

ERASURE_TOPIC = get_topic(Client.PersonalDataErased)

_TRACKING_DDL = {
    "postgresql": "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name text PRIMARY KEY, position bigint NOT NULL, updated_at timestamptz NOT NULL)",
    "sqlite": "CREATE TABLE IF NOT EXISTS projection_tracking ("
    " name TEXT PRIMARY KEY, position INTEGER NOT NULL, updated_at TEXT NOT NULL)",
}

LONG_CATCH_UP = 50_000
"""A catch-up at least this far behind first has the store's statistics checked
(``EventRecorder.refresh_statistics``): it reads much of the store in order."""

ANALYZE_AFTER = 20_000
"""Events applied before the first ``ANALYZE`` of the models' tables (PostgreSQL); the
next ones follow each time the count doubles."""

REBUILD_STATISTICS_TARGET = 10
"""``default_statistics_target`` of the ``ANALYZE`` of a rebuild's tables while they
grow (PostgreSQL's default is 100: 30,000 rows sampled per table, against 3,000)."""

ACTIVE_LOCK_PREFIX = "crm-projector:"
ACTIVE_LOCK_SQL = (
    "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || %s, 0)) AS active"
)
STANDBY_POLL_SECONDS = 0.5
"""How often a standby projector tries to become the active one: it takes over within
about this long of the active one's death (its session ends with the process)."""

Progress = Callable[[int, int], None]
"""Called with (position reached, head) after each batch."""

Batch = list[tuple[Notification, Recorded | None]]
"""A fetched batch: each stored record, with its decoded event if a decoded model
needs it (else None)."""


@dataclass(frozen=True)
class ModelStatus:
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float


class _PositionsMoved(Exception):
    """Another projector advanced a tracked position since we read it."""


def decode_all(mapper: Any, stored: Sequence[Notification]) -> list[Any]:
    """Decode a batch, in one go when the mapper can (one key lookup per batch)."""
    decode_many = getattr(mapper, "to_domain_events", None)
    if decode_many is not None:
        return list(decode_many(stored))
    return [mapper.to_domain_event(n) for n in stored]


class Projector:
    """Runs a set of read models over the event store."""

    def __init__(
        self,
        app: CrmApplication,
        db: Database,
        models: Sequence[SqlReadModel],
        *,
        batch_size: int = 2000,
    ) -> None:
        self.app = app
        self.db = db
        self.models = list(models)
        self.batch_size = batch_size
        self._decoded = [model for model in self.models if not model.raw]
        self._decoded_topics: frozenset[str] = frozenset().union(
            *(model.topics for model in self._decoded)
        )
        any_raw = len(self._decoded) < len(self.models)
        self.topics = [] if any_raw else sorted(self._decoded_topics)
        """The topics to read (empty: every topic)."""
        self._positions: dict[str, int] = {}
        self._applied = 0
        self._analyzed_at = 0
        self._statistics_checked = False

    @staticmethod
    def tracking_name(model: SqlReadModel) -> str:
        return model.prefix + model.name

    # -------------------------------------------------------------------- setup

    def setup(self) -> None:
        """Create the tracking table and the models' tables (if missing)."""
        with self.db.transaction() as cursor:
            if self.db.dialect == "postgresql":  # processes starting at once take turns
                cursor.execute(DDL_XACT_LOCK_SQL)
            cursor.execute(_TRACKING_DDL[self.db.dialect])
            for model in self.models:
                for statement in model.create_statements():
                    cursor.execute(statement)
                model.upgrade_indexes(cursor)
                model.upgrade(cursor)
                cursor.execute(
                    "INSERT INTO projection_tracking (name, position, updated_at)"
                    " VALUES (%s, 0, %s) ON CONFLICT (name) DO NOTHING",
                    (self.tracking_name(model), datetime.now(UTC)),
                )
        self._positions = self._read_positions()

    def _read_positions(self, cursor: Cursor | None = None) -> dict[str, int]:
        names = [self.tracking_name(model) for model in self.models]
        placeholders = ", ".join(["%s"] * len(names))
        sql = f"SELECT name, position FROM projection_tracking WHERE name IN ({placeholders})"  # noqa: S608
        if cursor is None:
            rows = self.db.query(sql, names)
        else:
            if self.db.dialect == "postgresql":
                sql += " FOR UPDATE"
            cursor.execute(sql, names)
            rows = cursor.fetchall()
        positions = {str(name): int(position) for name, position in rows}
        return {name: positions.get(name, 0) for name in names}

    def position(self) -> int:
        """The position every model of this projector has applied (read now)."""
        return min(self._read_positions().values(), default=0)

    # ---------------------------------------------------------------- catch up

    def head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def catch_up(
        self,
        *,
        until: int | None = None,
        progress: Progress | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        """Apply every event up to ``until`` (default: the head when called), or until
        ``stop`` is set (after the batch in hand); returns how many events were read."""
        if not self._positions:
            self._positions = self._read_positions()
        stop_at = self.head() if until is None else until
        if (
            stop_at - min(self._positions.values()) >= LONG_CATCH_UP
            and not self._statistics_checked
        ):
            self.app.recorder.refresh_statistics()
            self._statistics_checked = True
        read = 0
        while min(self._positions.values()) < stop_at:
            if stop is not None and stop.is_set():
                break
            try:
                with gc_paused():
                    batch, reached = self._fetch(min(self._positions.values()), stop_at)
                    with self.db.transaction() as cursor:
                        self._apply(cursor, batch, reached)
            except _PositionsMoved:
                self._positions = self._read_positions()
                continue
            read += len(batch)
            self._analyze_if_grown(len(batch))
            if any(notification.topic == ERASURE_TOPIC for notification, _ in batch):
                self.db.scrub()  # the purged values must not linger in a log file
            if progress:
                progress(min(self._positions.values()), stop_at)
        return read

    def _analyze_if_grown(self, applied: int) -> None:
        """Refresh PostgreSQL's statistics of the models' tables while they grow fast
        (a rebuild, a first catch-up): with the statistics of a near-empty table the
        planner answers the models' key lookups with sequential scans, and a rebuild
        slows down as its tables grow. ``ANALYZE`` after ``ANALYZE_AFTER`` events, then
        whenever the count has doubled: a handful of times in a whole rebuild."""
        self._applied += applied
        if self.db.dialect != "postgresql":
            return
        if self._applied - self._analyzed_at < max(ANALYZE_AFTER, self._analyzed_at):
            return
        self._analyzed_at = self._applied
        with self.db.transaction() as cursor:
            for model in self.models:
                # A rebuild's tables get full statistics when they are swapped in
                # (``Database.tidy``); until then a small sample tells the planner
                # enough for the writes' key lookups, at a sixth of the cost.
                target = REBUILD_STATISTICS_TARGET if model.rebuilding else "DEFAULT"
                cursor.execute(f"SET LOCAL default_statistics_target = {target}")
                for table in model.t.values():
                    cursor.execute(f"ANALYZE {table}")

    def _fetch(self, after: int, stop: int) -> tuple[Batch, int]:
        """The next batch after ``after`` (only the models' topics, unless a raw model
        needs them all), read and decoded before any write lock is taken, and the
        position it brings the models to."""
        notifications: Sequence[Notification] = self.app.recorder.select_notifications(
            start=after,
            limit=self.batch_size,
            stop=stop,
            topics=self.topics,
            inclusive_of_start=False,
        )
        reached = notifications[-1].id if len(notifications) == self.batch_size else stop
        floor = min(
            (self._positions.get(self.tracking_name(m), 0) for m in self._decoded), default=stop
        )  # decoded models are all at or past it: nothing before it is decoded

        wanted = [n for n in notifications if n.id > floor and n.topic in self._decoded_topics]
        events = iter(decode_all(self.app.mapper, wanted))
        chosen = {n.id for n in wanted}
        batch: Batch = [
            (n, Recorded(n.id, next(events)) if n.id in chosen else None) for n in notifications
        ]
        return batch, reached

    def _apply(self, cursor: Cursor, batch: Batch, reached: int) -> None:
        """Apply a fetched batch and advance the tracked positions, in the caller's
        transaction; ``_PositionsMoved`` if another projector got there first."""
        locked = self._read_positions(cursor)
        if locked != self._positions:
            raise _PositionsMoved
        now = datetime.now(UTC)
        for model in self.models:
            name = self.tracking_name(model)
            position = locked[name]
            if reached <= position:
                continue
            if model.raw:
                records = [n for n, _ in batch if n.id > position]
                if records:
                    model.apply_raw(cursor, records)
            else:
                mine = [r for n, r in batch if r and n.id > position and n.topic in model.topics]
                if mine:
                    model.apply(cursor, mine)
            cursor.execute(
                "UPDATE projection_tracking SET position = %s, updated_at = %s WHERE name = %s",
                (reached, now, name),
            )
            locked[name] = reached
        self._positions = locked

    def head_within(self, cursor: Cursor) -> int:
        """The store's head, read in the caller's transaction (where, on SQLite, the
        write lock keeps it from moving)."""
        if getattr(self.app.recorder, "db", None) is None:  # events kept in memory
            return self.head()
        column = "notification_id" if self.db.dialect == "postgresql" else "rowid"
        cursor.execute(f"SELECT MAX({column}) FROM events")  # noqa: S608
        row = cursor.fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ------------------------------------------------------------------ follow

    def follow(
        self,
        stop: threading.Event,
        *,
        idle_wait: float = 1.0,
        on_batch: Progress | None = None,
        on_running: Callable[[], None] | None = None,
    ) -> None:
        """Catch up, then keep applying new events as they are recorded, until
        ``stop`` is set (the batch in hand is finished first). PostgreSQL wakes the
        projector with LISTEN/NOTIFY (and it still looks every ``idle_wait`` seconds);
        SQLite is polled. It listens before its first look at the store, so that no
        event recorded in between goes unnoticed; ``on_running`` is called once that
        first catch-up is done."""
        with self._waiting(stop, idle_wait) as wait:
            while wait is not None and not stop.is_set():
                read = self.catch_up(progress=on_batch, stop=stop)
                if on_running is not None:
                    on_running()
                    on_running = None
                if read == 0:
                    wait()

    @contextmanager
    def _waiting(
        self, stop: threading.Event, idle_wait: float
    ) -> Iterator[Callable[[], Any] | None]:
        """How to wait for new events — ``None`` if ``stop`` was set first. On
        PostgreSQL the session that listens also holds the advisory lock that makes
        this projector the active one for its models: a process whose session ends
        (killed, cut off) loses both at once, and a standby takes over."""
        datastore: Any = getattr(self.app.recorder, "datastore", None)
        channel = getattr(self.app.recorder, "channel_name", None)
        if self.db.dialect != "postgresql" or datastore is None or channel is None:
            poll = min(idle_wait, 0.2)
            yield lambda: stop.wait(poll)
            return
        with datastore.get_connection() as conn:
            try:
                if not self._become_active(conn, stop):
                    yield None
                    return
                conn.execute(f'LISTEN "{channel}"')
                yield lambda: list(conn.notifies(timeout=idle_wait, stop_after=1))
            finally:
                try:  # the pool must not hand out a session that listens or holds the lock
                    conn.execute(f'UNLISTEN "{channel}"')
                    conn.execute("SELECT pg_advisory_unlock_all()")
                except Exception:  # noqa: BLE001 - a broken session: closed, never reused
                    conn.close()

    def _become_active(self, conn: Any, stop: threading.Event) -> bool:
        """Take the lock that lets one projector at a time apply these models (on
        this schema), standing by until it is free; False if ``stop`` came first.

        Several projectors (replicas of ``crm project``, the API workers' embedded
        ones) stay correct without it — each batch locks the tracked positions — but
        would read and decode every batch only for all but one to find it applied."""
        key = ACTIVE_LOCK_PREFIX + ",".join(sorted(self.tracking_name(m) for m in self.models))
        standing_by = False
        while True:
            row = conn.execute(ACTIVE_LOCK_SQL, (key,)).fetchone()
            if row["active"]:
                if standing_by:
                    log.warning("projector: another projector is gone; this one is active now")
                return True
            if not standing_by:
                log.info("projector: standing by (another projector applies these models)")
                standing_by = True
            if stop.wait(STANDBY_POLL_SECONDS):
                return False

    # --------------------------------------------------------------- status

    def status(self) -> list[ModelStatus]:
        """Each model's position and lag behind the store's head (events, seconds)."""
        head = self.head()
        positions = self._read_positions()
        now = datetime.now(UTC)
        statuses = []
        for model in self.models:
            position = positions[self.tracking_name(model)]
            seconds = 0.0
            if position < head:
                (first,) = self.app.recorder.select_notifications(start=position + 1, limit=1)
                event = self.app.mapper.to_domain_event(first)
                seconds = max(0.0, (now - event.timestamp).total_seconds())  # type: ignore[attr-defined]
            statuses.append(
                ModelStatus(model.name, position, head, max(0, head - position), seconds)
            )
        return statuses


class Backoff:
    """Pauses between retries: doubling from ``first`` up to ``cap`` seconds, each
    drawn at random between half and all of that ("equal jitter"), so processes that
    failed together do not all retry together."""

    def __init__(self, first: float = 0.1, cap: float = 5.0) -> None:
        self.first = first
        self.cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self.first

    def pause(self) -> float:
        ceiling = self._next
        self._next = min(self.cap, self._next * 2)
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not secrecy


def follow_until_stopped(
    make: Callable[[], Projector],
    stop: threading.Event,
    *,
    idle_wait: float = 1.0,
    on_batch: Progress | None = None,
    process: str = "projector",
    backoff: Backoff | None = None,
) -> None:
    """Keep the read models up to date until ``stop`` is set, through the database's
    failures. A connection lost, a session ended, a restart, a failover, a
    serialization failure or a lock timeout (``TRANSIENT_ERRORS``) is logged once per
    episode; the projector is made again after a capped, jittered pause and resumes
    from the tracked positions (nothing is applied twice: they move in the batches'
    own transactions), and listens again before it looks, so no notification is
    missed. Any other error (a wrong master key, a schema this version does not know)
    is raised: retrying cannot fix it."""
    backoff = backoff or Backoff()
    failing_since: float | None = None
    retries = 0

    def running() -> None:
        nonlocal failing_since
        if failing_since is not None:
            log.warning(
                "%s: running again after %.1f s and %d retries",
                process,
                time.monotonic() - failing_since,
                retries,
            )
            PROJECTOR_RESTARTS.inc()
            failing_since = None
        backoff.reset()

    while not stop.is_set():
        try:
            make().follow(stop, idle_wait=idle_wait, on_batch=on_batch, on_running=running)
        except TRANSIENT_ERRORS as error:
            DATABASE_ERRORS.labels(process=process, kind=type(error).__name__).inc()
            if failing_since is None:
                failing_since, retries = time.monotonic(), 0
                log.warning(
                    "%s: the database failed (%s: %s); retrying until it answers",
                    process,
                    type(error).__name__,
                    _first_line(error),
                )
            else:
                log.debug("%s: still failing: %s", process, _first_line(error))
            retries += 1
            PROJECTOR_RETRIES.inc()
            stop.wait(backoff.pause())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def rebuild(
    app: CrmApplication,
    db: Database,
    make_model: Callable[[str], SqlReadModel],
    *,
    progress: Progress | None = None,
    batch_size: int = 5000,
) -> int:
    """Rebuild one read model (see ``rebuild_many``)."""
    return rebuild_many(
        app, db, lambda prefix: [make_model(prefix)], progress=progress, batch_size=batch_size
    )


def rebuild_many(
    app: CrmApplication,
    db: Database,
    make_models: Callable[[str], Sequence[SqlReadModel]],
    *,
    progress: Progress | None = None,
    batch_size: int = 5000,
) -> int:
    """Rebuild read models from position zero beside their live tables, in one pass
    over the store (each event read and decoded once for all of them), then swap
    every rebuilt table in, in one transaction. A rebuild that was interrupted
    resumes where it stopped. Returns the position the swapped-in tables are at."""
    rebuilt = list(make_models(REBUILD_PREFIX))
    live = list(make_models(""))
    projector = Projector(app, db, rebuilt, batch_size=batch_size)
    projector.setup()
    live_tracker = Projector(app, db, live)
    while True:
        projector.catch_up(progress=progress)
        batch, reached = projector._fetch(min(projector._positions.values()), projector.head())
        try:
            with db.transaction() as cursor:
                # Lock the live models' tracking rows: their projectors wait, then see
                # the new positions and carry on from there, on the new tables.
                live_tracker._read_positions(cursor)
                projector._apply(cursor, batch, reached)
                position = min(projector._positions.values())
                if position < projector.head_within(cursor):
                    continue  # events arrived meanwhile: commit this batch, go round
                for new in rebuilt:
                    new.finish_rebuild(cursor)
                now = datetime.now(UTC)
                for model, new in zip(live, rebuilt, strict=True):
                    for statement in swap_statements(type(model), db.dialect):
                        cursor.execute(statement)
                    cursor.execute(
                        "INSERT INTO projection_tracking (name, position, updated_at)"
                        " VALUES (%s, %s, %s) ON CONFLICT (name) DO UPDATE"
                        " SET position = excluded.position, updated_at = excluded.updated_at",
                        (Projector.tracking_name(model), position, now),
                    )
                    cursor.execute(
                        "DELETE FROM projection_tracking WHERE name = %s",
                        (Projector.tracking_name(new),),
                    )
        except _PositionsMoved:
            projector._positions = projector._read_positions()
            continue
        break
    db.tidy([table for model in live for table in model.t.values()])
    log.info(
        "rebuilt %s up to position %d and swapped in", ", ".join(m.name for m in live), position
    )
    return position


def discard_rebuild(db: Database, make_model: Callable[[str], SqlReadModel]) -> None:
    """Drop an interrupted rebuild's tables and tracking."""
    rebuilt = make_model(REBUILD_PREFIX)
    with db.transaction() as cursor:
        for statement in rebuilt.drop_statements():
            cursor.execute(statement)
        cursor.execute(
            "DELETE FROM projection_tracking WHERE name = %s", (Projector.tracking_name(rebuilt),)
        )


def wait_for(projector: Projector, position: int, *, timeout: float) -> bool:
    """Block until every model of ``projector`` has applied ``position`` (read-your-
    writes); False on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if min(projector._read_positions().values()) >= position:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.1)
