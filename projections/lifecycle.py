"""Lifecycle read model: the dated facts each client's stage depends on.

The fold turns events into facts; the stage intervals are then computed from all of
a client's facts by ``domain.lifecycle.stage_intervals`` whenever a fact is added,
so an event that arrives late (an import of old purchases after newer ones) re-folds
only its own client and the intervals are exact for any instant.

Contacts are kept as facts too (they do not change the stage) because the KPIs ask
"when was the last contact or purchase at T".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import singledispatch
from typing import Any, Literal
from uuid import UUID

from domain.access import DataAccess
from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from domain.subscription import Subscription
from projections.base import Ignored, Recorded, handled_by, topics_of

FactKind = Literal["purchase", "loss", "contact"]


@dataclass(frozen=True, slots=True)
class Registered:
    client_id: UUID
    at: datetime


@dataclass(frozen=True, slots=True)
class Fact:
    client_id: UUID
    position: int
    kind: FactKind
    at: datetime
    reason: str | None = None
    amount: Decimal | None = None
    cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Merged:
    """``absorbed_id``'s facts are ``into_id``'s from now on; the absorbed card is no
    longer a client of its own."""

    absorbed_id: UUID
    into_id: UUID


@dataclass(frozen=True, slots=True)
class Erased:
    client_id: UUID
    at: datetime


Change = Registered | Fact | Merged | Erased


def changes(recorded: Recorded) -> Iterable[Change]:
    """The lifecycle changes one recorded event makes."""
    return _changes(recorded.event, recorded.position)


@singledispatch
def _changes(event: Any, position: int) -> Iterable[Change]:  # noqa: ARG001
    return ()


@_changes.register
def _(event: Client.ClientRegistered, position: int) -> Iterable[Change]:  # noqa: ARG001
    return (Registered(event.originator_id, event.occurred_at),)


@_changes.register
def _(event: Client.PurchaseMade, position: int) -> Iterable[Change]:
    return (
        Fact(
            event.originator_id,
            position,
            "purchase",
            event.occurred_at,
            amount=event.amount,
            cost=event.cost,
        ),
    )


@_changes.register
def _(event: Client.ClientLost, position: int) -> Iterable[Change]:
    return (Fact(event.originator_id, position, "loss", event.occurred_at, reason=event.reason),)


@_changes.register
def _(event: Client.ContactMade, position: int) -> Iterable[Change]:
    return (Fact(event.originator_id, position, "contact", event.occurred_at),)


@_changes.register
def _(event: Client.DuplicateAbsorbed, position: int) -> Iterable[Change]:  # noqa: ARG001
    return (Merged(event.absorbed_id, event.originator_id),)


@_changes.register
def _(event: Client.PersonalDataErased, position: int) -> Iterable[Change]:  # noqa: ARG001
    return (Erased(event.originator_id, event.occurred_at),)


HANDLED: tuple[type[Any], ...] = handled_by(_changes)
TOPICS = topics_of(*HANDLED)
IGNORED: Ignored = {
    **dict.fromkeys(
        (
            Client.ClientDetailsChanged,
            Client.OwnerAssigned,
            Client.FollowUpScheduled,
            Client.FollowUpCompleted,
            Client.FollowUpCancelled,
            Client.FollowUpDue,
            Client.LeadUnanswered,
            Client.ConsentGiven,
            Client.ConsentWithdrawn,
            Client.ProcessingRestricted,
            Client.RestrictionLifted,
        ),
        "a stage depends on registration, purchases and losses only (and the KPIs read"
        " contacts besides)",
    ),
    Client.ClientMerged: "the survivor's DuplicateAbsorbed carries the merge",
    Deal: "a won deal's money is the client's PurchaseMade, recorded with it",
    Pipeline: "pipelines are no client's facts",
    DataAccess: "reading a client's data changes no stage",
    Subscription: "webhook subscriptions are no client's facts",
}
