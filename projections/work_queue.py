"""Work queue read model: follow-ups due per assignee, and what each manager did
(pure fold).

State is the open follow-ups by task id. ``apply(open_tasks, recorded)`` returns
what one event changes: follow-ups (new or closed) and activity facts. It reads
only the open follow-ups of the event's client (``needs``), so the SQL adapter
loads just those for a batch.

Rules taken from the business:

* a follow-up is done on time when its completion's business time is at or before
  its due instant, late otherwise;
* activity is credited to whoever did it (the event's ``actor_id``): a contact
  made, a follow-up completed (on time or late), a deal moved to another stage, a
  deal won;
* a merge cancels the duplicate's open follow-ups with events of its own; erasure
  does not, yet nothing can be recorded on an erased client any more, so its open
  follow-ups are closed here as cancelled at the instant of erasure (they would
  otherwise stay overdue for ever).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import singledispatch
from typing import Any, Literal
from uuid import UUID

from domain.client import Client
from domain.deal import Deal
from projections.base import Recorded, topics_of

Status = Literal["open", "completed", "cancelled"]
ActivityKind = Literal["contact", "follow_up_on_time", "follow_up_late", "deal_moved", "deal_won"]


@dataclass(frozen=True, slots=True)
class FollowUp:
    task_id: UUID
    client_id: UUID
    assignee_id: str
    due_at: datetime
    scheduled_at: datetime
    status: Status = "open"
    closed_at: datetime | None = None
    closed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Activity:
    """One thing a person did, at business time ``at``."""

    position: int
    actor_id: str
    kind: ActivityKind
    at: datetime


@dataclass(frozen=True, slots=True)
class Changes:
    follow_ups: tuple[FollowUp, ...] = ()
    activity: tuple[Activity, ...] = ()


@dataclass
class WorkQueue:
    """Everything folded so far (for tests and replays; the adapter keeps it in SQL)."""

    follow_ups: dict[UUID, FollowUp] = field(default_factory=dict)
    activity: list[Activity] = field(default_factory=list)

    @property
    def open(self) -> dict[UUID, FollowUp]:
        return {k: f for k, f in self.follow_ups.items() if f.status == "open"}


TOPICS = topics_of(
    Client.ContactMade,
    Client.FollowUpScheduled,
    Client.FollowUpCompleted,
    Client.FollowUpCancelled,
    Client.PersonalDataErased,
    Deal.DealStageChanged,
    Deal.DealWon,
)


def on_time(completed_at: datetime, due_at: datetime) -> bool:
    """Done on time: completed (business time) at or before the due instant."""
    return completed_at <= due_at


def needs(recorded: Recorded) -> UUID | None:
    """The client whose open follow-ups ``apply`` reads for this event, if any."""
    event = recorded.event
    if isinstance(
        event, Client.FollowUpCompleted | Client.FollowUpCancelled | Client.PersonalDataErased
    ):
        return event.originator_id
    return None


def apply(open_tasks: Mapping[UUID, FollowUp], recorded: Recorded) -> Changes:
    """What one event changes, given (at least) the open follow-ups of
    ``needs(recorded)``. Closing a follow-up that is not open changes nothing."""
    return _changes(recorded.event, recorded, open_tasks)


@singledispatch
def _changes(event: Any, recorded: Recorded, open_tasks: Mapping[UUID, FollowUp]) -> Changes:  # noqa: ARG001
    return Changes()


@_changes.register
def _(
    event: Client.ContactMade,  # noqa: ARG001
    recorded: Recorded,
    open_tasks: Mapping[UUID, FollowUp],  # noqa: ARG001
) -> Changes:
    return Changes(activity=(_did(recorded, "contact"),))


@_changes.register
def _(
    event: Client.FollowUpScheduled,
    recorded: Recorded,  # noqa: ARG001
    open_tasks: Mapping[UUID, FollowUp],  # noqa: ARG001
) -> Changes:
    task = FollowUp(
        task_id=event.task_id,
        client_id=event.originator_id,
        assignee_id=event.assignee_id,
        due_at=event.due_at,
        scheduled_at=event.occurred_at,
    )
    return Changes(follow_ups=(task,))


@_changes.register
def _(
    event: Client.FollowUpCompleted, recorded: Recorded, open_tasks: Mapping[UUID, FollowUp]
) -> Changes:
    task = open_tasks.get(event.task_id)
    if task is None:
        return Changes()
    done = replace(task, status="completed", closed_at=event.occurred_at, closed_by=event.actor_id)
    kind: ActivityKind = (
        "follow_up_on_time" if on_time(event.occurred_at, task.due_at) else "follow_up_late"
    )
    return Changes(follow_ups=(done,), activity=(_did(recorded, kind),))


@_changes.register
def _(
    event: Client.FollowUpCancelled, recorded: Recorded, open_tasks: Mapping[UUID, FollowUp]
) -> Changes:
    task = open_tasks.get(event.task_id)
    if task is None:
        return Changes()
    return Changes(follow_ups=(_cancelled(task, recorded),))


@_changes.register
def _(
    event: Client.PersonalDataErased, recorded: Recorded, open_tasks: Mapping[UUID, FollowUp]
) -> Changes:
    closed = tuple(
        _cancelled(task, recorded)
        for _, task in sorted(open_tasks.items())
        if task.client_id == event.originator_id and task.status == "open"
    )
    return Changes(follow_ups=closed)


@_changes.register
def _(
    event: Deal.DealStageChanged,  # noqa: ARG001
    recorded: Recorded,
    open_tasks: Mapping[UUID, FollowUp],  # noqa: ARG001
) -> Changes:
    return Changes(activity=(_did(recorded, "deal_moved"),))


@_changes.register
def _(
    event: Deal.DealWon,  # noqa: ARG001
    recorded: Recorded,
    open_tasks: Mapping[UUID, FollowUp],  # noqa: ARG001
) -> Changes:
    return Changes(activity=(_did(recorded, "deal_won"),))


def fold(events: Iterable[Recorded], state: WorkQueue | None = None) -> WorkQueue:
    """The work queue after ``events`` (in position order)."""
    queue = state or WorkQueue()
    for recorded in events:
        changes = apply(queue.open, recorded)
        queue.follow_ups.update((task.task_id, task) for task in changes.follow_ups)
        queue.activity.extend(changes.activity)
    return queue


def _did(recorded: Recorded, kind: ActivityKind) -> Activity:
    return Activity(recorded.position, recorded.event.actor_id, kind, recorded.occurred_at)


def _cancelled(task: FollowUp, recorded: Recorded) -> FollowUp:
    return replace(
        task,
        status="cancelled",
        closed_at=recorded.occurred_at,
        closed_by=recorded.event.actor_id,
    )
