"""The export limit's counts, in the product's database (PostgreSQL or SQLite), so
that every API worker enforces one limit and a restart does not reset it."""

from __future__ import annotations

from adapters.sql import Database, Dialect

_DDL: dict[Dialect, list[str]] = {
    "postgresql": [
        "CREATE TABLE IF NOT EXISTS export_counts ("
        " user_id text NOT NULL, window_start bigint NOT NULL, count bigint NOT NULL,"
        " PRIMARY KEY (user_id, window_start))",
    ],
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS export_counts ("
        " user_id TEXT NOT NULL, window_start INTEGER NOT NULL, count INTEGER NOT NULL,"
        " PRIMARY KEY (user_id, window_start)) WITHOUT ROWID",
    ],
}

# One statement counts and checks: the row of (user, window) is locked while it is
# updated, and an update the WHERE refuses returns no row. So two workers taking the
# last unit at once cannot both get it.
_TAKE = (
    "INSERT INTO export_counts (user_id, window_start, count) VALUES (%s, %s, 1)"
    " ON CONFLICT (user_id, window_start) DO UPDATE SET count = export_counts.count + 1"
    " WHERE export_counts.count < %s RETURNING count"
)
_FORGET = "DELETE FROM export_counts WHERE user_id = %s AND window_start < %s"


class SqlExportCounts:
    """``application.ports.ExportCounts`` in an ``export_counts`` table: one row per
    user and window; a user's past windows are deleted when their next one begins."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def create_tables(self) -> None:
        with self.db.transaction() as cursor:
            for statement in _DDL[self.db.dialect]:
                cursor.execute(statement)

    def take(self, user_id: str, window_start: int, most: int) -> bool:
        with self.db.transaction() as cursor:
            cursor.execute(_TAKE, (user_id, window_start, most))
            row = cursor.fetchone()
            if row is not None and int(row[0]) == 1:  # a new window: the old ones are done
                cursor.execute(_FORGET, (user_id, window_start))
            return row is not None
