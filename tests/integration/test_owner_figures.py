"""A manager's figures (SPEC §8: "Managers' figures (funnel, lifecycle, KPIs, work
queue) cover their own records"): the lifecycle counts and the KPIs over one owner's
clients — those whose card names the owner now — on every store, by hand.

As of 2024-03-15 (T), all at midnight UTC:

    A  mia's, registered 2024-01-01; buys 02-01 (100/60) and 03-01 (200/120): new.
    B  mia's, registered 2024-01-10; nothing: potential, not contacted for 65 days.
    C  max's, registered 2024-01-05; buys 01-20 (1000/500); lost 02-10 (price): dead.
    D  registered 2024-02-01 for mia, buys 02-20 (50/10): new; handed to max 03-10,
       so it counts as max's.

    mia: 2 clients; potential 1, new 1; 2 purchases of 300 with margin 120; A's
         lifetime 02-01..T = 43 days, lifecycle 01-01..T = 74 days.
    max: 2 clients; new 1, dead 1 (lost 2024, price); 2 purchases of 1050 with margin
         540; lifetimes 21 (C: 01-20..02-10) and 24 (D: 02-20..T) days, lifecycles
         36 (C: 01-05..02-10) and 43 (D: 02-01..T) days.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from adapters.read_models.kpis import KpiQueries, stage_counts_query
from api.bootstrap import Crm
from application import clients
from domain.envelope import Envelope
from tests.story import Story, day

T = day("2024-03-15")
NONE = {"potential": 0, "new": 0, "loyal": 0, "dead": 0, "returned": 0}


@pytest.fixture
def figures(crm: Crm, envelope: Envelope) -> Crm:
    crm.users.add("mia", "manager")
    crm.users.add("max", "manager")
    story = Story(crm, envelope)
    a = story.register("A", "2024-01-01", owner_id="mia")
    story.buy(a, "2024-02-01", "100", "60")
    story.buy(a, "2024-03-01", "200", "120")
    story.register("B", "2024-01-10", owner_id="mia")
    c = story.register("C", "2024-01-05", owner_id="max")
    story.buy(c, "2024-01-20", "1000", "500")
    story.lose(c, "2024-02-10", "price")
    d = story.register("D", "2024-02-01", owner_id="mia")
    story.buy(d, "2024-02-20", "50", "10")
    story.run(clients.AssignOwner(client_id=d, owner_id="max"), "2024-03-10")
    crm.projector().catch_up()
    return crm


def test_the_stage_counts_of_one_owner_cover_the_clients_they_own(figures: Crm) -> None:
    def counts(owner: str | None) -> dict[str, int]:
        return figures.db.run(stage_counts_query(T, owner_id=owner))

    assert counts("mia") == {**NONE, "potential": 1, "new": 1}
    assert counts("max") == {**NONE, "new": 1, "dead": 1}
    assert counts("nobody") == NONE
    assert counts(None) == {**NONE, "potential": 1, "new": 2, "dead": 1}


def _some(values: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "clients_total", "stage_counts", "no_contact_over_30d", "dead_clients",
        "lost_per_year", "churn_reasons", "avg_purchases_per_client", "avg_check",
        "avg_margin", "margin_ratio", "avg_customer_lifetime_days", "avg_lifecycle_days",
        "churn_rate",
    )  # fmt: skip
    return {key: values[key] for key in keys}


def test_the_kpis_of_one_owner_cover_the_clients_they_own(figures: Crm) -> None:
    kpis = KpiQueries(figures.db)

    assert _some(kpis.values(T, owner_id="mia")) == {
        "clients_total": 2,
        "stage_counts": {**NONE, "potential": 1, "new": 1},
        "no_contact_over_30d": 1,  # B, never contacted, registered 65 days before
        "dead_clients": 0,
        "lost_per_year": {},
        "churn_reasons": {},
        "avg_purchases_per_client": 2.0,
        "avg_check": Decimal("150.0000"),
        "avg_margin": Decimal("60.0000"),
        "margin_ratio": 0.4,
        "avg_customer_lifetime_days": 43.0,
        "avg_lifecycle_days": 74.0,
        "churn_rate": None,
    }
    assert _some(kpis.values(T, owner_id="max")) == {
        "clients_total": 2,
        "stage_counts": {**NONE, "new": 1, "dead": 1},
        "no_contact_over_30d": 0,
        "dead_clients": 1,
        "lost_per_year": {"2024": 1},
        "churn_reasons": {"price": 1},
        "avg_purchases_per_client": 1.0,
        "avg_check": Decimal("525.0000"),
        "avg_margin": Decimal("270.0000"),
        "margin_ratio": pytest.approx(540 / 1050),
        "avg_customer_lifetime_days": 22.5,
        "avg_lifecycle_days": 39.5,
        "churn_rate": None,
    }
    everyone = kpis.values(T)
    assert everyone["clients_total"] == 4
    assert everyone["avg_check"] == Decimal("1350") / 4


def test_an_owner_with_no_clients_has_empty_figures(figures: Crm) -> None:
    values = KpiQueries(figures.db).values(T, owner_id="nobody")
    assert values["clients_total"] == 0
    assert values["avg_check"] is None
    assert values["stage_counts"] == NONE
