"""Leads read model: how fast each incoming request was answered (pure fold).

State is one row per client: when it was registered (business time) and recorded,
its current owner, and the first instant of each thing that answers or closes it.
``apply(rows, recorded)`` returns the rows one event changes, reading only the rows
``needs(recorded)`` names. The same rows serve the KPIs ``unanswered_leads`` and
``median_first_response_minutes`` (``projections.kpis``, in SQL) and the reminder
timer's search for leads to flag.

Rules taken from the business ("incoming requests get lost, and are handled
slowly"):

* a lead is *answered* by its first contact or its first follow-up scheduled, and
  is no longer a lead once it bought or was lost (its lifecycle leaves
  ``potential``);
* a lead is *unanswered* at T when registered at least the response time
  (``CRM_LEAD_RESPONSE_MINUTES``) before T and, by T, neither answered nor closed,
  nor erased; merged duplicates are not leads of their own (merges are retroactive:
  the survivor answered when either card was answered, as in every KPI);
* the *first response* is registration → first contact, in minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import singledispatch
from statistics import median
from typing import Any
from uuid import UUID

from domain.access import DataAccess
from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from domain.subscription import Subscription
from projections.base import Ignored, Recorded, handled_by, topics_of

RESPONSE_WINDOW = timedelta(days=30)
"""``median_first_response_minutes`` as of T is over leads registered in the 30 days
before T."""


@dataclass(frozen=True, slots=True)
class Lead:
    client_id: UUID
    registered_at: datetime
    recorded_at: datetime
    """When the registration was stored (a back-dated one was stored later)."""
    owner_id: str | None = None
    first_contact_at: datetime | None = None
    first_follow_up_at: datetime | None = None
    closed_at: datetime | None = None
    """The first purchase or loss: no longer a lead from then on."""
    erased_at: datetime | None = None
    merged_into: UUID | None = None
    flagged_at: datetime | None = None
    """When ``LeadUnanswered`` was recorded for it (business time: its deadline)."""


def needs(recorded: Recorded) -> tuple[UUID, ...]:
    """The rows ``apply`` reads for this event."""
    event = recorded.event
    if isinstance(event, Client.DuplicateAbsorbed):
        return (event.originator_id, event.absorbed_id)
    if isinstance(event, Client.ClientRegistered):
        return ()
    return (event.originator_id,)


def apply(rows: Mapping[UUID, Lead], recorded: Recorded) -> dict[UUID, Lead]:
    """The rows one event changes, given (at least) the rows of ``needs(recorded)``."""
    event = recorded.event
    if isinstance(event, Client.ClientRegistered):
        lead = Lead(event.originator_id, event.occurred_at, recorded.recorded_at, event.owner_id)
        return {lead.client_id: lead}
    found = rows.get(event.originator_id)
    if found is None:
        return {}
    return _changes(event, found, rows)


def _earliest(current: datetime | None, at: datetime | None) -> datetime | None:
    if current is None:
        return at
    if at is None:
        return current
    return min(current, at)


@singledispatch
def _changes(event: Any, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    return {}


@_changes.register
def _(event: Client.ContactMade, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    at = _earliest(lead.first_contact_at, event.occurred_at)
    return {lead.client_id: replace(lead, first_contact_at=at)}


@_changes.register
def _(event: Client.FollowUpScheduled, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    at = _earliest(lead.first_follow_up_at, event.occurred_at)
    return {lead.client_id: replace(lead, first_follow_up_at=at)}


@_changes.register
def _(event: Client.PurchaseMade, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    return {lead.client_id: replace(lead, closed_at=_earliest(lead.closed_at, event.occurred_at))}


@_changes.register
def _(event: Client.ClientLost, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    return {lead.client_id: replace(lead, closed_at=_earliest(lead.closed_at, event.occurred_at))}


@_changes.register
def _(event: Client.OwnerAssigned, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    return {lead.client_id: replace(lead, owner_id=event.owner_id)}


@_changes.register
def _(event: Client.PersonalDataErased, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    return {lead.client_id: replace(lead, erased_at=event.occurred_at)}


@_changes.register
def _(event: Client.LeadUnanswered, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:  # noqa: ARG001
    return {lead.client_id: replace(lead, flagged_at=event.occurred_at)}


@_changes.register
def _(event: Client.DuplicateAbsorbed, lead: Lead, rows: Mapping[UUID, Lead]) -> dict[UUID, Lead]:
    absorbed = rows.get(event.absorbed_id)
    if absorbed is None:
        return {}
    survivor = replace(
        lead,
        registered_at=min(lead.registered_at, absorbed.registered_at),
        first_contact_at=_earliest(lead.first_contact_at, absorbed.first_contact_at),
        first_follow_up_at=_earliest(lead.first_follow_up_at, absorbed.first_follow_up_at),
        closed_at=_earliest(lead.closed_at, absorbed.closed_at),
    )
    return {
        survivor.client_id: survivor,
        absorbed.client_id: replace(absorbed, merged_into=survivor.client_id),
    }


HANDLED: tuple[type[Any], ...] = (Client.ClientRegistered, *handled_by(_changes))
"""Registration makes the row (``apply``); the other events change it."""
TOPICS = topics_of(*HANDLED)
IGNORED: Ignored = {
    **dict.fromkeys(
        (Client.FollowUpCompleted, Client.FollowUpCancelled, Client.FollowUpDue),
        "the first follow-up scheduled answers a lead, whatever becomes of it",
    ),
    **dict.fromkeys(
        (
            Client.ClientDetailsChanged,
            Client.ConsentGiven,
            Client.ConsentWithdrawn,
            Client.ProcessingRestricted,
            Client.RestrictionLifted,
        ),
        "neither answers nor closes a lead",
    ),
    Client.ClientMerged: "the survivor's DuplicateAbsorbed carries the merge",
    Deal: "a won deal closes the lead by the client's PurchaseMade, recorded with it",
    Pipeline: "pipelines are no leads",
    DataAccess: "reading a client's data does not answer them",
    Subscription: "webhook subscriptions are no leads",
}


# ------------------------------------------------------------------ the rules


def answered_by(lead: Lead, at: datetime) -> bool:
    first = _earliest(lead.first_contact_at, lead.first_follow_up_at)
    return first is not None and first <= at


def unanswered_at(lead: Lead, at: datetime, response_time: timedelta) -> bool:
    """Registered at least ``response_time`` before ``at`` and, by ``at``, neither
    answered, closed, erased nor merged into another card."""
    return (
        lead.merged_into is None
        and lead.registered_at + response_time <= at
        and not answered_by(lead, at)
        and (lead.closed_at is None or lead.closed_at > at)
        and (lead.erased_at is None or lead.erased_at > at)
    )


def first_response_minutes(
    lead: Lead, at: datetime, window: timedelta = RESPONSE_WINDOW
) -> float | None:
    """Registration → first contact in minutes, for a lead registered in the
    ``window`` before ``at`` and contacted by ``at``; else ``None``."""
    contact = lead.first_contact_at
    if (
        lead.merged_into is not None
        or contact is None
        or contact > at
        or not (at - window < lead.registered_at <= at)
    ):
        return None
    return (contact - lead.registered_at).total_seconds() / 60


def median_minutes(minutes: list[float]) -> float | None:
    return median(minutes) if minutes else None
