"""Client directory read model: the current card of every client (pure fold).

State is a mapping of cards by client id. ``apply(cards, recorded)`` returns the
cards one event changes, reading only the cards ``needs(recorded)`` names (the
client's own, and for a merge the duplicate's), so the SQL adapter can load just
those for a batch, fold the batch in memory and write the changed cards back. The
same function serves live projection, rebuild and tests.

Rules taken from the business:

* "latest" dates are by business time: a purchase imported late with an old
  ``occurred_at`` never moves ``last_purchase_at`` backwards;
* revenue is the sum of purchase amounts, margin the sum of (amount - cost), exact;
* a merge folds the duplicate into the survivor: purchases, revenue, margin, the
  latest dates and the contact points; the survivor's history starts at the earlier
  of the two registrations (as in the lifecycle read model); the duplicate's card
  leaves the directory;
* erasure blanks every personal value on the card and keeps the non-personal
  figures (that a purchase of 120.00 happened, and when); its open follow-ups can
  never be completed, so they no longer count as open (as in the work queue).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from functools import singledispatch
from typing import Any
from uuid import UUID

from domain.access import DataAccess
from domain.client import ATTRIBUTES, Client
from domain.deal import Deal
from domain.events import events_of
from domain.pipeline import Pipeline
from domain.subscription import Subscription
from projections.base import Ignored, Recorded, topics_of


@dataclass(frozen=True, slots=True)
class ClientCard:
    """One client's current card. ``version`` is the aggregate version of the last
    event folded into it (the API's ETag)."""

    client_id: UUID
    name: str
    kind: str
    company: str | None
    address: str | None
    channel: str | None
    phones: tuple[str, ...]
    emails: tuple[str, ...]
    owner_id: str | None
    registered_at: datetime
    version: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    last_contact_at: datetime | None = None
    last_purchase_at: datetime | None = None
    purchases_count: int = 0
    revenue: Decimal = Decimal(0)
    margin: Decimal = Decimal(0)
    open_follow_ups: int = 0
    restricted: bool = False
    erased: bool = False
    merged_into: UUID | None = None

    @property
    def live(self) -> bool:
        """Neither merged away nor erased: only live cards hold contact points."""
        return self.merged_into is None and not self.erased

    @property
    def contact_points(self) -> frozenset[tuple[str, str]]:
        """``("phone", "+49…")`` / ``("email", "…")`` pairs the lookup finds this card by."""
        if not self.live:
            return frozenset()
        return frozenset(
            [("phone", phone) for phone in self.phones]
            + [("email", email) for email in self.emails]
        )

    @property
    def search_text(self) -> str:
        """What text search matches, lower-cased: name, company, emails, phones."""
        parts = [self.name, self.company or "", *self.emails, *self.phones]
        return " ".join(part for part in parts if part).lower()


Cards = Mapping[UUID, ClientCard]
Changes = dict[str, Any]
"""Card fields an event sets (by name), besides its ``version``."""
_CARD_FIELDS = tuple(f.name for f in fields(ClientCard))

HANDLED: tuple[type[Any], ...] = events_of(Client)
"""Every client event: each one advances the card's ``version`` (the ETag a write's
``If-Match`` is checked against), whether or not it changes another field."""
TOPICS = topics_of(*HANDLED)
IGNORED: Ignored = {
    Deal: "a won deal's money reaches the card as the client's PurchaseMade",
    Pipeline: "pipelines are no client's card",
    DataAccess: "reading a client's data changes no card",
    Subscription: "webhook subscriptions are no client's card",
}


def needs(recorded: Recorded) -> tuple[UUID, ...]:
    """The cards ``apply`` reads for this event."""
    event = recorded.event
    if isinstance(event, Client.DuplicateAbsorbed):
        return (event.originator_id, event.absorbed_id)
    if isinstance(event, Client.Event):
        return (event.originator_id,)
    return ()


def apply(cards: Cards, recorded: Recorded) -> dict[UUID, ClientCard]:
    """The cards this event changes (by client id), given at least ``needs(recorded)``.

    An event of a client whose card is unknown (never registered here) changes
    nothing."""
    event = recorded.event
    if isinstance(event, Client.ClientRegistered):
        return {event.originator_id: _registered(event)}
    card = cards.get(event.originator_id)
    if card is None or not isinstance(event, Client.Event):
        return {}
    changes = _apply(event, card, cards)
    return {card.client_id: _evolve(card, version=event.originator_version, **changes)}


def fold(events: Iterable[Recorded], cards: Cards | None = None) -> dict[UUID, ClientCard]:
    """Every card after ``events`` (in position order), starting from ``cards``."""
    state = dict(cards or {})
    for recorded in events:
        state.update(apply(state, recorded))
    return state


def _evolve(card: ClientCard, **changes: Any) -> ClientCard:
    """``dataclasses.replace`` without re-running the constructor (the fold makes one
    of these per event, and the constructor's checks cost more than the fold): a
    copy of the frozen card with some fields changed."""
    evolved = object.__new__(ClientCard)
    for name in _CARD_FIELDS:
        object.__setattr__(evolved, name, changes[name] if name in changes else getattr(card, name))
    return evolved


def _latest(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if current is None:
        return candidate
    if candidate is None:
        return current
    return max(current, candidate)


def _registered(event: Client.ClientRegistered) -> ClientCard:
    return ClientCard(
        client_id=event.originator_id,
        name=event.name,
        kind=event.kind,
        company=event.company,
        address=event.address,
        channel=event.channel,
        phones=tuple(event.phones),
        emails=tuple(event.emails),
        owner_id=event.owner_id,
        registered_at=event.occurred_at,
        version=event.originator_version,
        attributes=dict(event.attributes),
    )


@singledispatch
def _apply(event: Any, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    """The card fields ``event`` sets, given its card and the others it needs; none
    for the events that only advance the version (consents, losses)."""
    return {}


@_apply.register
def _(event: Client.ClientDetailsChanged, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    values: dict[str, Any] = {}
    for name in event.fields:
        if name not in event.new:  # erased since: its erasure blanks the card anyway
            continue
        new = event.new[name]
        if name == ATTRIBUTES:
            attributes = dict(card.attributes)
            for key, value in (new if isinstance(new, dict) else {}).items():
                if value is None:
                    attributes.pop(key, None)
                else:
                    attributes[key] = value
            values[name] = attributes
        elif name in ("phones", "emails"):
            values[name] = tuple(new or ())
        elif name == "name":
            values[name] = str(new or "")
        elif name in ("kind", "company", "address", "channel"):
            values[name] = new
    return values


@_apply.register
def _(event: Client.ContactMade, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {"last_contact_at": _latest(card.last_contact_at, event.occurred_at)}


@_apply.register
def _(event: Client.PurchaseMade, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {
        "last_purchase_at": _latest(card.last_purchase_at, event.occurred_at),
        "purchases_count": card.purchases_count + 1,
        "revenue": card.revenue + event.amount,
        "margin": card.margin + (event.amount - event.cost),
    }


@_apply.register
def _(event: Client.OwnerAssigned, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {"owner_id": event.owner_id}


@_apply.register
def _(event: Client.FollowUpScheduled, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {"open_follow_ups": card.open_follow_ups + 1}


@_apply.register(Client.FollowUpCompleted)
@_apply.register(Client.FollowUpCancelled)
def _(event: Client.Event, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {"open_follow_ups": max(0, card.open_follow_ups - 1)}


@_apply.register
def _(event: Client.ProcessingRestricted, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {"restricted": True}


@_apply.register
def _(event: Client.RestrictionLifted, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {"restricted": False}


@_apply.register
def _(event: Client.PersonalDataErased, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {
        "erased": True,
        "name": "",
        "company": None,
        "address": None,
        "channel": None,
        "phones": (),
        "emails": (),
        "attributes": {},
        "open_follow_ups": 0,  # nothing can be recorded any more: the work queue closes them
    }


@_apply.register
def _(event: Client.ClientMerged, card: ClientCard, cards: Cards) -> Changes:  # noqa: ARG001
    return {"merged_into": event.into_id}


@_apply.register
def _(event: Client.DuplicateAbsorbed, card: ClientCard, cards: Cards) -> Changes:
    phones = tuple(dict.fromkeys(card.phones + tuple(event.phones)))
    emails = tuple(dict.fromkeys(card.emails + tuple(event.emails)))
    duplicate = cards.get(event.absorbed_id)
    if duplicate is None:  # only its contact points are known
        return {"phones": phones, "emails": emails}
    return {
        "phones": phones,
        "emails": emails,
        "registered_at": min(card.registered_at, duplicate.registered_at),
        "last_contact_at": _latest(card.last_contact_at, duplicate.last_contact_at),
        "last_purchase_at": _latest(card.last_purchase_at, duplicate.last_purchase_at),
        "purchases_count": card.purchases_count + duplicate.purchases_count,
        "revenue": card.revenue + duplicate.revenue,
        "margin": card.margin + duplicate.margin,
    }
