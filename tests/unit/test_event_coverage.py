"""Every event of the domain is handled, or left out with a reason, by every read model.

The lists come from ``domain.events``: an event added to an aggregate fails here until
each read model either handles it or says, next to the exclusion, why it does not.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any

import pytest

import domain
from domain.base import CrmAggregate
from domain.client import Client
from domain.events import AGGREGATES, EVENTS, events_of
from projections import (
    audit,
    deals,
    directory,
    funnel,
    kpis,
    leads,
    lifecycle,
    subscriptions,
    work_queue,
)
from projections.base import Ignored, ignored_events, topics_of

READ_MODELS: dict[str, tuple[tuple[type[Any], ...], Ignored]] = {
    "audit": (audit.AUDITED, audit.EXCLUDED),
    "deals": (deals.HANDLED, deals.IGNORED),
    "directory": (directory.HANDLED, directory.IGNORED),
    "funnel": (funnel.HANDLED, funnel.IGNORED),
    "leads": (leads.HANDLED, leads.IGNORED),
    "lifecycle": (lifecycle.HANDLED, lifecycle.IGNORED),
    "subscriptions": (subscriptions.HANDLED, subscriptions.IGNORED),
    "work_queue": (work_queue.HANDLED, work_queue.IGNORED),
    "kpis": (kpis.HISTORY_EVENTS, kpis.HISTORY_IGNORED),
}
TOPICS = {
    "audit": audit.TOPICS,
    "deals": deals.TOPICS,
    "directory": directory.TOPICS,
    "funnel": funnel.TOPICS,
    "leads": leads.TOPICS,
    "lifecycle": lifecycle.TOPICS,
    "subscriptions": subscriptions.TOPICS,
    "work_queue": work_queue.TOPICS,
}


def test_the_domain_lists_every_aggregate_it_defines() -> None:
    defined = set()
    for module in pkgutil.iter_modules(domain.__path__, "domain."):
        for _, cls in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
            if issubclass(cls, CrmAggregate) and cls is not CrmAggregate:
                defined.add(cls)

    assert defined == set(AGGREGATES)


@pytest.mark.parametrize("name", READ_MODELS)
def test_every_event_is_handled_or_left_out_with_a_reason(name: str) -> None:
    handled, ignored = READ_MODELS[name]
    left_out = ignored_events(ignored)

    neither = [cls.__qualname__ for cls in EVENTS if cls not in handled and cls not in left_out]
    both = [cls.__qualname__ for cls in handled if cls in ignored]
    assert (neither, both) == ([], [])
    assert set(handled) <= set(EVENTS)
    assert all(reason.strip() for reason in ignored.values())


@pytest.mark.parametrize("name", TOPICS)
def test_a_read_model_receives_the_events_it_handles(name: str) -> None:
    assert TOPICS[name] == topics_of(*READ_MODELS[name][0])


def test_every_event_of_a_client_advances_its_card() -> None:
    """Each one moves the card's ``version``, the ETag a write's ``If-Match`` names."""
    assert topics_of(*events_of(Client)) == directory.TOPICS
