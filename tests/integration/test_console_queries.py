"""The two reads the console added to the read models, on every store, each figure
by hand: clients lost in a period by reason, and the audit trail by source.

Dormancy 90 days; a death by inactivity begins 1 µs after last purchase + 90 days.

    Ann   registered 2024-01-10, buys 2024-02-01 -> dead 2024-05-01 (+1 µs, inactivity)
    Bob   registered 2024-02-01, never buys, lost 2024-03-31 23:59:59 (no_need) -> dead
    Cara  registered 2024-03-01, buys 03-10, lost 2024-04-01 00:00 (price) -> dead
    Dan   registered 2024-03-01 by the command line, buys 2024-06-01
          -> dead 2024-08-30 (+1 µs, inactivity)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from adapters.read_models.audit import AuditReadModel
from adapters.read_models.kpis import KpiQueries, losses_query
from api.bootstrap import Crm
from domain.envelope import Envelope
from tests.story import Story, day

US = timedelta(microseconds=1)


@pytest.fixture
def history(crm: Crm, envelope: Envelope) -> dict[str, str]:
    story = Story(crm, envelope)
    ann = story.register("Ann", "2024-01-10")
    story.buy(ann, "2024-02-01", "100")
    bob = story.register("Bob", "2024-02-01")
    story.lose(bob, "2024-03-31T23:59:59", "no_need")
    cara = story.register("Cara", "2024-03-01")
    story.buy(cara, "2024-03-10", "50")
    story.lose(cara, "2024-04-01", "price")
    typed = Story(crm, replace(envelope, source="cli", actor_id="root"))
    dan = typed.register("Dan", "2024-03-01")
    typed.buy(dan, "2024-06-01", "70")
    crm.projector().catch_up()
    return {"ann": str(ann), "bob": str(bob), "cara": str(cara), "dan": str(dan)}


@pytest.mark.usefixtures("history")
def test_clients_lost_in_a_period_are_counted_by_reason_from_its_first_instant(
    crm: Crm,
) -> None:
    def lost(start: str, end: str) -> dict[str, int]:
        return crm.db.run(losses_query(day(start), day(end)))

    assert lost("2024-01-01", "2024-04-01") == {"no_need": 1}  # Cara's 04-01 loss is Q2's
    assert lost("2024-04-01", "2024-07-01") == {"inactivity": 1, "price": 1}
    assert lost("2024-07-01", "2024-10-01") == {"inactivity": 1}
    assert lost("2024-10-01", "2025-01-01") == {}
    may_first = day("2024-05-01")
    assert crm.db.run(losses_query(may_first, may_first + US)) == {}
    assert crm.db.run(losses_query(may_first, may_first + 2 * US)) == {"inactivity": 1}


@pytest.mark.usefixtures("history")
def test_losses_of_every_period_up_to_an_instant_add_up_to_the_churn_reasons_kpi(
    crm: Crm,
) -> None:
    at = day("2024-09-01")
    kpis = KpiQueries(crm.db).values(at)
    assert crm.db.run(losses_query(day("2000-01-01"), at + US)) == kpis["churn_reasons"]
    assert kpis["churn_reasons"] == {"inactivity": 2, "no_need": 1, "price": 1}


def test_the_audit_trail_is_filtered_by_where_events_came_from(
    crm: Crm, history: dict[str, str]
) -> None:
    audit = crm.model(AuditReadModel)
    typed = audit.page(source="cli", limit=100).entries
    assert {str(e.client_id) for e in typed} == {history["dan"]}
    assert {e.event_type for e in typed} == {"ClientRegistered", "PurchaseMade"}
    assert {e.source for e in audit.page(source="api", limit=100).entries} == {"api"}
    assert audit.page(source="import", limit=100).entries == []
    exported = list(audit.export_csv(source="cli"))
    assert len(exported) == 1 + len(typed)
    assert all(",cli," in line for line in exported[1:])
