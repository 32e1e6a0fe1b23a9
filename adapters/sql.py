"""A small SQL gateway shared by the PostgreSQL and SQLite adapters.

Statements are written once with ``%s`` placeholders; the SQLite gateway rewrites them
to ``?``, passes UUIDs as text and instants as fixed-width UTC text (so that text
order is time order). Rows come back as tuples; ``as_datetime`` and ``as_uuid`` read
columns back the same way on both.

A keyed read that the HTTP API serves often is written once as a ``Query`` (its SQL,
parameters and how rows become the answer), so that it can run blocking
(``Database.run``) or on an event loop (``Reads.run``) without being written twice; a
read of several statements in one snapshot likewise as ``Steps`` (``run_steps``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Generic, Literal, Protocol, TypeVar
from uuid import UUID

import anyio.to_thread
from eventsourcing.postgres import PostgresDatastore
from eventsourcing.sqlite import SQLiteDatastore
from psycopg import IsolationLevel
from psycopg.rows import tuple_row

Dialect = Literal["postgresql", "sqlite"]

TYPES: dict[Dialect, dict[str, str]] = {
    "postgresql": {
        "uuid": "uuid",
        "ts": "timestamptz",
        "text": "text",
        "int": "bigint",
        "bool": "boolean",
        "money": "bigint",
    },
    "sqlite": {
        "uuid": "TEXT",
        "ts": "TEXT",
        "text": "TEXT",
        "int": "INTEGER",
        "bool": "INTEGER",
        "money": "INTEGER",
    },
}
"""Column types by dialect; DDL is written with ``{uuid}``, ``{ts}``… placeholders.
Money is stored as an exact integer count of ten-thousandths (see ``to_units``)."""


DDL_LOCK_PREFIX = "crm-ddl:"
DDL_XACT_LOCK_SQL = (
    f"SELECT pg_advisory_xact_lock(hashtextextended('{DDL_LOCK_PREFIX}' || current_schema(), 0))"
)
"""PostgreSQL: the lock under which a schema's tables are created (``postgres.ddl_lock``),
held to the end of the caller's transaction."""


T = TypeVar("T")
Rows = list[tuple[Any, ...]]
Statement = tuple[str, Sequence[Any]]
Steps = Generator[Statement, Rows, T]
"""A read of several statements, each made from the rows of those before: the
generator yields a statement and its parameters, is sent its rows, and returns the
answer. ``Database.run_steps`` and ``Reads.run_steps`` run it in one snapshot."""


def drive(steps: Steps[T], execute: Callable[[str, Sequence[Any]], Rows]) -> T:
    """Run ``steps``, each statement through ``execute``; their answer."""
    try:
        sql, params = next(steps)
        while True:
            sql, params = steps.send(execute(sql, params))
    except StopIteration as done:
        answer: T = done.value
        return answer


async def drive_async(
    steps: Steps[T], execute: Callable[[str, Sequence[Any]], Awaitable[Rows]]
) -> T:
    """``drive`` with statements that are awaited."""
    try:
        sql, params = next(steps)
        while True:
            sql, params = steps.send(await execute(sql, params))
    except StopIteration as done:
        answer: T = done.value
        return answer


def _in_snapshot(db: Database, steps: Steps[T]) -> T:
    with db.snapshot() as cursor:

        def execute(sql: str, params: Sequence[Any]) -> Rows:
            cursor.execute(sql, params)
            rows: Rows = cursor.fetchall()
            return rows

        return drive(steps, execute)


@dataclass(frozen=True, slots=True)
class Query(Generic[T]):
    """One read: a statement with ``%s`` placeholders, its parameters, and ``shape``,
    which makes the answer of the rows."""

    sql: str
    params: Sequence[Any]
    shape: Callable[[Rows], T]


class Cursor(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> Any: ...
    def fetchall(self) -> list[tuple[Any, ...]]: ...
    def fetchone(self) -> tuple[Any, ...] | None: ...

    @property
    def rowcount(self) -> int: ...


class Database(Protocol):
    """One connection pool, used in short transactions."""

    dialect: Dialect

    def transaction(self) -> Any:
        """A context manager yielding a ``Cursor``; commits on success. On SQLite it
        takes the write lock at once (``BEGIN IMMEDIATE``)."""
        ...

    def snapshot(self) -> Any:
        """A context manager yielding a ``Cursor`` for reads only, every statement of
        which sees the same state of the database."""
        ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def run(self, query: Query[T]) -> T:
        """``query``'s answer, read in a transaction of its own."""
        ...

    def run_steps(self, steps: Steps[T]) -> T:
        """``steps``' answer, read in one snapshot."""
        ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    def scrub(self) -> None:
        """Make deleted and overwritten values unrecoverable from the database's files
        where the engine can (after an erasure's purge)."""
        ...

    def tidy(self, tables: Sequence[str]) -> None:
        """Ready freshly filled tables for reading (after a rebuild swapped them in)."""
        ...


def insert_rows(
    cursor: Cursor,
    dialect: Dialect,
    table: str,
    columns: str,
    rows: Sequence[Sequence[Any]],
    *,
    types: Sequence[str] | None = None,
) -> None:
    """Insert many rows into ``table`` (``columns`` comma-separated): one ``COPY`` on
    PostgreSQL (an order of magnitude cheaper than row-by-row ``INSERT`` s), one
    ``executemany`` on SQLite. Given the columns' PostgreSQL ``types``, the ``COPY``
    is binary: psycopg formats a row in a fraction of the CPU the text format takes
    (docs/PERFORMANCE.md, Rebuild), and the server parses no timestamps or ids from
    text."""
    if not rows:
        return
    if dialect == "postgresql":
        binary = " (FORMAT BINARY)" if types else ""
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN{binary}") as copy:  # type: ignore[attr-defined]
            if types:
                copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    else:
        marks = ", ".join(["%s"] * len(rows[0]))
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)  # noqa: S608


UNITS = Decimal(10_000)


def to_units(amount: Decimal) -> int:
    """Money as an exact integer count of ten-thousandths (amounts have at most 4
    decimal places), so sums are exact in SQL on both dialects."""
    return int(amount * UNITS)


def from_units(units: int | None) -> Decimal:
    return Decimal(0) if units is None else Decimal(int(units)) / UNITS


def sqlite_instant(value: datetime) -> str:
    """Fixed-width UTC text (so text order is time order): 2024-01-02T03:04:05.000006+00:00."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")


def as_datetime(value: Any) -> datetime:
    """A timestamp column as an aware UTC datetime, whichever the dialect."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(value).astimezone(UTC)


def as_optional_datetime(value: Any) -> datetime | None:
    return None if value is None else as_datetime(value)


def as_uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


_PLAIN = frozenset({str, int, float, bytes, bool, type(None)})


def _sqlite_param(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:  # the common case, decided without isinstance chains
        return value
    if kind is datetime or isinstance(value, datetime):
        return sqlite_instant(value)
    if kind is UUID or isinstance(value, UUID):
        return str(value)
    return value


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

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)


class SqliteDatabase:
    dialect: Dialect = "sqlite"

    def __init__(self, datastore: SQLiteDatastore) -> None:
        self.datastore = datastore

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        with self.datastore.get_connection(commit=True) as conn:
            cursor = conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteCursor(cursor.sqlite_cursor)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @contextmanager
    def snapshot(self) -> Iterator[Cursor]:
        # a deferred transaction reads one state of the WAL from its first SELECT on
        with self.datastore.get_connection(commit=False) as conn:
            cursor = conn.cursor()
            cursor.execute("BEGIN")
            try:
                yield _SqliteCursor(cursor.sqlite_cursor)
            finally:
                conn.rollback()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.datastore.transaction(commit=False) as cursor:
            wrapped = _SqliteCursor(cursor)
            wrapped.execute(sql, params)
            return wrapped.fetchall()

    def run(self, query: Query[T]) -> T:
        return query.shape(self.query(query.sql, query.params))

    def run_steps(self, steps: Steps[T]) -> T:
        return _in_snapshot(self, steps)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cursor:
            cursor.execute(sql, params)

    def tidy(self, tables: Sequence[str]) -> None:
        """Nothing to do: SQLite reads a table's rows through its indexes alone
        without knowing which transactions may see them."""
        del tables

    def scrub(self) -> None:
        """Fold the write-ahead log into the file and empty it: its older page images
        still hold values since purged (deleted content in the file itself is zeroed,
        as connections use ``secure_delete``). Best effort: a reader holding an old
        snapshot delays it to the next erasure."""
        with self.datastore.get_connection(commit=True) as conn:
            conn.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")


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
            yield cursor

    @contextmanager
    def snapshot(self) -> Iterator[Cursor]:
        # The isolation and read-only mode ride on the BEGIN (a connection's settings
        # cost no round trip; they are put back before it returns to the pool). Ended
        # by a COMMIT, which changes nothing in a read-only transaction: psycopg
        # forgets the connection's prepared statements at every ROLLBACK (PostgreSQL
        # would drop those prepared in it), so the repeated reads of a snapshot (the
        # funnel's) would be parsed and planned anew each time.
        with self.datastore.get_connection() as conn:
            isolation, read_only = conn.isolation_level, conn.read_only
            conn.isolation_level, conn.read_only = IsolationLevel.REPEATABLE_READ, True
            try:
                with conn.transaction(), conn.cursor(row_factory=tuple_row) as cursor:
                    yield cursor
            finally:
                conn.isolation_level, conn.read_only = isolation, read_only

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row) as cursor,
        ):
            cursor.execute(sql, params)
            return cursor.fetchall()

    def run(self, query: Query[T]) -> T:
        return query.shape(self.query(query.sql, query.params))

    def run_steps(self, steps: Steps[T]) -> T:
        return _in_snapshot(self, steps)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.transaction() as cursor:
            cursor.execute(sql, params)

    def tidy(self, tables: Sequence[str]) -> None:
        """``VACUUM (ANALYZE)``: marks the pages visible to every transaction, so that
        a read an index covers never visits the table (an index-only scan; until then
        every row found is fetched from the table to check it), and gathers the
        planner's statistics. Autovacuum would, later, where it is on (what it saves:
        docs/PERFORMANCE.md, HTTP reads)."""
        if not tables:
            return
        with self.datastore.get_connection() as conn:  # autocommit: VACUUM needs it
            conn.execute(f"VACUUM (ANALYZE) {', '.join(tables)}")

    def scrub(self) -> None:
        """Nothing to do: a dump never holds deleted row versions (VACUUM reclaims
        their space in the files over time)."""


class Reads(Protocol):
    """Reads for code running on an event loop (the HTTP API): the loop goes on
    serving other requests while a query waits for the database."""

    async def run(self, query: Query[T]) -> T: ...

    async def run_steps(self, steps: Steps[T]) -> T:
        """``steps``' answer, read in one snapshot."""
        ...


class ThreadedReads:
    """``Reads`` over a blocking ``Database``: each query runs in a worker thread (SQLite,
    whose driver has no asynchronous interface; and PostgreSQL before
    ``postgres.AsyncReads`` is open)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def run(self, query: Query[T]) -> T:
        return await anyio.to_thread.run_sync(self.db.run, query)

    async def run_steps(self, steps: Steps[T]) -> T:
        return await anyio.to_thread.run_sync(self.db.run_steps, steps)
