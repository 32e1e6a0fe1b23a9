"""The lifecycle read model and the KPIs on a small history, every figure by hand.

Policy: loyal = 3 purchases within 365 days; dead = no purchase for more than 90
days (death begins 1 µs after last purchase + 90 days) or lost after the last
purchase. All facts happen at midnight UTC.

    Ann   registered 2024-01-10, contact 01-15; buys 02-01 (100/60), 03-01 (200/120),
          04-01 (300/150) -> new 02-01, loyal 04-01, dead 06-30 (+1 µs, inactivity);
          buys again 2025-03-01, 04-01, 05-01 (150/100 each) -> returned 03-01,
          loyal 05-01, dead 2025-07-30 (+1 µs).
    Bob   registered 2024-02-01, contact 02-02, never buys, lost 05-01 (no_need),
          erased 2025-01-15.
    Cara  registered 2024-03-01, buys 03-10 (50/20), lost 04-10 (price), buys
          09-01 (80/30) -> returned, dead 11-30 (+1 µs, inactivity).
    Dan   registered 2024-06-01, contact 06-02, never buys: potential.
    Eve   registered 2024-05-01, buys 05-15 (1000/700) and 07-01 (500/300) — the
          07-01 purchase is recorded last, after everything else (a late import);
          dead 09-29 (+1 µs, inactivity).
    Fay   registered 2024-04-01, buys 40/20 every 55 to 57 days from 2024-04-15 to
          2025-05-12 (8 purchases) -> new 04-15, loyal 08-05, alive throughout.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from adapters.projector import rebuild
from adapters.read_models import lifecycle as lifecycle_read_model
from adapters.read_models.kpis import KPI_MODELS, KpiQueries
from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.replay import replay
from api.bootstrap import Crm
from application import clients
from domain.envelope import Envelope
from domain.lifecycle import Stage, StageInterval
from projections import kpis
from tests.conftest import table_rows
from tests.story import Story, day, recorded_events

US = timedelta(microseconds=1)
FAY_PURCHASES = (
    "2024-04-15", "2024-06-10", "2024-08-05", "2024-10-01",
    "2024-11-25", "2025-01-20", "2025-03-17", "2025-05-12",
)  # fmt: skip


@pytest.fixture
def people(crm: Crm, envelope: Envelope) -> dict[str, UUID]:
    story = Story(crm, envelope)
    projector = crm.projector(KPI_MODELS)
    ann = story.register("Ann", "2024-01-10")
    story.contact(ann, "2024-01-15")
    for when, amount, cost in (
        ("2024-02-01", "100", "60"),
        ("2024-03-01", "200", "120"),
        ("2024-04-01", "300", "150"),
    ):
        story.buy(ann, when, amount, cost)
    bob = story.register("Bob", "2024-02-01")
    story.contact(bob, "2024-02-02")
    story.lose(bob, "2024-05-01", "no_need")
    cara = story.register("Cara", "2024-03-01")
    story.buy(cara, "2024-03-10", "50", "20")
    story.lose(cara, "2024-04-10", "price")
    story.buy(cara, "2024-09-01", "80", "30")
    dan = story.register("Dan", "2024-06-01")
    story.contact(dan, "2024-06-02")
    eve = story.register("Eve", "2024-05-01")
    story.buy(eve, "2024-05-15", "1000", "700")
    fay = story.register("Fay", "2024-04-01")
    for when in FAY_PURCHASES:
        story.buy(fay, when, "40", "20")
    for when in ("2025-03-01", "2025-04-01", "2025-05-01"):
        story.buy(ann, when, "150", "100")
    story.erase(bob, "2025-01-15")
    projector.catch_up()  # projected before the late purchase arrives
    story.buy(eve, "2024-07-01", "500", "300")
    projector.catch_up()
    return {"ann": ann, "bob": bob, "cara": cara, "dan": dan, "eve": eve, "fay": fay}


EXPECTED: dict[str, dict[str, Any]] = {
    "2024-05-20": {
        "clients_total": 5,  # Dan registers later
        "stage_counts": {"potential": 0, "new": 2, "loyal": 1, "dead": 2, "returned": 0},
        "no_contact_over_30d": 2,  # Ann (last 04-01) and Fay (04-15) before 04-20
        "no_contact_over_180d": 0,
        "dead_clients": 2,
        "lost_per_year": {"2024": 2},
        "churn_reasons": {"no_need": 1, "price": 1},
        "avg_purchases_per_client": 6 / 4,
        "avg_check": Decimal("281.6667"),  # 1690 / 6
        "avg_margin": Decimal("103.3333"),  # 620 / 6
        "margin_ratio": 620 / 1690,
        "avg_customer_lifetime_days": (109 + 31 + 5 + 35) / 4,
        "avg_lifecycle_days": (131 + 40 + 19 + 49) / 4,
        "churn_rate": None,  # nobody was a paying client a year earlier
        "clv": Decimal("155.0000"),  # total margin / paying clients = 620 / 4
    },
    "2024-10-01": {
        "clients_total": 6,
        "stage_counts": {"potential": 1, "new": 0, "loyal": 1, "dead": 3, "returned": 1},
        "no_contact_over_30d": 1,  # Dan; Cara's 09-01 purchase is exactly 30 days old
        "no_contact_over_180d": 0,
        "dead_clients": 3,
        "lost_per_year": {"2024": 4},
        "churn_reasons": {"inactivity": 2, "no_need": 1, "price": 1},
        "avg_purchases_per_client": 11 / 4,
        "avg_check": Decimal("217.2727"),  # 2390 / 11
        "avg_margin": Decimal("84.5455"),  # 930 / 11
        "margin_ratio": 930 / 2390,
        "avg_customer_lifetime_days": (150 + 205 + 137 + 169) / 4,
        "avg_lifecycle_days": (172 + 214 + 151 + 183) / 4,
        "churn_rate": None,
        "clv": Decimal("232.5000"),  # 930 / 4
    },
    "2025-06-01": {
        "clients_total": 5,  # Bob was erased
        "stage_counts": {"potential": 1, "new": 0, "loyal": 2, "dead": 3, "returned": 0},
        "no_contact_over_30d": 2,  # Ann (05-01) and Dan
        "no_contact_over_180d": 1,  # Dan (2024-06-02)
        "dead_clients": 3,
        "lost_per_year": {"2024": 5},
        "churn_reasons": {"inactivity": 3, "no_need": 1, "price": 1},
        "avg_purchases_per_client": 18 / 4,
        "avg_check": Decimal("166.6667"),  # 3000 / 18
        "avg_margin": Decimal("64.4444"),  # 1160 / 18
        "margin_ratio": 1160 / 3000,
        "avg_customer_lifetime_days": (486 + 265 + 137 + 412) / 4,
        "avg_lifecycle_days": (508 + 274 + 151 + 426) / 4,
        "churn_rate": 2 / 3,  # Ann, Eve, Fay paying on 2024-06-01; Ann and Eve died since
        "clv": Decimal("290.0000"),  # 1160 / 4
    },
}


def assert_kpis(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, value in expected.items():
        if isinstance(value, float):
            assert actual[key] == pytest.approx(value, abs=1e-6), key
        elif isinstance(value, Decimal) and key == "clv":
            assert actual[key] == pytest.approx(value, abs=Decimal("0.0001")), key
        else:
            assert actual[key] == value, key


@pytest.mark.parametrize("instant", list(EXPECTED))
def test_the_read_model_kpis_match_the_hand_computed_figures(
    crm: Crm, people: dict[str, UUID], instant: str
) -> None:
    assert_kpis(KpiQueries(crm.db).values(day(instant)), EXPECTED[instant])


@pytest.mark.parametrize("instant", list(EXPECTED))
def test_the_kpi_folds_match_the_hand_computed_figures(
    crm: Crm, people: dict[str, UUID], instant: str
) -> None:
    at = day(instant)
    events = [e for e in recorded_events(crm) if e.occurred_at <= at]
    folded = {
        key: kpis.fold(kpi, events, at)
        for key, kpi in kpis.built_in(crm.settings.lifecycle_policy).items()
    }
    assert_kpis(folded, EXPECTED[instant])


def test_a_clients_stage_intervals_are_exact_including_a_return(
    crm: Crm, people: dict[str, UUID]
) -> None:
    lifecycle = crm.read_model("lifecycle")
    assert lifecycle.intervals(people["ann"]) == [  # type: ignore[attr-defined]
        StageInterval(Stage.POTENTIAL, day("2024-01-10"), day("2024-02-01")),
        StageInterval(Stage.NEW, day("2024-02-01"), day("2024-04-01")),
        StageInterval(Stage.LOYAL, day("2024-04-01"), day("2024-06-30") + US),
        StageInterval(Stage.DEAD, day("2024-06-30") + US, day("2025-03-01"), "inactivity"),
        StageInterval(Stage.RETURNED, day("2025-03-01"), day("2025-05-01")),
        StageInterval(Stage.LOYAL, day("2025-05-01"), day("2025-07-30") + US),
        StageInterval(Stage.DEAD, day("2025-07-30") + US, None, "inactivity"),
    ]


def test_a_late_back_dated_purchase_moves_the_clients_death(
    crm: Crm, people: dict[str, UUID]
) -> None:
    eve = crm.read_model("lifecycle").intervals(people["eve"])  # type: ignore[attr-defined]
    # Without the late 07-01 purchase Eve would have died on 08-13 (05-15 + 90 days).
    assert eve[-1] == StageInterval(Stage.DEAD, day("2024-09-29") + US, None, "inactivity")


def test_the_clients_in_a_stage_at_an_instant(crm: Crm, people: dict[str, UUID]) -> None:
    lifecycle = crm.read_model("lifecycle")
    loyal = lifecycle.clients_in_stage(Stage.LOYAL, day("2025-06-01"))  # type: ignore[attr-defined]
    assert set(loyal) == {people["ann"], people["fay"]}
    page = lifecycle.clients_in_stage(Stage.DEAD, day("2025-06-01"), limit=2)  # type: ignore[attr-defined]
    rest = lifecycle.clients_in_stage(Stage.DEAD, day("2025-06-01"), after=page[-1])  # type: ignore[attr-defined]
    assert set(page + rest) == {people["bob"], people["cara"], people["eve"]}
    assert len(page + rest) == 3


# Ann dies at 2024-06-30 00:00:00.000001: loyal one microsecond before, dead at it.
# Then: Dan potential; Eve (since 05-15) and Fay (since 04-15) new; Ann loyal;
# Cara (lost 04-10) and Bob (lost 05-01) dead.
BEFORE_ANN_DIES = {"potential": 1, "new": 2, "loyal": 1, "dead": 2, "returned": 0}
WHEN_ANN_DIES = {"potential": 1, "new": 2, "loyal": 0, "dead": 3, "returned": 0}


def test_stage_counts_change_at_the_exact_instant_within_a_day(
    crm: Crm, people: dict[str, UUID]
) -> None:
    lifecycle = crm.model(LifecycleReadModel)
    assert lifecycle.stage_counts(day("2024-06-30")) == BEFORE_ANN_DIES
    assert lifecycle.stage_counts(day("2024-06-30") + US) == WHEN_ANN_DIES


def test_a_lifecycle_model_from_before_the_day_deltas_is_upgraded_on_setup(
    crm: Crm, people: dict[str, UUID]
) -> None:
    lifecycle = crm.model(LifecycleReadModel)
    crm.db.execute("DELETE FROM lifecycle_day_deltas")  # as tables made by an older version
    crm.projector(["lifecycle"]).setup()
    assert lifecycle.stage_counts(day("2024-06-30")) == BEFORE_ANN_DIES
    assert lifecycle.stage_counts(day("2024-06-30") + US) == WHEN_ANN_DIES


def test_a_lifecycle_model_from_before_the_span_deltas_is_upgraded_on_setup(
    crm: Crm, people: dict[str, UUID]
) -> None:
    lifecycle = crm.model(LifecycleReadModel)
    spans = table_rows(crm, "lifecycle_span_deltas")
    crm.db.execute("DELETE FROM lifecycle_span_deltas")  # as tables made by an older version
    crm.projector(["lifecycle"]).setup()
    assert table_rows(crm, "lifecycle_span_deltas") == spans
    assert lifecycle.stage_counts(day("2024-06-30")) == BEFORE_ANN_DIES
    assert lifecycle.stage_counts(day("2024-06-30") + US) == WHEN_ANN_DIES


def test_replaying_a_built_in_kpi_gives_the_read_models_value(
    crm: Crm, people: dict[str, UUID]
) -> None:
    at = day("2025-06-01")
    report = replay(
        crm.app, kpis.built_in(crm.settings.lifecycle_policy)["avg_check"], until=at, page_size=7
    )
    assert report.value == Decimal("166.6667")
    # up to then: 6 registrations, 18 purchases, 2 losses, 3 contacts, 1 erasure
    assert report.events_folded == 6 + 18 + 2 + 3 + 1
    assert report.value == KpiQueries(crm.db).values(at)["avg_check"]


def test_replay_up_to_a_position_ignores_later_events(crm: Crm, people: dict[str, UUID]) -> None:
    class Purchases:
        key = "purchases"
        events = kpis.HISTORY_EVENTS

        def initial(self) -> int:
            return 0

        def apply(self, state: int, recorded: Any) -> int:
            return state + (type(recorded.event).__name__ == "PurchaseMade")

        def result(self, state: int, as_of: Any) -> int:
            return state

    for page_size in (1, 3, 5000):  # page boundaries (each page read ahead) lose nothing
        everything = replay(crm.app, Purchases(), page_size=page_size)
        assert everything.value == 6 + 2 + 2 + 8  # Ann, Cara, Eve (with the late one), Fay
        before_late = replay(
            crm.app, Purchases(), position=everything.position - 1, page_size=page_size
        )
        assert before_late.value == everything.value - 1


def test_a_rebuild_makes_the_intervals_at_its_end_as_the_projector_made_them(
    crm: Crm, people: dict[str, UUID], envelope: Envelope, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild writes the facts batch by batch and every client's intervals once at
    its end, two clients per round here: the tables it swaps in are those the projector
    kept batch by batch, with a merge (Ann absorbs a duplicate registered 2024-01-05)
    and an erasure (Bob's)."""
    story = Story(crm, envelope)
    duplicate = story.register("A. Ann", "2024-01-05")
    story.buy(duplicate, "2024-05-20", "10", "4")
    story.run(clients.MergeClients(survivor_id=people["ann"], duplicate_id=duplicate), "2025-06-01")
    crm.projector(["lifecycle"]).catch_up()
    tables = [LifecycleReadModel.physical(table.logical) for table in LifecycleReadModel.tables]
    projected = {table: table_rows(crm, table) for table in tables}

    monkeypatch.setattr(lifecycle_read_model, "REFOLD_PAGE", 2)
    rebuild(crm.app, crm.db, lambda prefix: crm.read_model("lifecycle", prefix), batch_size=3)

    assert {table: table_rows(crm, table) for table in tables} == projected
    ann = crm.model(LifecycleReadModel).intervals(people["ann"])
    assert ann[0] == StageInterval(Stage.POTENTIAL, day("2024-01-05"), day("2024-02-01"))
