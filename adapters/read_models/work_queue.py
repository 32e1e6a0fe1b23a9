"""Work queue tables: follow-ups with their status, and dated activity facts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from adapters.read_models.base import SqlReadModel, Table, chunks
from adapters.sql import Cursor, as_datetime, as_optional_datetime, as_uuid
from projections import work_queue
from projections.base import Recorded
from projections.work_queue import Activity, FollowUp

_FOLLOW_UP_COLUMNS = (
    "task_id, client_id, assignee_id, due_at, scheduled_at, status, closed_at, closed_by"
)
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
            " status {text} NOT NULL, closed_at {ts}, closed_by {text}",
            indexes=("status, due_at", "client_id"),
            query_only=("status, due_at",),
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

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        clients = sorted({c for r in batch if (c := work_queue.needs(r)) is not None})
        open_tasks = self._open_tasks(cursor, clients)
        written: dict[UUID, FollowUp] = {}
        activity: list[Activity] = []
        for recorded in batch:
            changes = work_queue.apply(open_tasks, recorded)
            for task in changes.follow_ups:
                written[task.task_id] = task
                if task.status == "open":
                    open_tasks[task.task_id] = task
                else:
                    open_tasks.pop(task.task_id, None)
            activity.extend(changes.activity)
        t = self.t
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

    # ------------------------------------------------------------------ queries

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


def _follow_up(row: tuple[Any, ...]) -> FollowUp:
    task_id, client_id, assignee_id, due_at, scheduled_at, status, closed_at, closed_by = row
    return FollowUp(
        task_id=as_uuid(task_id),
        client_id=as_uuid(client_id),
        assignee_id=str(assignee_id),
        due_at=as_datetime(due_at),
        scheduled_at=as_datetime(scheduled_at),
        status=status,
        closed_at=as_optional_datetime(closed_at),
        closed_by=closed_by,
    )
