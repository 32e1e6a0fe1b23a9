"""A small SQL gateway shared by the PostgreSQL and SQLite adapters.

Statements are written once with ``%s`` placeholders; the SQLite gateway rewrites them
to ``?`` and passes UUIDs as text. Rows come back as tuples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg.rows import tuple_row

Dialect = Literal["postgresql", "sqlite"]


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...


class Database(Protocol):
    """One connection pool, used in short transactions."""

    dialect: Dialect

    def transaction(self) -> Any:
        """A context manager yielding a ``Cursor``; commits on success."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...


class _SqliteCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._cursor.execute(sql.replace("%s", "?"), [_sqlite_param(p) for p in params])

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._cursor.executemany(
            sql.replace("%s", "?"), [[_sqlite_param(p) for p in row] for row in rows]
        )

    def fetchall(self) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self._cursor.fetchall()]

    def fetchone(self) -> tuple[Any, ...] | None:
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)


def _sqlite_param(value: Any) -> Any:
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


class SqliteDatabase:
    dialect: Dialect = "sqlite"

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.datastore.transaction(commit=True) as cursor:
            yield _SqliteCursor(cursor)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.datastore.transaction(commit=False) as cursor:
            wrapped = _SqliteCursor(cursor)
            wrapped.execute(sql, params)
            return wrapped.fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cursor:
            cursor.execute(sql, params)


class PostgresDatabase:
    dialect: Dialect = "postgresql"

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            yield cursor  # type: ignore[misc]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(sql, params)
            return cursor.fetchall()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cursor:
            cursor.execute(sql, params)
