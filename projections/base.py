"""What every read model is: a pure fold from recorded events to changes.

A read model's module in ``projections/`` says how each event changes it (free of
I/O, so the same code serves live projection, rebuild, replay and tests); its
adapter in ``adapters/read_models/`` stores the changes in SQL tables, in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from domain.base import CrmAggregate
from domain.events import events_of

C_co = TypeVar("C_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A decoded event and where it stands in the store."""

    position: int
    event: CrmAggregate.Event

    @property
    def recorded_at(self) -> datetime:
        stamp: datetime = self.event.timestamp
        return stamp

    @property
    def occurred_at(self) -> datetime:
        return self.event.occurred_at

    @property
    def event_type(self) -> str:
        return type(self.event).__name__


class Fold(Protocol[C_co]):
    """event -> the changes it makes to one read model (pure)."""

    def __call__(self, recorded: Recorded) -> Iterable[C_co]: ...


def topics_of(*event_classes: type[Any]) -> frozenset[str]:
    """The stored topics of the given event classes (for filtering in the database)."""
    from eventsourcing.utils import get_topic

    return frozenset(get_topic(cls) for cls in event_classes)


class Dispatch(Protocol):
    """A fold dispatched per event type with ``functools.singledispatch``."""

    @property
    def registry(self) -> Mapping[Any, object]: ...


def handled_by(dispatch: Dispatch) -> tuple[type[Any], ...]:
    """The event classes a fold has a handler for: a read model's topics are what its
    fold handles, so registering a handler is all it takes to receive an event."""
    return tuple(cls for cls in dispatch.registry if cls is not object)


Ignored = Mapping[type[Any], str]
"""The events a read model leaves out on purpose, each with the reason: an event
class, or an aggregate class for all of its events the read model does not handle.
A domain event that a read model neither handles nor ignores fails
``tests/unit/test_event_coverage.py``."""


def ignored_events(ignored: Ignored) -> frozenset[type[Any]]:
    """The event classes ``ignored`` names, an aggregate standing for all of its events."""
    return frozenset(
        cls
        for named in ignored
        for cls in (events_of(named) if issubclass(named, CrmAggregate) else (named,))
    )
