"""Audit trail tables: the entries, and which client each deal belongs to.

Entries are ordered by (position, seq): new events always get larger positions, so a
cursor "after this entry" never skips nor repeats an entry while events keep coming.
Every value reaches the database as a parameter, never inside the SQL text.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any
from uuid import UUID

import orjson

from adapters.read_models.base import SqlReadModel, Table
from adapters.sql import Cursor, Query, Rows, T, as_datetime, as_uuid
from projections import audit
from projections.audit import AuditEntry
from projections.base import Recorded

COLUMNS = tuple(f.name for f in fields(AuditEntry))
"""Column order of the entries table, of query rows and of the exports."""
_row = attrgetter(*COLUMNS)
"""An entry as a row of ``COLUMNS`` (one C call: a rebuild makes a row per entry)."""
_SELECT = ", ".join(COLUMNS)
_CURSOR = re.compile(r"(0|[1-9][0-9]{0,18}):(0|[1-9][0-9]{0,8})")
_CHUNK = 500


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    next_cursor: str | None
    """Pass as ``cursor`` for the entries after this page; ``None`` when there are none."""


@dataclass(frozen=True)
class AuditFilter:
    """Which entries: all given conditions hold; ``occurred_from <= occurred_at <
    occurred_to``."""

    client_id: UUID | None = None
    deal_id: UUID | None = None
    actor_id: str | None = None
    field: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    source: str | None = None
    """Where the events came from: ``api``, ``import``, ``automation``, ``system``, ``cli``."""
    correlation_id: str | None = None
    """The request (or import, or command line run) that recorded the events."""

    def __post_init__(self) -> None:
        for bound in (self.occurred_from, self.occurred_to):
            if bound is not None and bound.utcoffset() is None:
                raise ValueError("occurred_from and occurred_to must carry a timezone")


def encode_cursor(entry: AuditEntry) -> str:
    """An opaque cursor meaning "after this entry"."""
    return _b64(f"{entry.position}:{entry.seq}")


def decode_cursor(cursor: str) -> tuple[int, int]:
    """(position, seq) of a cursor made by ``encode_cursor``; ``ValueError`` otherwise."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, ValueError):  # bad base64, padding or bytes
        text = ""
    match = _CURSOR.fullmatch(text)
    if match is None or _b64(text) != cursor:  # one spelling per cursor
        raise ValueError(f"malformed cursor {cursor!r}")
    return int(match[1]), int(match[2])


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


class AuditReadModel(SqlReadModel):
    """Who changed which field of which client, deal or pipeline, when, from where."""

    name = "audit"
    tables = (
        Table(
            "entries",
            "position {int} NOT NULL, seq {int} NOT NULL, event_id {text} NOT NULL,"
            " event_type {text} NOT NULL, recorded_at {ts} NOT NULL, occurred_at {ts} NOT NULL,"
            " actor_id {text} NOT NULL, actor_role {text} NOT NULL, source {text} NOT NULL,"
            " correlation_id {text} NOT NULL, causation_id {text},"
            " client_id {uuid}, deal_id {uuid}, field {text}, old_value {text},"
            " new_value {text}, details {text}, redacted {bool} NOT NULL,"
            " PRIMARY KEY (position, seq)",
            indexes=(
                "client_id, position, seq",
                "deal_id, position, seq",
                "actor_id, position, seq",
                "field, position, seq",
                "occurred_at",
                "correlation_id, position, seq",
            ),
            # the erasure's purge reads a client's entries: the rest serve queries
            query_only=(
                "deal_id, position, seq",
                "actor_id, position, seq",
                "field, position, seq",
                "occurred_at",
                "correlation_id, position, seq",
            ),
        ),
        Table("deals", "deal_id {uuid} PRIMARY KEY, client_id {uuid} NOT NULL"),
    )
    topics = audit.TOPICS

    export_page_size = 500
    """Entries read per query while exporting."""

    # ------------------------------------------------------------------ apply

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        new = [entry for recorded in batch for entry in audit.entries(recorded)]
        # An entry naming both a deal and its client (the deal's opening) links them.
        links = {
            e.deal_id: e.client_id for e in new if e.deal_id is not None and e.client_id is not None
        }
        if links:
            self.insert(cursor, "deals", "deal_id, client_id", list(links.items()))
        unknown = {e.deal_id for e in new if e.deal_id is not None and e.client_id is None}
        links.update(self._deal_clients(cursor, sorted(unknown - set(links))))
        rows = [
            _row(
                replace(e, client_id=links.get(e.deal_id))
                if e.client_id is None and e.deal_id is not None
                else e
            )
            for e in new
        ]
        self.insert(cursor, "entries", _SELECT, rows)
        for entry in new:
            if entry.event_type == audit.ERASURE and entry.client_id is not None:
                self._erase(cursor, entry.client_id, entry.position)

    def _deal_clients(self, cursor: Cursor, deal_ids: list[UUID]) -> dict[UUID, UUID]:
        found: dict[UUID, UUID] = {}
        for start in range(0, len(deal_ids), _CHUNK):
            chunk = deal_ids[start : start + _CHUNK]
            cursor.execute(
                f"SELECT deal_id, client_id FROM {self.t['deals']}"
                f" WHERE deal_id IN ({', '.join(['%s'] * len(chunk))})",
                chunk,
            )
            found.update({as_uuid(d): as_uuid(c) for d, c in cursor.fetchall()})
        return found

    def _erase(self, cursor: Cursor, client_id: UUID, position: int) -> None:
        """Purge the personal values of the client's entries recorded before its
        erasure (see ``projections.audit.redacted``)."""
        cursor.execute(
            f"SELECT {_SELECT} FROM {self.t['entries']}"
            " WHERE client_id = %s AND position < %s AND redacted = %s",
            (client_id, position, False),
        )
        updates = []
        for row in cursor.fetchall():
            entry = _entry(row)
            purged = audit.redacted(entry)
            if purged is not entry:
                values = (purged.field, purged.old_value, purged.new_value, purged.details, True)
                updates.append((*values, entry.position, entry.seq))
        if updates:
            cursor.executemany(
                f"UPDATE {self.t['entries']}"
                " SET field = %s, old_value = %s, new_value = %s, details = %s, redacted = %s"
                " WHERE position = %s AND seq = %s",
                updates,
            )

    # ------------------------------------------------------------------ queries

    def page(
        self,
        *,
        client_id: UUID | None = None,
        deal_id: UUID | None = None,
        actor_id: str | None = None,
        field: str | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
        source: str | None = None,
        correlation_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """Entries in (position, seq) order matching every given filter, ``limit`` at a
        time, after ``cursor`` (the ``next_cursor`` of the previous page). A malformed
        cursor or a limit below 1 is a ``ValueError``."""
        where = AuditFilter(
            client_id, deal_id, actor_id, field, occurred_from, occurred_to, source, correlation_id
        )
        return self.db.run(self.page_query(where, limit=limit, cursor=cursor))

    def page_query(
        self, where: AuditFilter, *, limit: int = 50, cursor: str | None = None
    ) -> Query[AuditPage]:
        """``page`` as a ``Query`` (raising the same ``ValueError`` s when made)."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        after = None if cursor is None else decode_cursor(cursor)

        def shape(rows: Rows) -> AuditPage:
            entries = _entries(rows)
            if len(entries) > limit:
                return AuditPage(entries[:limit], encode_cursor(entries[limit - 1]))
            return AuditPage(entries, None)

        return self._select_query(where, after, limit + 1, shape)

    def export_csv(
        self,
        *,
        client_id: UUID | None = None,
        deal_id: UUID | None = None,
        actor_id: str | None = None,
        field: str | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
        source: str | None = None,
        correlation_id: str | None = None,
    ) -> Iterator[str]:
        """The matching entries as CSV: a header line, then one record per entry (a
        record spans lines only inside a quoted value). Empty means absent; instants
        are ISO 8601 UTC."""
        where = AuditFilter(
            client_id, deal_id, actor_id, field, occurred_from, occurred_to, source, correlation_id
        )
        buffer = io.StringIO()
        writer = csv.writer(buffer)

        def line(values: Sequence[object]) -> str:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(values)
            return buffer.getvalue()

        yield line(COLUMNS)
        for entry in self._export(where):
            yield line([_csv_value(value) for value in _plain(entry).values()])

    def export_jsonl(
        self,
        *,
        client_id: UUID | None = None,
        deal_id: UUID | None = None,
        actor_id: str | None = None,
        field: str | None = None,
        occurred_from: datetime | None = None,
        occurred_to: datetime | None = None,
        source: str | None = None,
        correlation_id: str | None = None,
    ) -> Iterator[str]:
        """The matching entries as JSON Lines: one object per line, ``details`` as a
        nested object, instants as ISO 8601 UTC."""
        where = AuditFilter(
            client_id, deal_id, actor_id, field, occurred_from, occurred_to, source, correlation_id
        )
        for entry in self._export(where):
            record = _plain(entry)
            record["details"] = None if entry.details is None else orjson.loads(entry.details)
            yield orjson.dumps(record).decode() + "\n"

    def _export(self, where: AuditFilter) -> Iterator[AuditEntry]:
        """Every matching entry, read a page at a time, up to the last entry that
        existed when the export started (a snapshot, even while events keep coming)."""
        (row,) = self.db.query(f"SELECT MAX(position) FROM {self.t['entries']}")
        until = row[0]
        after: tuple[int, int] | None = None
        while until is not None:
            entries = self._select(where, after, self.export_page_size, until)
            yield from entries
            if len(entries) < self.export_page_size:
                return
            after = (entries[-1].position, entries[-1].seq)

    def _select(
        self,
        where: AuditFilter,
        after: tuple[int, int] | None,
        limit: int,
        until: int | None = None,
    ) -> list[AuditEntry]:
        return self.db.run(self._select_query(where, after, limit, _entries, until))

    def _select_query(
        self,
        where: AuditFilter,
        after: tuple[int, int] | None,
        limit: int,
        shape: Callable[[Rows], T],
        until: int | None = None,
    ) -> Query[T]:
        conditions: list[str] = []
        params: list[Any] = []
        for column in ("client_id", "deal_id", "actor_id", "field", "source", "correlation_id"):
            value = getattr(where, column)
            if value is not None:
                conditions.append(f"{column} = %s")
                params.append(value)
        if where.occurred_from is not None:
            conditions.append("occurred_at >= %s")
            params.append(where.occurred_from)
        if where.occurred_to is not None:
            conditions.append("occurred_at < %s")
            params.append(where.occurred_to)
        if after is not None:
            conditions.append("(position > %s OR (position = %s AND seq > %s))")
            params += [after[0], after[0], after[1]]
        if until is not None:
            conditions.append("position <= %s")
            params.append(until)
        return Query(
            f"SELECT {_SELECT} FROM {self.t['entries']}"
            f" WHERE {' AND '.join(conditions) or '1 = 1'}"
            " ORDER BY position, seq LIMIT %s",
            [*params, limit],
            shape,
        )


def _entries(rows: Rows) -> list[AuditEntry]:
    return [_entry(row) for row in rows]


def _entry(row: Sequence[Any]) -> AuditEntry:
    values = dict(zip(COLUMNS, row, strict=True))
    for name in ("recorded_at", "occurred_at"):
        values[name] = as_datetime(values[name])
    for name in ("client_id", "deal_id"):
        values[name] = None if values[name] is None else as_uuid(values[name])
    values["position"] = int(values["position"])
    values["seq"] = int(values["seq"])
    values["redacted"] = bool(values["redacted"])
    return AuditEntry(**values)


def instant(value: datetime) -> str:
    """ISO 8601 in UTC with microseconds, e.g. ``2024-03-01T10:00:00.000000Z``."""
    return value.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _plain(entry: AuditEntry) -> dict[str, object]:
    """The entry's columns with instants and ids as text."""
    record: dict[str, object] = {}
    for name in COLUMNS:
        value = getattr(entry, name)
        if isinstance(value, datetime):
            value = instant(value)
        elif isinstance(value, UUID):
            value = str(value)
        record[name] = value
    return record


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value
