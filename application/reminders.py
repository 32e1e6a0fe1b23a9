"""Use cases of the reminder timer: follow-ups falling due, leads left unanswered.

The timer (``adapters/reminders.py``) finds candidates in the read models; the
client aggregate decides. Each command records its event at most once per
follow-up or lead: the aggregate remembers what it recorded, and two timers
recording at once meet in the store's version check, the second then re-run on
fresh state and recording nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

from application.unit_of_work import Outcome, UnitOfWork


@dataclass(frozen=True, kw_only=True)
class MarkFollowUpDue:
    client_id: UUID
    task_id: UUID


@dataclass(frozen=True, kw_only=True)
class FlagUnansweredLead:
    client_id: UUID
    response_time: timedelta


def mark_follow_up_due(uow: UnitOfWork, cmd: MarkFollowUpDue) -> Outcome:
    client = uow.client(cmd.client_id)
    client.mark_follow_up_due(cmd.task_id)
    return Outcome(client)


def flag_unanswered_lead(uow: UnitOfWork, cmd: FlagUnansweredLead) -> Outcome:
    client = uow.client(cmd.client_id)
    client.flag_unanswered(response_time=cmd.response_time)
    return Outcome(client)
