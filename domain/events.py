"""Every event the domain records, read from its aggregates' classes.

Read models, the audit trail and webhook subscriptions take their lists of events
from here, so an event added to an aggregate is never missing from a list typed by
hand: each of them either handles it or says why not.
"""

from __future__ import annotations

from typing import Any

from domain.access import DataAccess
from domain.base import CrmAggregate
from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from domain.subscription import Subscription

AGGREGATES: tuple[type[CrmAggregate], ...] = (Client, Deal, Pipeline, DataAccess, Subscription)


def events_of(aggregate: type[CrmAggregate]) -> tuple[type[CrmAggregate.Event], ...]:
    """The events ``aggregate`` declares, in the order of its class body.

    Not its ``Event`` base, nor ``Created``: the library gives every aggregate a
    default creation event, which none here triggers (each begins with an event of
    its own, ``ClientRegistered``, ``DealOpened``...)."""
    base: type[Any] = aggregate.Event
    return tuple(
        cls
        for name, cls in vars(aggregate).items()
        if isinstance(cls, type) and issubclass(cls, base) and cls is not base and name != "Created"
    )


EVENTS: tuple[type[CrmAggregate.Event], ...] = tuple(
    cls for aggregate in AGGREGATES for cls in events_of(aggregate)
)
"""Every event class of every aggregate."""
