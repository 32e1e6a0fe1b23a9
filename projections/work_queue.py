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
  otherwise stay overdue for ever), and the notes of all its follow-ups purged;
* a follow-up that fell due (``FollowUpDue``) stays in the queue, marked, until it
  is completed or cancelled; its due instant keeps the offset it was given;
* a lead flagged unanswered (``LeadUnanswered``) is an entry for its owner (for
  admins when unassigned) until it is answered (a contact, a follow-up), bought,
  was lost, merged or erased; a new owner takes the entry over.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import singledispatch
from typing import Any, Literal
from uuid import UUID

from domain.access import DataAccess
from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from domain.subscription import Subscription
from projections.base import Ignored, Recorded, handled_by, topics_of

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
    note: str = ""
    rung_at: datetime | None = None
    """When it fell due (``FollowUpDue``, business time), if it has."""


LeadStatus = Literal["open", "answered", "closed"]


@dataclass(frozen=True, slots=True)
class LeadEntry:
    """A lead flagged unanswered: an entry for ``owner_id`` (admins when ``None``)."""

    client_id: UUID
    owner_id: str | None
    deadline: datetime
    status: LeadStatus = "open"
    closed_at: datetime | None = None


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
    leads: tuple[LeadEntry, ...] = ()
    purge_notes: tuple[UUID, ...] = ()
    """Clients whose follow-ups' notes are purged (erasure)."""


@dataclass
class WorkQueue:
    """Everything folded so far (for tests and replays; the adapter keeps it in SQL)."""

    follow_ups: dict[UUID, FollowUp] = field(default_factory=dict)
    activity: list[Activity] = field(default_factory=list)
    leads: dict[UUID, LeadEntry] = field(default_factory=dict)

    @property
    def open(self) -> dict[UUID, FollowUp]:
        return {k: f for k, f in self.follow_ups.items() if f.status == "open"}

    @property
    def open_leads(self) -> dict[UUID, LeadEntry]:
        return {k: lead for k, lead in self.leads.items() if lead.status == "open"}


def on_time(completed_at: datetime, due_at: datetime) -> bool:
    """Done on time: completed (business time) at or before the due instant."""
    return completed_at <= due_at


def needs(recorded: Recorded) -> UUID | None:
    """The client whose open follow-ups and open lead entry ``apply`` reads for this
    event, if any."""
    event = recorded.event
    if isinstance(event, Client.Event) and not isinstance(
        event, Client.LeadUnanswered | Client.ClientRegistered
    ):
        return event.originator_id
    return None


def apply(
    open_tasks: Mapping[UUID, FollowUp],
    recorded: Recorded,
    open_leads: Mapping[UUID, LeadEntry] | None = None,
) -> Changes:
    """What one event changes, given (at least) the open follow-ups and open lead
    entries of ``needs(recorded)``. Closing what is not open changes nothing."""
    changes = _changes(recorded.event, recorded, open_tasks)
    lead = _lead_change(recorded, (open_leads or {}).get(recorded.event.originator_id))
    return changes if lead is None else replace(changes, leads=(*changes.leads, lead))


_ANSWERS = (Client.ContactMade, Client.FollowUpScheduled)
_CLOSES = (Client.PurchaseMade, Client.ClientLost, Client.ClientMerged, Client.PersonalDataErased)


def _lead_change(recorded: Recorded, lead: LeadEntry | None) -> LeadEntry | None:
    """How one event changes a client's lead entry (``None``: not at all)."""
    event = recorded.event
    if isinstance(event, Client.LeadUnanswered):
        return LeadEntry(event.originator_id, event.owner_id, event.deadline)
    if lead is None:
        return None
    if isinstance(event, _ANSWERS):
        return replace(lead, status="answered", closed_at=event.occurred_at)
    if isinstance(event, _CLOSES):
        return replace(lead, status="closed", closed_at=event.occurred_at)
    if isinstance(event, Client.OwnerAssigned):
        return replace(lead, owner_id=event.owner_id)
    return None


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
        note=event.note,
    )
    return Changes(follow_ups=(task,))


@_changes.register
def _(
    event: Client.FollowUpDue,
    recorded: Recorded,  # noqa: ARG001
    open_tasks: Mapping[UUID, FollowUp],
) -> Changes:
    task = open_tasks.get(event.task_id)
    if task is None:
        return Changes()
    return Changes(follow_ups=(replace(task, rung_at=event.occurred_at),))


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
        replace(_cancelled(task, recorded), note="")
        for _, task in sorted(open_tasks.items())
        if task.client_id == event.originator_id and task.status == "open"
    )
    return Changes(follow_ups=closed, purge_notes=(event.originator_id,))


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


HANDLED: tuple[type[Any], ...] = tuple(
    dict.fromkeys(
        (*handled_by(_changes), Client.LeadUnanswered, *_ANSWERS, *_CLOSES, Client.OwnerAssigned)
    )
)
"""What changes tasks and activity (``_changes``) and lead entries (``_lead_change``)."""
TOPICS = topics_of(*HANDLED)
IGNORED: Ignored = {
    Client.ClientRegistered: "a lead enters the queue once flagged (LeadUnanswered)",
    **dict.fromkeys(
        (
            Client.ClientDetailsChanged,
            Client.ConsentGiven,
            Client.ConsentWithdrawn,
            Client.ProcessingRestricted,
            Client.RestrictionLifted,
        ),
        "changes no task, lead entry or activity",
    ),
    Client.DuplicateAbsorbed: "the absorbed card's own ClientMerged closes its lead",
    **dict.fromkeys(
        (Deal.DealOpened, Deal.DealValueChanged, Deal.DealLost, Deal.DealReopened),
        "a manager's activity counts deals moved and won",
    ),
    Pipeline: "pipelines are no tasks",
    DataAccess: "reading data is no activity",
    Subscription: "webhook subscriptions are no tasks",
}


def fold(events: Iterable[Recorded], state: WorkQueue | None = None) -> WorkQueue:
    """The work queue after ``events`` (in position order)."""
    queue = state or WorkQueue()
    for recorded in events:
        changes = apply(queue.open, recorded, queue.open_leads)
        for client_id in changes.purge_notes:
            for task in [t for t in queue.follow_ups.values() if t.client_id == client_id]:
                queue.follow_ups[task.task_id] = replace(task, note="")
        queue.follow_ups.update((task.task_id, task) for task in changes.follow_ups)
        queue.activity.extend(changes.activity)
        queue.leads.update((lead.client_id, lead) for lead in changes.leads)
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
