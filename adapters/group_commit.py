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
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eventsourcing.persistence import StoredEvent

from application.ports import SideEffects


@dataclass
class Write:
    """One caller's events and side effects, and what became of them."""

    events: Sequence[StoredEvent]
    side_effects: SideEffects | None
    positions: list[int] | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


WriteBatch = Callable[[list[Write]], None]
"""Record the writes in one transaction, setting each one's positions or error; an
exception means the whole transaction failed."""


class GroupCommitter:
    def __init__(self, write_batch: WriteBatch, *, max_batch: int = 256) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
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
        write.done.wait()
        if write.error is not None:
            raise write.error
        assert write.positions is not None
        return write.positions

    def _lead(self) -> None:
        while True:
            with self._lock:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                if not batch:
                    self._leading = False
                    return
            try:
                self._write_batch(batch)
            except BaseException as error:  # noqa: BLE001 (the transaction failed for all)
                for write in batch:
                    if write.error is None:
                        write.error = error
                    write.positions = None
            for write in batch:
                write.done.set()


def positions_of(rows: Any) -> list[int]:
    return [int(row[0] if isinstance(row, tuple) else row["notification_id"]) for row in rows]
