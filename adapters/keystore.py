"""Data keys: one AES-256 key per data subject, stored wrapped under the master key.

* Personal fields of a client's events are encrypted with that client's key
  (``adapters.mapper.CryptoMapper``). Destroying the key (erasure) makes them
  unreadable for ever — crypto-shredding — while the events, their non-personal
  fields and the hash chain over their bytes stay intact.
* Keys are wrapped with AES-GCM under a key derived from the master key, bound to
  their subject (so a wrapped key cannot be moved to another subject).
* A key-check value tells at start-up whether the master key is the one this store
  was made with: a wrong key fails loudly, it never yields garbage.
* The blind-index key (keyed hashes of phones and emails) is stored the same way, so
  rotating the master key re-wraps it and leaves every hash unchanged.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.keys import MasterKeyError, derive_key
from adapters.sql import Cursor, Database, Dialect

BLIND_INDEX_SUBJECT = UUID(int=1)
"""The reserved subject whose key is the blind-index key."""

_NONCE = 12
_CHECK = b"crm-core key check v1"

DDL: dict[Dialect, list[str]] = {
    "postgresql": [
        "CREATE TABLE IF NOT EXISTS data_keys (subject_id uuid PRIMARY KEY, wrapped bytea,"
        " created_at timestamptz NOT NULL, destroyed_at timestamptz)",
        "CREATE TABLE IF NOT EXISTS key_check (id integer PRIMARY KEY, master_id text NOT NULL,"
        " sealed bytea NOT NULL)",
    ],
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS data_keys (subject_id TEXT PRIMARY KEY, wrapped BLOB,"
        " created_at TEXT NOT NULL, destroyed_at TEXT)",
        "CREATE TABLE IF NOT EXISTS key_check (id INTEGER PRIMARY KEY, master_id TEXT NOT NULL,"
        " sealed BLOB NOT NULL)",
    ],
}

DESTROY = (
    "INSERT INTO data_keys (subject_id, wrapped, created_at, destroyed_at)"
    " VALUES (%s, NULL, %s, %s)"
    " ON CONFLICT (subject_id) DO UPDATE SET wrapped = NULL, destroyed_at = EXCLUDED.destroyed_at"
)
"""Destroys a subject's key, leaving a tombstone so no new key is ever made for them."""


def destroy_keys(cursor: Cursor, subjects: list[UUID]) -> None:
    """Crypto-shred these subjects' keys, in the caller's transaction (the erasure's)."""
    cursor.executemany(DESTROY, destroy_rows(subjects))


def destroy_rows(subjects: list[UUID]) -> list[tuple[Any, ...]]:
    """``DESTROY``'s parameters for each subject."""
    now = datetime.now(UTC)
    return [(subject, now, now) for subject in subjects]


@dataclass(frozen=True)
class StoredKey:
    wrapped: bytes | None
    """``None`` once destroyed."""


class KeyTable(Protocol):
    """Where wrapped keys live (the product's database, or memory)."""

    def read_check(self) -> tuple[str, bytes] | None: ...
    def write_check(self, master_id: str, sealed: bytes) -> None: ...
    def read(self, subject: UUID) -> StoredKey | None: ...
    def insert(self, subject: UUID, wrapped: bytes) -> None:
        """Insert unless a row (a key or a tombstone) exists."""
        ...

    def insert_many(self, rows: list[tuple[UUID, bytes]]) -> None: ...
    def read_many(self, subjects: list[UUID]) -> dict[UUID, StoredKey]: ...

    def rewrap_all(self, rewrap: Any, master_id: str, sealed: bytes) -> int: ...
    def destroy(self, subjects: list[UUID]) -> None: ...


class SqlKeyTable:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_tables(self) -> None:
        with self.db.transaction() as cursor:
            for statement in DDL[self.db.dialect]:
                cursor.execute(statement)

    def read_check(self) -> tuple[str, bytes] | None:
        rows = self.db.query("SELECT master_id, sealed FROM key_check WHERE id = 1")
        return (str(rows[0][0]), bytes(rows[0][1])) if rows else None

    def write_check(self, master_id: str, sealed: bytes) -> None:
        self.db.execute(
            "INSERT INTO key_check (id, master_id, sealed) VALUES (1, %s, %s)"
            " ON CONFLICT (id) DO NOTHING",
            (master_id, sealed),
        )

    def read(self, subject: UUID) -> StoredKey | None:
        rows = self.db.query("SELECT wrapped FROM data_keys WHERE subject_id = %s", (subject,))
        if not rows:
            return None
        wrapped = rows[0][0]
        return StoredKey(None if wrapped is None else bytes(wrapped))

    def read_many(self, subjects: list[UUID]) -> dict[UUID, StoredKey]:
        found: dict[UUID, StoredKey] = {}
        for start in range(0, len(subjects), 500):
            chunk = subjects[start : start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            rows = self.db.query(
                f"SELECT subject_id, wrapped FROM data_keys WHERE subject_id IN ({marks})",  # noqa: S608
                chunk,
            )
            found.update({_uuid(s): StoredKey(None if w is None else bytes(w)) for s, w in rows})
        return found

    def insert(self, subject: UUID, wrapped: bytes) -> None:
        self.db.execute(
            "INSERT INTO data_keys (subject_id, wrapped, created_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (subject_id) DO NOTHING",
            (subject, wrapped, datetime.now(UTC)),
        )

    def insert_many(self, rows: list[tuple[UUID, bytes]]) -> None:
        now = datetime.now(UTC)
        with self.db.transaction() as cursor:
            cursor.executemany(
                "INSERT INTO data_keys (subject_id, wrapped, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (subject_id) DO NOTHING",
                [(subject, wrapped, now) for subject, wrapped in rows],
            )

    def rewrap_all(self, rewrap: Any, master_id: str, sealed: bytes) -> int:
        with self.db.transaction() as cursor:
            cursor.execute("SELECT subject_id, wrapped FROM data_keys WHERE wrapped IS NOT NULL")
            rows = cursor.fetchall()
            cursor.executemany(
                "UPDATE data_keys SET wrapped = %s WHERE subject_id = %s",
                [(rewrap(_uuid(s), bytes(wrapped)), _uuid(s)) for s, wrapped in rows],
            )
            cursor.execute(
                "UPDATE key_check SET master_id = %s, sealed = %s WHERE id = 1", (master_id, sealed)
            )
        return len(rows)

    def destroy(self, subjects: list[UUID]) -> None:
        with self.db.transaction() as cursor:
            destroy_keys(cursor, subjects)


class MemoryKeyTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[UUID, bytes | None] = {}
        self._check: tuple[str, bytes] | None = None

    def read_check(self) -> tuple[str, bytes] | None:
        return self._check

    def write_check(self, master_id: str, sealed: bytes) -> None:
        with self._lock:
            self._check = self._check or (master_id, sealed)

    def read(self, subject: UUID) -> StoredKey | None:
        with self._lock:
            return StoredKey(self._keys[subject]) if subject in self._keys else None

    def read_many(self, subjects: list[UUID]) -> dict[UUID, StoredKey]:
        with self._lock:
            return {s: StoredKey(self._keys[s]) for s in subjects if s in self._keys}

    def insert(self, subject: UUID, wrapped: bytes) -> None:
        with self._lock:
            self._keys.setdefault(subject, wrapped)

    def insert_many(self, rows: list[tuple[UUID, bytes]]) -> None:
        for subject, wrapped in rows:
            self.insert(subject, wrapped)

    def rewrap_all(self, rewrap: Any, master_id: str, sealed: bytes) -> int:
        with self._lock:
            live = {s: w for s, w in self._keys.items() if w is not None}
            self._keys.update({s: rewrap(s, w) for s, w in live.items()})
            self._check = (master_id, sealed)
            return len(live)

    def destroy(self, subjects: list[UUID]) -> None:
        with self._lock:
            for subject in subjects:
                self._keys[subject] = None


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(str(value))


def master_id(master_key: bytes) -> str:
    """A short, non-secret name of a master key (to say which one a store expects)."""
    return derive_key(master_key, "master-key-id/v1")[:6].hex()


class KeyStore:
    """Per-subject data keys, unwrapped on demand and cached for ``ttl`` seconds (so
    an erasure done by another process is honoured here within that time).

    The cache holds the keys used within the last ``ttl`` seconds only: entries are
    kept in expiry order (one ttl for all; a refreshed entry moves to the end) and the
    expired ones at the front are dropped whenever keys are added. Before, nothing was
    ever dropped: a rebuild ended holding every client's key, and a long-running API
    process every key it had used."""

    def __init__(self, table: KeyTable, master_key: bytes, *, ttl: float = 10.0) -> None:
        self.table = table
        self.ttl = ttl
        self._wrapping = AESGCM(derive_key(master_key, "key-wrapping/v1"))
        self._master_id = master_id(master_key)
        self._cache: OrderedDict[UUID, tuple[float, bytes | None]] = OrderedDict()
        self._lock = threading.Lock()

    def open(self) -> None:
        """Check the master key against the store's key-check value (writing one on
        first use). Raises ``MasterKeyError`` if it is not the store's key."""
        check = self.table.read_check()
        if check is None:
            self.table.write_check(self._master_id, self._seal_check(self._wrapping))
            check = self.table.read_check()
        assert check is not None
        expected_id, sealed = check
        try:
            _open(self._wrapping, sealed, b"key-check")
        except InvalidTag:
            raise MasterKeyError(
                f"the master key (id {self._master_id}) does not open this store's keys, "
                f"which were made with key id {expected_id}: check CRM_MASTER_KEY / "
                "CRM_KEY_FILE"
            ) from None

    def key(self, subject: UUID, *, create: bool = False) -> bytes | None:
        """The subject's data key; ``None`` if it was destroyed (or never made and
        ``create`` is false). A destroyed key is never made again."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(subject)
            if cached is not None and cached[0] > now and (cached[1] is not None or not create):
                return cached[1]
        stored = self.table.read(subject)
        if stored is None and create:
            self.table.insert(subject, self._wrap(subject, AESGCM.generate_key(bit_length=256)))
            stored = self.table.read(subject)
        key = None
        if stored is not None and stored.wrapped is not None:
            key = _open(self._wrapping, stored.wrapped, _aad(subject))
        self._remember({subject: key}, now)
        return key

    def prefetch(self, subjects: set[UUID]) -> None:
        """Unwrap and cache the keys of these subjects with one read (a batch of
        events to decode)."""
        now = time.monotonic()
        with self._lock:
            missing = [s for s in subjects if (c := self._cache.get(s)) is None or c[0] <= now]
        if not missing:
            return
        stored = self.table.read_many(missing)
        keys = {
            subject: None
            if (row := stored.get(subject)) is None or row.wrapped is None
            else _open(self._wrapping, row.wrapped, _aad(subject))
            for subject in missing
        }
        self._remember(keys, now)

    def learn(self, subject: UUID, wrapped: bytes | None) -> None:
        """Cache a subject's stored key that was read elsewhere: with the subject's
        events, in the same round trip (``adapters.postgres``); ``wrapped`` is
        ``None`` for a destroyed key. A key this master key does not open is left
        for ``key`` to report."""
        try:
            key = None if wrapped is None else _open(self._wrapping, wrapped, _aad(subject))
        except InvalidTag:
            return
        self._remember({subject: key}, time.monotonic())

    def create_many(self, subjects: list[UUID]) -> None:
        """Keys for many new subjects in one statement (bulk loading), cached."""
        keys = {subject: AESGCM.generate_key(bit_length=256) for subject in subjects}
        self.table.insert_many([(s, self._wrap(s, key)) for s, key in keys.items()])
        self._remember(keys, time.monotonic())

    def _remember(self, keys: Mapping[UUID, bytes | None], now: float) -> None:
        """Cache ``keys`` until ``now + ttl``; drop the entries that have expired."""
        expiry = now + self.ttl
        with self._lock:
            cache = self._cache
            for subject, key in keys.items():
                cache[subject] = (expiry, key)
                cache.move_to_end(subject)
            while cache:
                oldest = next(iter(cache))
                if cache[oldest][0] > now:
                    break
                del cache[oldest]

    def destroy(self, subjects: list[UUID]) -> None:
        """Destroy keys outside an event transaction (tests, tools); erasure destroys
        them in its own transaction through the recorder."""
        self.table.destroy(subjects)
        self.forget(subjects)

    def forget(self, subjects: list[UUID]) -> None:
        """Drop cached keys (after they were destroyed)."""
        with self._lock:
            for subject in subjects:
                self._cache.pop(subject, None)

    def rotate(self, new_master_key: bytes) -> int:
        """Re-wrap every live key (and the key check) under a new master key, in one
        transaction; events are not touched. Returns how many keys were re-wrapped."""
        new_wrapping = AESGCM(derive_key(new_master_key, "key-wrapping/v1"))

        def rewrap(subject: UUID, wrapped: bytes) -> bytes:
            key = _open(self._wrapping, wrapped, _aad(subject))
            return _seal(new_wrapping, key, _aad(subject))

        count = self.table.rewrap_all(
            rewrap, master_id(new_master_key), self._seal_check(new_wrapping)
        )
        self._wrapping = new_wrapping
        self._master_id = master_id(new_master_key)
        with self._lock:
            self._cache.clear()
        return count

    def _wrap(self, subject: UUID, key: bytes) -> bytes:
        return _seal(self._wrapping, key, _aad(subject))

    @staticmethod
    def _seal_check(wrapping: AESGCM) -> bytes:
        return _seal(wrapping, _CHECK, b"key-check")


def _aad(subject: UUID) -> bytes:
    return b"crm-core/data-key/" + subject.bytes


def _seal(aead: AESGCM, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(_NONCE)
    return nonce + aead.encrypt(nonce, plaintext, aad)


def _open(aead: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    return aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], aad)
