"""The base aggregate: every event carries business time and the envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self
from uuid import UUID

from eventsourcing.domain import Aggregate, CanInitAggregate, CanMutateAggregate

from domain.envelope import current_envelope, event_id, utc_now
from domain.errors import InvalidValue


class CrmAggregate(Aggregate):
    """An event-sourced aggregate whose events are attributed and dated.

    Subclasses call ``self.trigger_event(self.SomethingHappened, **payload)`` from
    their command methods; the envelope of the running command (see
    ``domain.envelope.recording``) is added here, so command methods never pass it.
    """

    class Event(Aggregate.Event):
        occurred_at: datetime
        actor_id: str
        actor_role: str
        source: str
        correlation_id: str
        causation_id: str | None

        @property
        def event_id(self) -> str:
            return event_id(self.originator_id, self.originator_version)

        @property
        def subject_id(self) -> UUID | None:
            """The person whose personal data this event carries (its fields marked
            ``PERSONAL`` are encrypted with that person's key); ``None`` for none."""
            return None

    class Created(Event, Aggregate.Created):
        def apply(self, aggregate: Any) -> None:
            aggregate.born_at = self.occurred_at

    creation = "the record was created"
    """How an error names the moment the aggregate began ("the client was registered")."""

    if TYPE_CHECKING:  # declared here only: class annotations would make a dataclass
        born_at: datetime

    @classmethod
    def _create(
        cls,
        event_class: type[CanInitAggregate[Any]],
        *,
        id: Any = None,  # noqa: A002 (the library's parameter name)
        **kwargs: Any,
    ) -> Self:
        return super()._create(event_class, id=id, **_stamped(event_class, kwargs, None))

    def trigger_event(self, event_class: type[CanMutateAggregate[Any]], **kwargs: Any) -> None:
        super().trigger_event(event_class, **_stamped(event_class, kwargs, self))

    @property
    def last_event_id(self) -> str:
        """Identifier of the aggregate's latest event (the causation id of events it
        causes elsewhere)."""
        return event_id(self.id, self.version)

    def _check_business_time(self) -> None:
        """Check the running command's business time suits this aggregate before a
        command that changes several aggregates touches any of them."""
        now = utc_now()
        _check_business_time(
            current_envelope().occurred_at or now, now, self.born_at, self.creation
        )

    @staticmethod
    def _occurred_at() -> datetime:
        """Business time of the command being executed (for invariants that need it)."""
        return current_envelope().occurred_at or utc_now()


EARLIEST_BUSINESS_TIME = datetime(1900, 1, 1, tzinfo=UTC)
"""No CRM fact predates this: an earlier date is a typo (0201 for 2021), refused."""


def _check_business_time(
    occurred_at: datetime, recorded_at: datetime, born_at: datetime | None, creation: str
) -> None:
    if occurred_at < EARLIEST_BUSINESS_TIME:
        raise InvalidValue(
            f"occurred_at {occurred_at.isoformat()} is before "
            f"{EARLIEST_BUSINESS_TIME.date().isoformat()}",
            field="occurred_at",
        )
    if occurred_at > recorded_at:
        raise InvalidValue(
            f"occurred_at {occurred_at.isoformat()} is in the future", field="occurred_at"
        )
    if born_at is not None and occurred_at < born_at:
        raise InvalidValue(
            f"occurred_at {occurred_at.isoformat()} is before {creation} ({born_at.isoformat()})",
            field="occurred_at",
        )


def _stamped(
    event_class: type[CanMutateAggregate[Any]],
    payload: dict[str, Any],
    aggregate: CrmAggregate | None,
) -> dict[str, Any]:
    """Add record time, business time and the envelope to an event's payload.

    Rule: business time defaults to the record time, may be back-dated, and may never
    lie in the future of the moment the event is recorded; nor may it precede the
    aggregate's own creation, which would rewrite history before the record began.
    """
    envelope = current_envelope()
    recorded_at = event_class.create_timestamp()
    occurred_at = envelope.occurred_at or recorded_at
    _check_business_time(
        occurred_at,
        recorded_at,
        getattr(aggregate, "born_at", None),
        aggregate.creation if aggregate is not None else "",
    )
    return {
        **payload,
        "timestamp": recorded_at,
        "occurred_at": occurred_at,
        "actor_id": envelope.actor_id,
        "actor_role": envelope.actor_role,
        "source": envelope.source,
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
    }
