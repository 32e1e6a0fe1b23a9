"""Group commit: concurrent writes that arrive together share one transaction.

The first writer to find no write in progress becomes the leader: it takes every
write queued so far and records them in one transaction (one table lock, one
commit, one disk flush), each inside its own savepoint so that each still fails
on its own (a version conflict, a phone already claimed) without failing the
others. Writers that arrive meanwhile queue up and wait; when the leader's
transaction has committed, each is told its own result or error — nobody is
acknowledged before the commit that holds their events. The leader then takes
the next queue, or hands over when there is none.

There is no timer: batches form by themselves while a commit is in flight, so a
lone writer pays nothing and busy writers share the cost.

The leader writes its batches in one session (a pooled connection) for as long as
writes keep coming, up to ``batches_per_session`` of them: a connection taken from
the pool and given back for every batch cost the writers about a tenth of their
CPU. It is given back when the queue is empty, after a batch that failed (the
failure may have broken the connection; the pool replaces a broken one), and
after ``batches_per_session`` batches so that others waiting for a connection of a
small pool get their turn.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from eventsourcing.persistence import StoredEvent

from application.ports import SideEffects

S = TypeVar("S")


def _held() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass
class Write:
    """One caller's events and side effects, and what became of them."""

    events: Sequence[StoredEvent]
    side_effects: SideEffects | None
    positions: list[int] | None = None
    error: BaseException | None = None
    done: threading.Lock = field(default_factory=_held)
    """Held until the write's transaction is over (a lock: cheaper to make and to
    release than a ``threading.Event``)."""


WriteBatch = Callable[[S, list[Write]], None]
"""Record the writes in one transaction of the session, setting each one's positions
or error; an exception means the whole transaction failed."""


class GroupCommitter(Generic[S]):
    def __init__(
        self,
        session: Callable[[], AbstractContextManager[S]],
        write_batch: WriteBatch[S],
        *,
        max_batch: int = 256,
        batches_per_session: int = 16,
    ) -> None:
        self._session = session
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._batches_per_session = batches_per_session
        self._lock = threading.Lock()
        self._queue: list[Write] = []
        self._leading = False

    def submit(self, events: Sequence[StoredEvent], side_effects: SideEffects | None) -> list[int]:
        """Record ``events`` (with ``side_effects``) once committed; their positions."""
        write = Write(events, side_effects)
        with self._lock:
            self._queue.append(write)
            lead = not self._leading
            self._leading = True
        if lead:
            self._lead()
        write.done.acquire()
        if write.error is not None:
            raise write.error
        assert write.positions is not None
        return write.positions

    def _lead(self) -> None:
        batch = self._next()
        while batch:  # the leader, with a batch to write
            try:
                with self._session() as session:
                    for _ in range(self._batches_per_session):
                        self._write_batch(session, batch)
                        _release(batch)
                        batch = self._next()
                        if not batch:
                            return  # no longer the leader
            except BaseException as error:
                if not batch:  # every batch was written; giving the session back failed
                    raise
                for write in batch:
                    if write.error is None:
                        write.error = error
                    write.positions = None
                _release(batch)
                batch = self._next()

    def _next(self) -> list[Write]:
        """The next batch; none (and no longer the leader) when nothing is queued."""
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            if not batch:
                self._leading = False
            return batch


def _release(batch: list[Write]) -> None:
    for write in batch:
        write.done.release()


def positions_of(rows: Any) -> list[int]:
    return [int(row[0] if isinstance(row, tuple) else row["notification_id"]) for row in rows]
