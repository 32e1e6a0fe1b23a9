"""The SQL side shared by every read model: tables that can be rebuilt beside the live
ones, and the batch-apply contract the projector drives."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar

from eventsourcing.persistence import Notification

from adapters.sql import TYPES, Cursor, Database, Dialect, Steps, insert_rows
from projections.base import Recorded

REBUILD_PREFIX = "rebuild_"

_TYPED_COLUMN = re.compile(r"(\w+) \{(\w+)\}")
"""A column declaration in ``Table.columns``: its name and type placeholder."""


@dataclass(frozen=True)
class Table:
    """A table of a read model. ``columns`` uses the ``{uuid}``, ``{ts}``, ``{text}``,
    ``{int}``, ``{bool}`` and ``{money}`` type placeholders and must declare a
    PRIMARY KEY; ``indexes`` are column lists.

    ``query_only`` names those of ``indexes`` that only the model's queries use,
    never its writes: a rebuild makes them at its end, in one pass over the rows,
    instead of keeping them up to date row by row."""

    logical: str
    columns: str
    indexes: tuple[str, ...] = ()
    query_only: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if unknown := set(self.query_only) - set(self.indexes):
            raise ValueError(f"query_only names no index of {self.logical}: {sorted(unknown)}")


class SqlReadModel(ABC):
    """A read model stored in SQL.

    Its physical tables are ``<prefix><name>_<logical>``: the live ones have no
    prefix, a rebuild writes ``rebuild_…`` tables beside them and swaps them in.
    Subclasses declare ``name``, ``tables`` and ``topics`` and implement ``apply``.

    A *raw* model (``raw = True``) sees the stored records themselves, undecoded, of
    every topic: it implements ``apply_raw`` instead and leaves ``topics`` empty.
    """

    name: ClassVar[str]
    tables: ClassVar[tuple[Table, ...]]
    topics: ClassVar[frozenset[str]]
    """Stored event topics this read model needs; others are never decoded for it."""
    raw: ClassVar[bool] = False
    """True: the projector passes every stored record, undecoded, to ``apply_raw``."""

    def __init__(self, db: Database, *, prefix: str = "") -> None:
        self.db = db
        self.dialect: Dialect = db.dialect
        self.prefix = prefix
        self.rebuilding = prefix == REBUILD_PREFIX
        """Tables a rebuild writes beside the live ones: ``finish_rebuild`` runs before
        they are swapped in."""
        self.t = {table.logical: self.physical(table.logical, prefix) for table in self.tables}
        self._column_types = {
            table.logical: {
                name: TYPES[self.dialect][placeholder]
                for name, placeholder in _TYPED_COLUMN.findall(table.columns)
            }
            for table in self.tables
        }

    @classmethod
    def physical(cls, logical: str, prefix: str = "") -> str:
        return f"{prefix}{cls.name}_{logical}"

    def create_statements(self) -> list[str]:
        types = TYPES[self.dialect]
        statements = []
        for table in self.tables:
            name = self.t[table.logical]
            statements.append(
                f"CREATE TABLE IF NOT EXISTS {name} ({table.columns.format(**types)})"
            )
            statements.extend(
                f"CREATE INDEX IF NOT EXISTS {name}_i{n} ON {name} ({columns})"
                for n, columns in enumerate(table.indexes)
                if not (self.rebuilding and columns in table.query_only)
            )
        return statements

    def upgrade(self, cursor: Cursor) -> None:
        """Bring tables made by an earlier version up to date, after
        ``create_statements`` (in the same transaction); nothing by default."""
        del cursor

    def upgrade_indexes(self, cursor: Cursor) -> None:
        """Make again each index whose columns changed since its table was made: it
        keeps its name (``<table>_i<n>``), which ``CREATE INDEX IF NOT EXISTS`` would
        find and leave as it was; drop those named so that the model no longer
        declares (an earlier version had more). One catalog query for all of the
        model's tables."""
        declared = {
            f"{self.t[table.logical]}_i{n}": (self.t[table.logical], columns)
            for table in self.tables
            for n, columns in enumerate(table.indexes)
        }
        tables = [self.t[table.logical] for table in self.tables]
        marks = ", ".join(["%s"] * len(tables))
        if self.dialect == "postgresql":
            cursor.execute(
                "SELECT tablename, indexname, indexdef FROM pg_indexes"
                f" WHERE schemaname = current_schema() AND tablename IN ({marks})",
                tables,
            )
        else:
            cursor.execute(
                "SELECT tbl_name, name, sql FROM sqlite_master"
                f" WHERE type = 'index' AND tbl_name IN ({marks})",
                tables,
            )
        for table, index, definition in cursor.fetchall():
            if str(index) in declared:
                _, columns = declared[str(index)]
                if _columns_of(str(definition)) != _columns_of(f"({columns})"):
                    cursor.execute(f"DROP INDEX {index}")
                    cursor.execute(f"CREATE INDEX {index} ON {table} ({columns})")
            elif re.fullmatch(rf"{re.escape(str(table))}_i\d+", str(index)):
                cursor.execute(f"DROP INDEX {index}")

    def finish_rebuild(self, cursor: Cursor) -> None:
        """Complete what this model leaves to the end of a rebuild, after its last
        batch, in the transaction that swaps the rebuilt tables in: by default, make
        the indexes only queries use (on SQLite the swap makes every index again,
        under its live name)."""
        if self.dialect == "sqlite":
            return
        for table in self.tables:
            name = self.t[table.logical]
            for n, columns in enumerate(table.indexes):
                if columns in table.query_only:
                    cursor.execute(f"CREATE INDEX IF NOT EXISTS {name}_i{n} ON {name} ({columns})")

    def drop_statements(self) -> list[str]:
        return [f"DROP TABLE IF EXISTS {self.t[table.logical]}" for table in self.tables]

    def insert(
        self, cursor: Cursor, logical: str, columns: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` into this model's table ``logical`` in one bulk write
        (binary on PostgreSQL: each value must be of its column's Python type — a
        ``UUID`` for ``{uuid}``, an aware ``datetime`` for ``{ts}``, ``str``, ``int``,
        ``bool``)."""
        declared = self._column_types[logical]
        types = None
        if self.dialect == "postgresql":
            types = [declared[name.strip()] for name in columns.split(",")]
        insert_rows(cursor, self.dialect, self.t[logical], columns, rows, types=types)

    def add_day_totals(
        self,
        cursor: Cursor,
        tables: tuple[str, str],
        columns: tuple[tuple[str, ...], tuple[str, ...]],
        totals: Mapping[tuple[Any, ...], Sequence[int]],
    ) -> None:
        """Add ``totals`` to a pair of summed ``tables``, by day and by span: ``columns``
        are the day table's key columns (``day`` among them) and value columns, and
        ``totals`` the amounts to add per key. The span table has ``span`` where the
        day table has ``day``. A row whose amounts come back to zero goes, as a
        rebuild would leave none."""
        keys, values = columns
        at = keys.index("day")
        spans: dict[tuple[Any, ...], list[int]] = {}
        for key, amounts in totals.items():
            span = spans.setdefault(
                (*key[:at], key[at] // SPAN_DAYS, *key[at + 1 :]), [0] * len(values)
            )
            for i, amount in enumerate(amounts):
                span[i] += amount
        day_table, span_table = tables
        self._add_totals(cursor, day_table, keys, values, totals)
        span_keys = (*keys[:at], "span", *keys[at + 1 :])
        self._add_totals(cursor, span_table, span_keys, values, spans)

    def _add_totals(
        self,
        cursor: Cursor,
        logical: str,
        keys: tuple[str, ...],
        values: tuple[str, ...],
        totals: Mapping[tuple[Any, ...], Sequence[int]],
    ) -> None:
        changed = [(*key, *amounts) for key, amounts in totals.items() if any(amounts)]
        if not changed:
            return
        table = self.t[logical]
        columns = ", ".join((*keys, *values))
        upsert = f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET " + ", ".join(
            f"{value} = {table}.{value} + excluded.{value}" for value in values
        )
        if self.dialect == "postgresql":  # one statement for them all: a column an array
            types = self._column_types[logical]
            arrays = ", ".join(f"%b::{types[column]}[]" for column in (*keys, *values))
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}){upsert}",
                [list(column) for column in zip(*changed, strict=True)],
            )
        else:
            marks = ", ".join(["%s"] * (len(keys) + len(values)))
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}){upsert}", changed)
        when = keys.index("day") if "day" in keys else keys.index("span")
        zero = " AND ".join(f"{value} = 0" for value in values)
        touched = sorted({row[when] for row in changed})
        for part in chunks(touched, REFOLD_CHUNK[self.dialect]):
            cursor.execute(  # back to zero leaves no row
                f"DELETE FROM {table} WHERE {zero}"
                f" AND {keys[when]} IN ({', '.join(['%s'] * len(part))})",
                part,
            )

    def sum_spans(
        self,
        cursor: Cursor,
        tables: tuple[str, str],
        columns: tuple[tuple[str, ...], tuple[str, ...]],
    ) -> None:
        """Fill the span table of ``tables`` from its day table (see
        ``add_day_totals``) in one statement, leaving out spans that sum to zero."""
        keys, values = columns
        day_table, span_table = (self.t[logical] for logical in tables)
        grouped = ", ".join(span_of_sql("day") if key == "day" else key for key in keys)
        named = ", ".join("span" if key == "day" else key for key in keys)
        cursor.execute(
            f"INSERT INTO {span_table} ({named}, {', '.join(values)})"
            f" SELECT {grouped}, {', '.join(f'SUM({value})' for value in values)}"
            f" FROM {day_table} GROUP BY {grouped}"
            f" HAVING {' OR '.join(f'SUM({value}) <> 0' for value in values)}"
        )

    @abstractmethod
    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        """Fold ``batch`` (in position order, only this model's topics) into the
        tables, inside the projector's transaction."""

    def apply_raw(self, cursor: Cursor, notifications: Sequence[Notification]) -> None:
        """Fold ``notifications`` (the stored records of every topic, in position
        order, undecoded) into the tables, inside the projector's transaction; only
        called on ``raw`` models."""
        raise NotImplementedError(f"{type(self).__name__} is not a raw read model")


# ------------------------------------------------------------------ shared helpers

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SPAN_DAYS = 32
"""Days per span of the models' per-span sums (the lifecycle's deltas, the funnel's
sums): a figure as of T reads at most one row per span and key before T's span, and
31 days' rows within it."""


def day_of(at: datetime) -> int:
    """The UTC day holding instant ``at``, as days since 1970-01-01."""
    return (at - EPOCH) // timedelta(days=1)


DAY_OF_SQL = {
    # ``day_of`` of the timestamp column {column}, exactly: from its date, not from a
    # floating-point count of seconds.
    "postgresql": "(({column} AT TIME ZONE 'UTC')::date - DATE '1970-01-01')",
    "sqlite": "CAST(julianday(substr({column}, 1, 10)) - julianday('1970-01-01') AS INTEGER)",
}


def span_of_sql(day: str) -> str:
    """The span of the day number ``day`` (an SQL expression), rounded down as
    ``day // SPAN_DAYS`` is, for days before 1970 too (SQL's division truncates)."""
    return f"(({day}) - ((({day}) % {SPAN_DAYS}) + {SPAN_DAYS}) % {SPAN_DAYS}) / {SPAN_DAYS}"


REFOLD_CHUNK = {"postgresql": 2000, "sqlite": 500}
"""Ids read per query when rows derived from them are made again (SQLite before 3.32
allows 999 parameters in a statement)."""

K = TypeVar("K")
M = TypeVar("M", bound=SqlReadModel)
P = ParamSpec("P")
R = TypeVar("R")


def blocking(steps: Callable[Concatenate[M, P], Steps[R]]) -> Callable[Concatenate[M, P], R]:
    """A model's read written as steps (``adapters.sql.Steps``), run in one snapshot of
    its database: the blocking twin of what the HTTP API runs on its event loop."""

    @wraps(steps)
    def run(model: M, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return model.db.run_steps(steps(model, *args, **kwargs))

    return run


def chunks(items: list[K], size: int) -> list[list[K]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _columns_of(definition: str) -> list[str]:
    """The column list of an index definition: ``… (a, b)`` → ``["a", "b"]``."""
    inside = definition.rpartition("(")[2].partition(")")[0]
    return [column.strip().lower() for column in inside.split(",")]


def swap_statements(model: type[SqlReadModel], dialect: Dialect) -> list[str]:
    """Replace the live tables of ``model`` by the rebuilt ones, indexes included.

    Run in one transaction: readers see the old tables or the new, never a mix.
    """
    statements = [f"DROP TABLE IF EXISTS {model.physical(t.logical)}" for t in model.tables]
    for table in model.tables:
        live = model.physical(table.logical)
        rebuilt = model.physical(table.logical, REBUILD_PREFIX)
        statements.append(f"ALTER TABLE {rebuilt} RENAME TO {live}")
        if dialect == "postgresql":  # the primary key's index is named after its table
            statements.append(f"ALTER TABLE {live} RENAME CONSTRAINT {rebuilt}_pkey TO {live}_pkey")
        for n, columns in enumerate(table.indexes):
            if dialect == "postgresql":
                statements.append(f"ALTER INDEX {rebuilt}_i{n} RENAME TO {live}_i{n}")
            else:  # SQLite cannot rename an index: build it under its live name
                statements.append(f"DROP INDEX IF EXISTS {rebuilt}_i{n}")
                statements.append(f"CREATE INDEX {live}_i{n} ON {live} ({columns})")
    return statements
