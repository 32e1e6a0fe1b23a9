"""Aggregates as this process last saw them committed, so that the next command on
one needs no read of its events.

A cached aggregate is never trusted blindly, because other processes write too:

* a command that changes it writes its next version, which the store refuses if
  anyone else took it (the unit of work is then run again on the store's state);
* a command that only reads it checks, before saving, that its version is still
  the latest;
* a command that fails on a cached aggregate (a broken rule, a version that is not
  the one expected) is run again on the store's state before the failure is
  believed.

An aggregate is lent to one unit of work at a time (``take`` removes it) and comes
back only when that unit of work has committed (``keep``), so a command that fails
half-way never leaves a half-changed aggregate behind. Entries expire ``ttl``
seconds after they were last committed or checked: cached aggregates hold decrypted
personal data, which an erasure by another process must clear here as soon as it
clears the data keys (``adapters.keystore.KeyStore.ttl``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from uuid import UUID

from domain.base import CrmAggregate


class AggregateCache:
    """At most ``size`` aggregates, none kept longer than ``ttl`` seconds; thread-safe."""

    def __init__(
        self, *, size: int, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.size = size
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[UUID, tuple[float, CrmAggregate]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, aggregate_id: UUID) -> CrmAggregate | None:
        """The cached aggregate, removed from the cache; ``None`` if absent or expired."""
        with self._lock:
            entry = self._entries.pop(aggregate_id, None)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def keep(self, aggregates: Iterable[CrmAggregate]) -> None:
        """Cache ``aggregates``, just committed or checked, for ``ttl`` seconds; the
        oldest entries go when there are more than ``size``, expired ones always."""
        if self.size <= 0:
            return
        now = self._clock()
        expiry = now + self.ttl
        with self._lock:
            entries = self._entries
            for aggregate in aggregates:
                entries[aggregate.id] = (expiry, aggregate)
                entries.move_to_end(aggregate.id)
            while entries and (len(entries) > self.size or next(iter(entries.values()))[0] <= now):
                entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
