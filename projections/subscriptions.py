"""Subscriptions read model: each webhook subscription as it stands (pure fold).

``apply(rows, recorded)`` returns the row one Subscription event changes. The
delivery processes read it to know what to deliver where; the API lists it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from domain.access import DataAccess
from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from domain.subscription import Subscription
from projections.base import Ignored, Recorded, topics_of


@dataclass(frozen=True, slots=True)
class SubscriptionRow:
    subscription_id: UUID
    url: str
    event_types: tuple[str, ...]
    description: str
    include_personal: bool
    created_by: str
    created_role: str
    created_at: datetime
    created_position: int
    """Deliveries begin after this position (the subscription's own creation)."""
    secret_fingerprint: str
    status: str = "active"
    replay_from: int | None = None
    replay_position: int | None = None
    """The position of the latest ``SubscriptionReplayed``: a delivery process that
    has not applied that replay yet starts again from ``replay_from``."""
    updated_at: datetime | None = None


_STATUS: dict[type[Any], str] = {
    Subscription.SubscriptionPaused: "paused",
    Subscription.SubscriptionResumed: "active",
    Subscription.SubscriptionFailing: "failing",
    Subscription.SubscriptionRemoved: "removed",
}

HANDLED: tuple[type[Any], ...] = (
    Subscription.SubscriptionCreated,
    Subscription.SubscriptionReplayed,
    *_STATUS,
)
"""What ``apply`` reads: a creation, a replay, or a change of status."""
TOPICS = topics_of(*HANDLED)
IGNORED: Ignored = dict.fromkeys(
    (Client, Deal, Pipeline, DataAccess), "a subscription changes by its own events only"
)


def apply(rows: Mapping[UUID, SubscriptionRow], recorded: Recorded) -> SubscriptionRow | None:
    """The row one event makes or changes (``None``: nothing)."""
    event = recorded.event
    if isinstance(event, Subscription.SubscriptionCreated):
        return SubscriptionRow(
            subscription_id=event.originator_id,
            url=event.url,
            event_types=tuple(event.event_types),
            description=event.description,
            include_personal=event.include_personal,
            created_by=event.actor_id,
            created_role=event.actor_role,
            created_at=recorded.recorded_at,
            created_position=recorded.position,
            secret_fingerprint=event.secret_fingerprint,
            updated_at=recorded.recorded_at,
        )
    row = rows.get(event.originator_id)
    if row is None:
        return None
    if isinstance(event, Subscription.SubscriptionReplayed):
        return replace(
            row,
            replay_from=event.from_position,
            replay_position=recorded.position,
            updated_at=recorded.recorded_at,
        )
    status = _STATUS.get(type(event))
    if status is None:
        return None
    return replace(row, status=status, updated_at=recorded.recorded_at)
