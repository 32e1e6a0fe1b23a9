"""SQLite: the embedded default, one file in WAL mode."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteDatastore,
)

from adapters import side_tables
from adapters.group_commit import GroupCommitter, Write
from adapters.sql import SqliteDatabase, _SqliteCursor
from application.ports import EventRecorder, IdempotencyRecord

EVENTS_TABLE = "events"


class _ShreddingPool(SQLiteConnectionPool):
    """Connections that overwrite deleted content (``secure_delete``), so a purged
    personal value or a destroyed key does not linger in the file's free space."""

    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        connection.cursor().execute("PRAGMA secure_delete = ON")
        return connection


def connect(path: Path) -> SQLiteDatastore:
    """A datastore on the file at ``path`` (created if missing); eventsourcing switches
    file databases to WAL mode on first connection."""
    path.parent.mkdir(parents=True, exist_ok=True)
    datastore = SQLiteDatastore(db_name=str(path), lock_timeout=30)
    datastore.pool.close()
    datastore.pool = _ShreddingPool(db_name=str(path), lock_timeout=30, pool_size=8, max_overflow=8)
    return datastore


def truncate_log(datastore: SQLiteDatastore) -> None:
    """Fold the write-ahead log into the database file and empty it, so that older
    page images (holding values since purged) do not stay in the ``-wal`` file."""
    with datastore.transaction(commit=False) as cursor:
        cursor.execute("ROLLBACK")  # a checkpoint cannot run inside a transaction
        cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cursor.execute("BEGIN")


class SqliteEventRecorder(SQLiteApplicationRecorder, EventRecorder):
    """eventsourcing's SQLite application recorder, plus the side tables written in the
    events' transaction, with group commit: concurrent writes share one transaction,
    each in a savepoint of its own (see ``adapters.group_commit``)."""

    def __init__(self, datastore: SQLiteDatastore) -> None:
        super().__init__(datastore, events_table_name=EVENTS_TABLE)
        self.db = SqliteDatabase(datastore)
        # A connection per batch, not per run of batches: the datastore's writer lock
        # keeps readers out while it is held.
        self._committer = GroupCommitter(nullcontext, self._write_batch)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        return self._committer.submit(stored_events, kwargs.get("side_effects"))

    def _write_batch(self, _: None, batch: list[Write]) -> None:
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            raw = cursor.sqlite_cursor
            raw.execute("BEGIN IMMEDIATE")
            try:
                for write in batch:
                    raw.execute("SAVEPOINT write")
                    try:
                        side_tables.write(_SqliteCursor(raw), write.side_effects)
                        positions = super()._insert_events(cursor, write.events)
                        write.positions = list(positions or [])
                        raw.execute("RELEASE write")
                    except sqlite3.IntegrityError as error:  # this write fails alone
                        raw.execute("ROLLBACK TO write")
                        raw.execute("RELEASE write")
                        write.error = IntegrityError(str(error))
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *side_tables.ddl("sqlite")]

    def claim_owner(self, kind: str, digest: str) -> UUID | None:
        return side_tables.claim_owner(self.db, kind, digest)

    def idempotency_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        return side_tables.idempotency_record(self.db, scope, key)

    def position_of(self, originator_id: UUID, version: int) -> int | None:
        rows = self.db.query(
            "SELECT rowid FROM events WHERE originator_id = %s AND originator_version = %s",
            (originator_id.hex, version),  # eventsourcing stores SQLite UUIDs as hex
        )
        return int(rows[0][0]) if rows else None
