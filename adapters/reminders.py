"""The reminder timer: follow-ups falling due and leads left unanswered, recorded as
events by whichever delivery process looks first.

Each tick reads the candidates from the read models (the work queue's open
follow-ups due by now, the leads past their deadline) and runs the reminder
commands, attributed to the system from the ``automation`` source with the due
instant as business time. The client aggregate records each at most once
(``application.reminders``), so restarts and several timers change nothing.

Nothing is rung for a due instant before the timer first ran on the store (kept in
``reminder_timer``): switching this version on does not ring every follow-up left
open for years, nor flag every lead of an imported history.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from adapters.read_models.leads import LeadsReadModel
from adapters.read_models.work_queue import WorkQueueReadModel
from adapters.sql import Database, as_datetime
from adapters.webhooks import automation_envelope
from application.app import CrmApplication
from application.errors import ApplicationError
from application.reminders import FlagUnansweredLead, MarkFollowUpDue
from domain.errors import DomainError

log = logging.getLogger(__name__)

_DDL = {
    "postgresql": "CREATE TABLE IF NOT EXISTS reminder_timer ("
    " id integer PRIMARY KEY, started_at timestamptz NOT NULL)",
    "sqlite": "CREATE TABLE IF NOT EXISTS reminder_timer ("
    " id INTEGER PRIMARY KEY, started_at TEXT NOT NULL)",
}


class ReminderTimer:
    def __init__(self, app: CrmApplication, db: Database) -> None:
        self.app = app
        self.db = db
        self.work_queue = WorkQueueReadModel(db)
        self.leads = LeadsReadModel(db)
        self._since: datetime | None = None
        self._done: set[tuple[str, object]] = set()

    def since(self) -> datetime:
        """When the timer first ran on this store (recorded on first use)."""
        if self._since is None:
            with self.db.transaction() as cursor:
                cursor.execute(_DDL[self.db.dialect])
                cursor.execute(
                    "INSERT INTO reminder_timer (id, started_at) VALUES (1, %s)"
                    " ON CONFLICT (id) DO NOTHING",
                    (datetime.now(UTC),),
                )
                cursor.execute("SELECT started_at FROM reminder_timer WHERE id = 1")
                row = cursor.fetchone()
            assert row is not None
            self._since = as_datetime(row[0])
        return self._since

    def tick(self, now: datetime | None = None) -> int:
        """Ring what is due by ``now``; how many commands were run."""
        now = now or datetime.now(UTC)
        since = self.since()
        response_time = self.app.settings.lead_response
        ran = 0
        for task in self.work_queue.to_ring(now=now, since=since):
            ran += self._run(
                ("task", task.task_id),
                MarkFollowUpDue(client_id=task.client_id, task_id=task.task_id),
                task.due_at,
            )
        for lead in self.leads.to_flag(now, response_time, since):
            ran += self._run(
                ("lead", lead.client_id),
                FlagUnansweredLead(client_id=lead.client_id, response_time=response_time),
                None,  # now: the event carries its deadline
            )
        return ran

    def _run(self, key: tuple[str, object], command: object, due: datetime | None) -> int:
        """Run one reminder command once per process (the read model may show it
        again until it has caught up; the aggregate would record nothing)."""
        if key in self._done:
            return 0
        try:
            self.app.execute(command, automation_envelope("reminders", occurred_at=due))
        except (DomainError, ApplicationError) as error:  # erased, merged: nothing to ring
            log.info("reminder %s: %s", key, error)
        self._done.add(key)
        if len(self._done) > 100_000:
            self._done.clear()
        return 1
