"""The Subscription aggregate: a receiver of webhooks and what it wants pushed.

A subscription names a URL, the event types it wants (``Client.PurchaseMade``,
``Deal.*``, ``*``) and whether personal fields may travel. Every change to it is an
attributed event like any other, so the audit trail says who subscribed what, when,
and who paused, replayed or removed it. Its signing secret is never in an event:
the events carry a fingerprint of it only (see ``application.subscriptions``).
"""

from __future__ import annotations

import re
from typing import Literal, Self, get_args
from urllib.parse import urlsplit
from uuid import UUID

from domain.base import CrmAggregate
from domain.errors import InvalidValue, RuleViolation
from domain.values import MAX_SHORT_TEXT, normalise_text

Status = Literal["active", "paused", "failing", "removed"]
STATUSES: tuple[str, ...] = get_args(Status)

MAX_URL = 2000
MAX_EVENT_TYPES = 100
_EVENT_TYPE = re.compile(r"^(\*|[A-Z][A-Za-z]{0,63}\.(\*|[A-Z][A-Za-z]{0,63}))$")
"""``*``, ``Aggregate.*`` or ``Aggregate.EventName``."""


def check_url(url: str) -> str:
    """Rule: a webhook goes to an absolute ``http`` or ``https`` URL with a host and
    no user name or password in it (an event would keep them in clear)."""
    text = url.strip()
    if not text or len(text) > MAX_URL:
        raise InvalidValue(f"url must be 1 to {MAX_URL} characters", field="url")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise InvalidValue(f"url is not a valid URL: {error}", field="url") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidValue("url must be http:// or https://", field="url")
    if not parts.hostname:
        raise InvalidValue("url must name a host", field="url")
    if parts.username is not None or parts.password is not None:
        raise InvalidValue("url must not carry a user name or password", field="url")
    if port == 0:
        raise InvalidValue("url must not use port 0", field="url")
    if parts.fragment:
        raise InvalidValue("url must not have a #fragment", field="url")
    return text


def check_event_types(event_types: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Rule: at least one pattern, each ``*``, ``Aggregate.*`` or
    ``Aggregate.EventName``; duplicates are dropped, the order kept."""
    if isinstance(event_types, str) or not event_types:
        raise InvalidValue("events must list at least one event type", field="events")
    if len(event_types) > MAX_EVENT_TYPES:
        raise InvalidValue(f"events lists at most {MAX_EVENT_TYPES} types", field="events")
    for pattern in event_types:
        if not isinstance(pattern, str) or not _EVENT_TYPE.match(pattern):
            raise InvalidValue(
                f"events: {pattern!r} is not *, Aggregate.* or Aggregate.EventName",
                field="events",
            )
    return tuple(dict.fromkeys(event_types))


def matches(patterns: tuple[str, ...], event_type: str) -> bool:
    """Whether an event type (``Client.PurchaseMade``) is one the patterns ask for."""
    aggregate = event_type.partition(".")[0]
    return any(p in ("*", event_type, f"{aggregate}.*") for p in patterns)


class Subscription(CrmAggregate):
    """Where and what to push; ``status`` says whether deliveries run."""

    creation = "the subscription was created"

    class Event(CrmAggregate.Event):
        pass

    class SubscriptionCreated(Event, CrmAggregate.Created):
        url: str
        event_types: tuple[str, ...]
        description: str
        include_personal: bool
        secret_fingerprint: str
        """The first 16 hex digits of the secret's SHA-256: which secret was issued,
        not the secret."""

    class SubscriptionPaused(Event):
        def apply(self, aggregate: Subscription) -> None:
            aggregate.status = "paused"

    class SubscriptionResumed(Event):
        def apply(self, aggregate: Subscription) -> None:
            aggregate.status = "active"

    class SubscriptionFailing(Event):
        failures: int
        last_error: str

        def apply(self, aggregate: Subscription) -> None:
            aggregate.status = "failing"

    class SubscriptionReplayed(Event):
        from_position: int

    class SubscriptionRemoved(Event):
        def apply(self, aggregate: Subscription) -> None:
            aggregate.status = "removed"

    def __init__(
        self,
        *,
        url: str,
        event_types: tuple[str, ...],
        description: str,
        include_personal: bool,
        secret_fingerprint: str,
    ) -> None:
        self.url = url
        self.event_types = tuple(event_types)
        self.description = description
        self.include_personal = include_personal
        self.secret_fingerprint = secret_fingerprint
        self.status: Status = "active"

    @classmethod
    def create(
        cls,
        *,
        subscription_id: UUID,
        url: str,
        event_types: tuple[str, ...] | list[str],
        secret_fingerprint: str,
        description: str = "",
        include_personal: bool = False,
    ) -> Self:
        """A receiver subscribes to event types (see ``check_url`` and
        ``check_event_types``)."""
        return cls._create(
            cls.SubscriptionCreated,
            id=subscription_id,
            url=check_url(url),
            event_types=check_event_types(event_types),
            description=normalise_text(description, field="description", limit=MAX_SHORT_TEXT),
            include_personal=bool(include_personal),
            secret_fingerprint=secret_fingerprint,
        )

    def pause(self) -> None:
        """Deliveries stop where they are until resumed; pausing a paused subscription
        is a no-op."""
        self._check_not_removed()
        if self.status != "paused":
            self.trigger_event(self.SubscriptionPaused)

    def resume(self) -> None:
        """Deliveries go on from where they stopped (after a pause or a failing
        spell); resuming an active subscription is a no-op."""
        self._check_not_removed()
        if self.status != "active":
            self.trigger_event(self.SubscriptionResumed)

    def mark_failing(self, *, failures: int, last_error: str) -> None:
        """Rule: after ``CRM_WEBHOOK_MAX_AGE`` of failed deliveries an active
        subscription is paused as ``failing``; any other status is left as it is."""
        if self.status == "active":
            self.trigger_event(
                self.SubscriptionFailing,
                failures=failures,
                last_error=last_error[:MAX_SHORT_TEXT],
            )

    def replay(self, *, from_position: int) -> None:
        """Deliver again every matching event from this store position on (the
        receiver deduplicates by ``webhook-id``); the status is unchanged."""
        self._check_not_removed()
        if isinstance(from_position, bool) or not isinstance(from_position, int):
            raise InvalidValue("from_position must be a whole number", field="from_position")
        if from_position < 1:
            raise InvalidValue(
                "from_position is a store position, 1 or more", field="from_position"
            )
        self.trigger_event(self.SubscriptionReplayed, from_position=from_position)

    def remove(self) -> None:
        """No more deliveries, for ever (its secret is destroyed with it)."""
        self._check_not_removed()
        self.trigger_event(self.SubscriptionRemoved)

    def _check_not_removed(self) -> None:
        if self.status == "removed":
            raise RuleViolation("the subscription was removed")
