"""Reads from PostgreSQL streaming replicas (``CRM_READ_DATABASE_URL``).

The read models and the routes that only read may be answered by a replica; commands,
the projector and everything that writes stay on the primary. A replica is used while
it answers and has replayed the primary's log to within ``CRM_REPLICA_MAX_LAG``
seconds; otherwise the next replica in the list is, then the primary. A watcher
thread checks each replica once a second, so choosing one costs a request nothing.

A request reads from one place from start to end (``ReplicaRouter.pinned``): its
token check, its ``min_position`` wait — which waits for that replica's copy of the
tracked positions — and its reads, so read-your-writes holds on a replica too.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from adapters.sql import Dialect, PostgresDatabase, Query, Reads, Steps, T
from adapters.telemetry import TRANSIENT_ERRORS

log = logging.getLogger(__name__)

CHECK_SECONDS = 1.0
"""How often each replica's state is looked at."""

_PRIMARY_LSN = "SELECT pg_current_wal_lsn()::text"
_REPLICA_LAG = (
    "SELECT CASE WHEN pg_last_wal_replay_lsn() >= %s::pg_lsn THEN 0"
    " ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0) END"
)


@dataclass
class Target:
    """Somewhere to read from: the primary or one replica."""

    name: str
    db: PostgresDatabase
    reads: Reads | None = None
    """Its reads on the event loop, while the API runs (``Crm.reads``)."""
    usable: bool = True
    lag_seconds: float = 0.0


_PINNED: contextvars.ContextVar[Target | None] = contextvars.ContextVar(
    "crm_read_target", default=None
)


@dataclass
class ReplicaRouter:
    primary: Target
    replicas: list[Target]
    max_lag_seconds: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _watcher: threading.Thread | None = None

    def current(self) -> Target:
        """The request's target if it is pinned to one, else the one to use now."""
        return _PINNED.get() or self.pick()

    def pick(self) -> Target:
        """The first usable replica, or the primary."""
        return next((replica for replica in self.replicas if replica.usable), self.primary)

    @contextmanager
    def pinned(self) -> Iterator[Target]:
        """Every read inside the block (on this task, and in the worker threads it
        hands work to) goes to one target."""
        target = self.pick()
        token = _PINNED.set(target)
        try:
            yield target
        finally:
            _PINNED.reset(token)

    def check(self) -> None:
        """Look at every replica now: usable if it answers and has replayed the
        primary's log to within ``max_lag_seconds`` (with the primary out of reach,
        a replica that answers is still better than nothing for reads)."""
        try:
            ((lsn,),) = self.primary.db.query(_PRIMARY_LSN)
        except TRANSIENT_ERRORS:
            lsn = None
        for replica in self.replicas:
            was = replica.usable
            try:
                if lsn is None:
                    replica.db.query("SELECT 1")
                    replica.lag_seconds = 0.0
                else:
                    ((lag,),) = replica.db.query(_REPLICA_LAG, (lsn,))
                    replica.lag_seconds = float(lag)
                replica.usable = replica.lag_seconds <= self.max_lag_seconds
            except TRANSIENT_ERRORS:
                replica.usable = False
            if replica.usable != was:
                log.warning(
                    "replica %s %s (%.1f s behind)",
                    replica.name,
                    "is used again" if replica.usable else "is skipped",
                    replica.lag_seconds,
                )

    def start(self) -> None:
        """Check now, then every ``CHECK_SECONDS`` in a thread of its own."""
        self.check()
        self._watcher = threading.Thread(target=self._watch, name="crm-replicas", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(CHECK_SECONDS):
            try:
                self.check()
            except Exception:
                log.exception("checking the replicas failed")


class RoutedDatabase:
    """A ``Database`` whose reads go to the router's current target and whose writes
    go to the primary."""

    dialect: Dialect = "postgresql"

    def __init__(self, router: ReplicaRouter) -> None:
        self.router = router
        self.primary = router.primary.db

    def transaction(self) -> Any:
        return self.primary.transaction()

    def snapshot(self) -> Any:
        return self.router.current().db.snapshot()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.router.current().db.query(sql, params)

    def run(self, query: Query[T]) -> T:
        return self.router.current().db.run(query)

    def run_steps(self, steps: Steps[T]) -> T:
        return self.router.current().db.run_steps(steps)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.primary.execute(sql, params)

    def scrub(self) -> None:
        self.primary.scrub()

    def tidy(self, tables: Sequence[str]) -> None:
        self.primary.tidy(tables)


class RoutedReads:
    """``Reads`` on the event loop, from the router's current target."""

    def __init__(self, router: ReplicaRouter) -> None:
        self.router = router

    def _reads(self) -> Reads:
        reads = self.router.current().reads
        assert reads is not None, "the targets' reads are open while the API runs"
        return reads

    async def run(self, query: Query[T]) -> T:
        return await self._reads().run(query)

    async def run_steps(self, steps: Steps[T]) -> T:
        return await self._reads().run_steps(steps)
