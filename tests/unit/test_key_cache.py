"""The data-key cache serves recent keys without a read and holds nothing older
than its time to live."""

from __future__ import annotations

import os
import time
from uuid import UUID, uuid4

from adapters.keystore import KeyStore, MemoryKeyTable, StoredKey


class CountingTable(MemoryKeyTable):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def read(self, subject: UUID) -> StoredKey | None:
        self.reads += 1
        return super().read(subject)


def test_a_key_used_again_within_the_ttl_is_not_read_again() -> None:
    table = CountingTable()
    store = KeyStore(table, os.urandom(32), ttl=60)
    subject = uuid4()
    first = store.key(subject, create=True)
    reads = table.reads
    assert store.key(subject) == first
    assert table.reads == reads


def test_the_cache_drops_the_keys_not_used_within_the_ttl() -> None:
    table = CountingTable()
    store = KeyStore(table, os.urandom(32), ttl=0.05)
    old = [uuid4() for _ in range(100)]
    store.create_many(old)
    time.sleep(0.06)
    new = uuid4()
    store.create_many([new])
    assert list(store._cache) == [new]  # every expired key is gone, not just replaced
    reads = table.reads
    assert store.key(old[0]) is not None  # read again from the table, still opens
    assert table.reads == reads + 1
    assert list(store._cache) == [new, old[0]]  # in expiry order
