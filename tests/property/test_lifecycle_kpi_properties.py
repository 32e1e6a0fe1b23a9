"""Properties of the lifecycle read model and the KPIs, on SQLite and PostgreSQL.

* incremental projection == a rebuild from position zero;
* the KPIs as of T == a fold over only the events that happened up to T;
* the order in which back-dated facts arrive changes nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.projector import Projector
from adapters.read_models import lifecycle as lifecycle_read_model
from adapters.read_models.kpis import KPI_MODELS, KpiQueries
from adapters.read_models.lifecycle import LifecycleReadModel
from api.bootstrap import Crm
from domain.envelope import Envelope
from projections import kpis
from tests.conftest import fresh_product, table_rows
from tests.story import Story, recorded_events

EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
ENVELOPE = Envelope(actor_id="alice", actor_role="admin", source="import", correlation_id="p")


@dataclass(frozen=True)
class Fact:
    client: int
    kind: str  # purchase | contact | loss
    day: int
    amount: int = 0
    minute: int = 0
    """Minutes into the day: facts, and so stage changes, fall at any time of day."""


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[Fact]]:
    """Up to 4 clients; purchases and contacts in any number, at most one loss each
    (a second loss could be refused depending on arrival order, which is a rule of
    the domain, not of the read model)."""
    clients = draw(st.integers(min_value=1, max_value=4))
    registered = [draw(st.integers(min_value=0, max_value=300)) for _ in range(clients)]
    facts: list[Fact] = []
    for client in range(clients):
        start = registered[client]
        days = st.integers(min_value=start, max_value=start + 500)
        minutes = st.integers(min_value=0, max_value=24 * 60 - 1)
        facts += [
            Fact(client, "purchase", day, draw(st.integers(1, 500)), draw(minutes))
            for day in draw(st.lists(days, max_size=7))
        ]
        facts += [
            Fact(client, "contact", d, minute=draw(minutes))
            for d in draw(st.lists(days, max_size=2))
        ]
        if draw(st.booleans()):
            facts.append(Fact(client, "loss", draw(days), minute=draw(minutes)))
    order = draw(st.permutations(range(len(facts))))
    return registered, [facts[i] for i in order]


def at(days: int, **extra: int) -> datetime:
    return EPOCH + timedelta(days=days, **extra)


def record(
    crm: Crm, registered: list[int], facts: list[Fact], *, project_every: int = 0
) -> list[Any]:
    story = Story(crm, ENVELOPE)
    projector = crm.projector(KPI_MODELS)
    ids = [story.register(f"client {n}", at(day).isoformat()) for n, day in enumerate(registered)]
    for n, fact in enumerate(facts, start=1):
        when = at(fact.day, minutes=fact.minute).isoformat()
        if fact.kind == "purchase":
            story.buy(ids[fact.client], when, str(fact.amount), str(Decimal(fact.amount) / 2))
        elif fact.kind == "contact":
            story.contact(ids[fact.client], when)
        else:
            story.lose(ids[fact.client], when, "price")
        if project_every and n % project_every == 0:
            projector.catch_up()
    projector.catch_up()
    return ids


def instants(registered: list[int], facts: list[Fact]) -> list[datetime]:
    days = sorted({*registered, *(f.day for f in facts)})
    chosen = [at(d) for d in days[:: max(1, len(days) // 3)]]
    # at facts and just before them, within their day
    chosen += [at(f.day, minutes=f.minute) for f in facts[:3]]
    chosen += [at(f.day, minutes=f.minute, microseconds=-1) for f in facts[-2:]]
    # around deaths by inactivity, and a year on
    chosen += [at(d + 90, microseconds=1) for d in days[-2:]] + [at(days[-1] + 400)]
    return chosen


BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])


@BACKENDS
@settings(max_examples=15, deadline=None)
@given(history=histories(), every=st.integers(min_value=1, max_value=5))
def test_incremental_projection_equals_a_rebuild(
    backend: str, tmp_path_factory: pytest.TempPathFactory, history: Any, every: int
) -> None:
    registered, facts = history
    with fresh_product(backend, tmp_path_factory.mktemp("p")) as crm:
        record(crm, registered, facts, project_every=every)
        check = LifecycleReadModel(crm.db, policy=crm.settings.lifecycle_policy, prefix="check_")
        rebuilt = Projector(crm.app, crm.db, [check], batch_size=3)
        rebuilt.setup()
        # a batch's clients refolded two at a time: several chunks per batch
        with patch.dict(lifecycle_read_model.REFOLD_CHUNK, {backend: 2}):
            rebuilt.catch_up()
        for logical in ("clients", "facts", "intervals", "day_deltas", "span_deltas"):
            assert table_rows(crm, f"lifecycle_{logical}") == table_rows(
                crm, f"check_lifecycle_{logical}"
            ), logical


@BACKENDS
@settings(max_examples=15, deadline=None)
@given(history=histories())
def test_kpis_as_of_t_equal_a_fold_over_the_events_up_to_t(
    backend: str, tmp_path_factory: pytest.TempPathFactory, history: Any
) -> None:
    registered, facts = history
    with fresh_product(backend, tmp_path_factory.mktemp("p")) as crm:
        record(crm, registered, facts)
        events = recorded_events(crm)
        queries = KpiQueries(crm.db)
        built_in = kpis.built_in(crm.settings.lifecycle_policy)
        for instant in instants(registered, facts):
            upto = [e for e in events if e.occurred_at <= instant]
            folded = {key: kpis.fold(kpi, upto, instant) for key, kpi in built_in.items()}
            served = queries.values(instant)
            assert {key: served[key] for key in folded} == folded, instant


@BACKENDS
@settings(max_examples=12, deadline=None)
@given(history=histories(), seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_the_arrival_order_of_back_dated_facts_changes_nothing(
    backend: str, tmp_path_factory: pytest.TempPathFactory, history: Any, seed: int
) -> None:
    registered, facts = history
    shuffled = list(facts)
    random.Random(seed).shuffle(shuffled)
    results = []
    for order in (facts, shuffled):
        with fresh_product(backend, tmp_path_factory.mktemp("p")) as crm:
            ids = record(crm, registered, order)
            lifecycle = crm.read_model("lifecycle")
            queries = KpiQueries(crm.db)
            results.append(
                (
                    [lifecycle.intervals(client_id) for client_id in ids],  # type: ignore[attr-defined]
                    [queries.values(i) for i in instants(registered, facts)],
                )
            )
    assert results[0] == results[1]


def test_the_kpis_of_an_empty_store_are_zero_or_undefined(crm: Crm) -> None:
    crm.projector().catch_up()
    values = KpiQueries(crm.db).values(datetime.now(UTC))
    assert values["clients_total"] == 0
    assert set(values["stage_counts"].values()) == {0}
    assert values["avg_check"] is None
    assert values["churn_rate"] is None
    assert values["clv"] is None
    assert values["lost_per_year"] == {}
