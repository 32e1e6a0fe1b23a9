"""SQLite: the embedded default, one file in WAL mode."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import (
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
)

from adapters import side_tables
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
    """eventsourcing's SQLite application recorder, plus the side tables, written in the
    events' transaction."""

    def __init__(self, datastore: SQLiteDatastore) -> None:
        super().__init__(datastore, events_table_name=EVENTS_TABLE)
        self.db = SqliteDatabase(datastore)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *side_tables.ddl("sqlite")]

    def _insert_events(
        self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        side_tables.write(_SqliteCursor(c.sqlite_cursor), kwargs.get("side_effects"))
        return super()._insert_events(c, stored_events, **kwargs)

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
