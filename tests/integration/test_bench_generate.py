"""The benchmarks' history generator: a store that looks recorded over three years.

Its events are stored in the order they occurred, clients interleaved (a rebuild
meets each client in many batches, as it would in a CRM that has been live that
long), and every aggregate's events in version order.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from uuid import UUID

import pytest

from api.bootstrap import Crm
from bench.generate import generate
from domain.client import Client
from domain.pipeline import Pipeline
from tests.story import recorded_events


@pytest.mark.parametrize("store", ["memory", "sqlite", "postgresql"])
def test_the_generated_history_is_stored_in_the_order_it_occurred(crm: Crm) -> None:
    generated = generate(crm, 600, seed=3)
    events = [r.event for r in recorded_events(crm) if not isinstance(r.event, Pipeline.Event)]
    assert len(events) == generated.events

    versions: dict[UUID, list[int]] = defaultdict(list)
    placed: list[datetime] = []  # each event at the latest instant of its aggregate so far
    latest: dict[UUID, datetime] = {}
    for event in events:
        versions[event.originator_id].append(event.originator_version)
        at = max(event.occurred_at, latest.get(event.originator_id, event.occurred_at))
        latest[event.originator_id] = at
        placed.append(at)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    assert placed == sorted(placed)

    # clients interleave: most have another client's event between their first and last
    spans: dict[UUID, list[int]] = defaultdict(list)
    for position, event in enumerate(events):
        if isinstance(event, Client.Event):
            spans[event.originator_id].append(position)
    interleaved = [
        client
        for client, positions in spans.items()
        if positions[-1] - positions[0] + 1 > len(positions)
    ]
    assert len(interleaved) > len(spans) / 2
