"""Work queue tables: follow-ups with their status, and dated activity facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import orjson

from adapters.read_models.base import SqlReadModel, Table, chunks
from adapters.read_models.directory import DirectoryReadModel
from adapters.sql import TYPES, Cursor, as_datetime, as_optional_datetime, as_uuid
from domain.client import Client
from projections import work_queue
from projections.base import Recorded
from projections.work_queue import Activity, FollowUp, LeadEntry

_FOLLOW_UP_COLUMNS = (
    "task_id, client_id, assignee_id, due_at, scheduled_at, status, closed_at, closed_by,"
    " due_offset, note, rung_at"
)
_ADDED_COLUMNS = {"due_offset": "{int}", "note": "{text}", "rung_at": "{ts}"}
"""Columns of ``follow_ups`` that tables made by an earlier version lack (``upgrade``
adds them; follow-ups scheduled before read with UTC due instants and no note until
``crm project --rebuild work_queue``)."""
_LEAD_COLUMNS = "client_id, owner_id, deadline, status, closed_at"
_SCHEDULED, _DUE = Client.FollowUpScheduled.__name__, Client.FollowUpDue.__name__
"""A work item's kind is the event that put it in the queue."""
_KIND_COLUMNS = {
    "contact": "contacts",
    "follow_up_on_time": "follow_ups_on_time",
    "follow_up_late": "follow_ups_late",
    "deal_moved": "deals_moved",
    "deal_won": "deals_won",
}


@dataclass(frozen=True)
class FollowUpRow:
    """An open follow-up; ``overdue`` when its due instant has passed."""

    task_id: UUID
    client_id: UUID
    assignee_id: str
    due_at: datetime
    scheduled_at: datetime
    overdue: bool


@dataclass(frozen=True)
class WorkItem:
    """One entry of the work queue: a follow-up (``FollowUpScheduled`` until it falls
    due, ``FollowUpDue`` after) or an unanswered lead (``LeadUnanswered``), with what
    the assignee needs to act: the client's name and phones and the note (``None``
    where the caller may not read them, see ``redacted``)."""

    kind: str
    client_id: UUID
    assignee_id: str | None
    due_at: datetime
    overdue: bool
    task_id: UUID | None = None
    scheduled_at: datetime | None = None
    rung_at: datetime | None = None
    note: str | None = None
    client_name: str | None = None
    phones: tuple[str, ...] | None = None
    owner_id: str | None = None
    redacted: tuple[str, ...] = ()


@dataclass(frozen=True)
class ManagerActivity:
    """What one person did over a period (business time)."""

    actor_id: str
    contacts: int = 0
    follow_ups_on_time: int = 0
    follow_ups_late: int = 0
    deals_moved: int = 0
    deals_won: int = 0


class WorkQueueReadModel(SqlReadModel):
    name = "work_queue"
    tables = (
        Table(
            "follow_ups",
            "task_id {uuid} PRIMARY KEY, client_id {uuid} NOT NULL,"
            " assignee_id {text} NOT NULL, due_at {ts} NOT NULL, scheduled_at {ts} NOT NULL,"
            " status {text} NOT NULL, closed_at {ts}, closed_by {text},"
            " due_offset {int}, note {text}, rung_at {ts}",
            indexes=("status, due_at", "client_id"),
            query_only=("status, due_at",),
        ),
        Table(
            "leads",
            "client_id {uuid} PRIMARY KEY, owner_id {text}, deadline {ts} NOT NULL,"
            " status {text} NOT NULL, closed_at {ts}",
        ),
        Table(
            "activity",
            "position {int} NOT NULL, kind {text} NOT NULL, actor_id {text} NOT NULL,"
            " at {ts} NOT NULL, PRIMARY KEY (position, kind)",
            indexes=("at", "actor_id, at"),
            query_only=("at", "actor_id, at"),
        ),
    )
    topics = work_queue.TOPICS

    # ------------------------------------------------------------------ writing

    def upgrade(self, cursor: Cursor) -> None:
        """Tables made before follow-ups kept their offset, note and due mark: add the
        columns."""
        table = self.t["follow_ups"]
        if self.dialect == "postgresql":
            cursor.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = current_schema() AND table_name = %s",
                (table,),
            )
        else:
            cursor.execute(f"SELECT name FROM pragma_table_info('{table}')")
        present = {str(row[0]) for row in cursor.fetchall()}
        types = TYPES[self.dialect]
        for column, placeholder in _ADDED_COLUMNS.items():
            if column not in present:
                cursor.execute(
                    f"ALTER TABLE {table} ADD COLUMN {column} {placeholder.format(**types)}"
                )

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        clients = sorted({c for r in batch if (c := work_queue.needs(r)) is not None})
        open_tasks = self._open_tasks(cursor, clients)
        open_leads = self._open_leads(cursor, clients)
        written: dict[UUID, FollowUp] = {}
        leads: dict[UUID, LeadEntry] = {}
        purged: list[UUID] = []
        activity: list[Activity] = []
        for recorded in batch:
            changes = work_queue.apply(open_tasks, recorded, open_leads)
            for client_id in changes.purge_notes:
                purged.append(client_id)
                for task_id, task in list(written.items()):
                    if task.client_id == client_id:
                        written[task_id] = replace(task, note="")
            for task in changes.follow_ups:
                written[task.task_id] = task
                if task.status == "open":
                    open_tasks[task.task_id] = task
                else:
                    open_tasks.pop(task.task_id, None)
            for lead in changes.leads:
                leads[lead.client_id] = lead
                open_leads.pop(lead.client_id, None)
                open_leads.update({lead.client_id: lead} if lead.status == "open" else {})
            activity.extend(changes.activity)
        t = self.t
        self._write_leads(cursor, purged, leads)
        if written:
            ids = sorted(written)
            for chunk in chunks(ids, 500):
                marks = ", ".join(["%s"] * len(chunk))
                cursor.execute(f"DELETE FROM {t['follow_ups']} WHERE task_id IN ({marks})", chunk)
            self.insert(
                cursor,
                "follow_ups",
                _FOLLOW_UP_COLUMNS,
                [
                    (
                        f.task_id,
                        f.client_id,
                        f.assignee_id,
                        f.due_at,
                        f.scheduled_at,
                        f.status,
                        f.closed_at,
                        f.closed_by,
                        _offset_seconds(f.due_at),
                        f.note,
                        f.rung_at,
                    )
                    for f in (written[task_id] for task_id in ids)
                ],
            )
        if activity:
            self.insert(
                cursor,
                "activity",
                "position, kind, actor_id, at",
                [(a.position, a.kind, a.actor_id, a.at) for a in activity],
            )

    def _open_tasks(self, cursor: Cursor, client_ids: list[UUID]) -> dict[UUID, FollowUp]:
        tasks: dict[UUID, FollowUp] = {}
        for chunk in chunks(client_ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {_FOLLOW_UP_COLUMNS} FROM {self.t['follow_ups']}"
                f" WHERE status = 'open' AND client_id IN ({marks})",
                chunk,
            )
            for row in cursor.fetchall():
                task = _follow_up(row)
                tasks[task.task_id] = task
        return tasks

    def _write_leads(
        self, cursor: Cursor, purged: list[UUID], leads: dict[UUID, LeadEntry]
    ) -> None:
        """Purge the erased clients' notes; write the changed lead entries."""
        t = self.t
        for chunk in chunks(sorted(set(purged)), 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"UPDATE {t['follow_ups']} SET note = '' WHERE client_id IN ({marks})", chunk
            )
        if not leads:
            return
        ids = sorted(leads)
        for chunk in chunks(ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {t['leads']} WHERE client_id IN ({marks})", chunk)
        self.insert(
            cursor,
            "leads",
            _LEAD_COLUMNS,
            [
                (lead.client_id, lead.owner_id, lead.deadline, lead.status, lead.closed_at)
                for lead in (leads[i] for i in ids)
            ],
        )

    def _open_leads(self, cursor: Cursor, client_ids: list[UUID]) -> dict[UUID, LeadEntry]:
        found: dict[UUID, LeadEntry] = {}
        for chunk in chunks(client_ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {_LEAD_COLUMNS} FROM {self.t['leads']}"
                f" WHERE status = 'open' AND client_id IN ({marks})",
                chunk,
            )
            for client_id, owner_id, deadline, status, closed_at in cursor.fetchall():
                lead = LeadEntry(
                    as_uuid(client_id),
                    owner_id,
                    as_datetime(deadline),
                    status,
                    as_optional_datetime(closed_at),
                )
                found[lead.client_id] = lead
        return found

    # ------------------------------------------------------------------ queries

    def to_ring(self, *, now: datetime, since: datetime, limit: int = 500) -> list[FollowUp]:
        """Open follow-ups due by ``now`` (and at or after ``since``) that have not
        fallen due yet: the reminder timer's candidates."""
        rows = self.db.query(
            f"SELECT {_FOLLOW_UP_COLUMNS} FROM {self.t['follow_ups']}"
            " WHERE status = 'open' AND rung_at IS NULL AND due_at <= %s AND due_at >= %s"
            " ORDER BY due_at LIMIT %s",
            (now, since, limit),
        )
        return [_follow_up(row) for row in rows]

    def items(
        self,
        *,
        now: datetime,
        within: timedelta = timedelta(days=1),
        assignee_id: str | None = None,
        after: tuple[datetime, UUID] | None = None,
        limit: int | None = None,
    ) -> list[WorkItem]:
        """The due list: open follow-ups due by ``now + within`` (overdue ones
        included) and open unanswered leads, earliest first (then by the follow-up's
        or the lead's client id); only ``assignee_id``'s when given (an unassigned
        lead is the admins'); only those after ``after`` (due instant, id), at most
        ``limit`` of them, when given. Names, phones and notes are filled in; the
        caller blanks what its reader may not see."""
        cards = DirectoryReadModel.physical("cards")
        sql = (
            f"SELECT f.task_id, f.client_id, f.assignee_id, f.due_at, f.due_offset,"
            f" f.scheduled_at, f.rung_at, f.note, c.name, c.phones, c.owner_id"
            f" FROM {self.t['follow_ups']} f LEFT JOIN {cards} c ON c.client_id = f.client_id"
            " WHERE f.status = 'open' AND f.due_at <= %s"
        )
        params: list[Any] = [now + within]
        if assignee_id is not None:
            sql += " AND f.assignee_id = %s"
            params.append(assignee_id)
        sql, params = _keyset(sql, params, ("f.due_at", "f.task_id"), after, limit)
        found: list[WorkItem] = []
        for (
            task_id,
            client_id,
            assignee,
            due,
            offset,
            scheduled,
            rung,
            note,
            name,
            phones,
            owner,
        ) in self.db.query(sql, params):
            due_at = _with_offset(as_datetime(due), offset)
            found.append(
                WorkItem(
                    kind=_SCHEDULED if rung is None else _DUE,
                    client_id=as_uuid(client_id),
                    assignee_id=str(assignee),
                    due_at=due_at,
                    overdue=due_at < now,
                    task_id=as_uuid(task_id),
                    scheduled_at=as_datetime(scheduled),
                    rung_at=as_optional_datetime(rung),
                    note=note,
                    client_name=name,
                    phones=None if phones is None else tuple(orjson.loads(phones)),
                    owner_id=owner,
                )
            )
        sql = (
            f"SELECT l.client_id, l.owner_id, l.deadline, c.name, c.phones"
            f" FROM {self.t['leads']} l LEFT JOIN {cards} c ON c.client_id = l.client_id"
            " WHERE l.status = 'open'"
        )
        params = []
        if assignee_id is not None:
            sql += " AND l.owner_id = %s"
            params.append(assignee_id)
        sql, params = _keyset(sql, params, ("l.deadline", "l.client_id"), after, limit)
        for client_id, owner, deadline, name, phones in self.db.query(sql, params):
            found.append(
                WorkItem(
                    kind=Client.LeadUnanswered.__name__,
                    client_id=as_uuid(client_id),
                    assignee_id=owner,
                    due_at=as_datetime(deadline),
                    overdue=True,
                    client_name=name,
                    phones=None if phones is None else tuple(orjson.loads(phones)),
                    owner_id=owner,
                )
            )
        found.sort(key=lambda item: (item.due_at, str(item.task_id or item.client_id)))
        return found if limit is None else found[:limit]

    def due(
        self,
        *,
        now: datetime,
        within: timedelta = timedelta(days=1),
        assignee_id: str | None = None,
    ) -> list[FollowUpRow]:
        """Open follow-ups due by ``now + within`` (overdue ones included, flagged),
        earliest due first; only ``assignee_id``'s when given."""
        sql = (
            f"SELECT {_FOLLOW_UP_COLUMNS} FROM {self.t['follow_ups']}"
            " WHERE status = 'open' AND due_at <= %s"
        )
        params: list[Any] = [now + within]
        if assignee_id is not None:
            sql += " AND assignee_id = %s"
            params.append(assignee_id)
        rows = self.db.query(sql + " ORDER BY due_at, task_id", params)
        return [
            FollowUpRow(
                task_id=task.task_id,
                client_id=task.client_id,
                assignee_id=task.assignee_id,
                due_at=task.due_at,
                scheduled_at=task.scheduled_at,
                overdue=task.due_at < now,
            )
            for task in map(_follow_up, rows)
        ]

    def activity(
        self, *, since: datetime, until: datetime, actor_id: str | None = None
    ) -> list[ManagerActivity]:
        """What each person did in business time [since, until), by actor id; people
        who did nothing are left out, except an ``actor_id`` asked for, who always
        gets a row (of zeros if idle)."""
        sql = (
            f"SELECT actor_id, kind, COUNT(*) FROM {self.t['activity']} WHERE at >= %s AND at < %s"
        )
        params: list[Any] = [since, until]
        if actor_id is not None:
            sql += " AND actor_id = %s"
            params.append(actor_id)
        counts: dict[str, dict[str, int]] = {}
        if actor_id is not None:
            counts[actor_id] = {}
        for actor, kind, n in self.db.query(sql + " GROUP BY actor_id, kind", params):
            counts.setdefault(str(actor), {})[_KIND_COLUMNS[str(kind)]] = int(n)
        return [ManagerActivity(actor, **counts[actor]) for actor in sorted(counts)]


def _offset_seconds(at: datetime) -> int:
    offset = at.utcoffset()
    return 0 if offset is None else int(offset.total_seconds())


def _with_offset(at: datetime, offset: Any) -> datetime:
    """An instant read back in the offset it was given (UTC for rows from before)."""
    if not offset:
        return at
    return at.astimezone(timezone(timedelta(seconds=int(offset))))


def _keyset(
    sql: str,
    params: list[Any],
    order: tuple[str, str],
    after: tuple[datetime, UUID] | None,
    limit: int | None,
) -> tuple[str, list[Any]]:
    """``sql`` narrowed to the rows after ``after`` in ``order`` (due instant, id),
    the first ``limit`` of them: the same bound on each source of the due list keeps
    enough rows to cut a page of the two merged."""
    due, key = order
    if after is not None:
        sql += f" AND ({due} > %s OR ({due} = %s AND {key} > %s))"
        params = [*params, after[0], after[0], after[1]]
    if limit is not None:
        sql += f" ORDER BY {due}, {key} LIMIT %s"
        params = [*params, limit]
    return sql, params


def _follow_up(row: tuple[Any, ...]) -> FollowUp:
    (
        task_id,
        client_id,
        assignee_id,
        due_at,
        scheduled_at,
        status,
        closed_at,
        closed_by,
        offset,
        note,
        rung_at,
    ) = row
    return FollowUp(
        task_id=as_uuid(task_id),
        client_id=as_uuid(client_id),
        assignee_id=str(assignee_id),
        due_at=_with_offset(as_datetime(due_at), offset),
        scheduled_at=as_datetime(scheduled_at),
        status=status,
        closed_at=as_optional_datetime(closed_at),
        closed_by=closed_by,
        note=note or "",
        rung_at=as_optional_datetime(rung_at),
    )
