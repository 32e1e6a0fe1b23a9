"""Issue 20 over HTTP: a manager's figures are their own (SPEC §8 "Access").

Users (``tests/e2e/conftest.py``): ``ada`` admin, ``mia`` and ``max`` managers,
``aud`` auditor, ``svc`` service.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from application.clients import RecordContact, RecordPurchase, RegisterClient, ScheduleFollowUp
from application.deals import OpenDeal
from domain.envelope import Envelope
from tests.e2e.conftest import Api, admin_envelope, assert_problem

# ------------------------------------------------------------------ scoping


@pytest.fixture
def two_books(api: Api) -> Api:
    """Clients, deals, purchases, follow-ups and contacts of both managers."""
    app, by = api.crm.app, admin_envelope()
    for owner, amount in (("mia", 100), ("max", 1000)):
        client = app.execute(RegisterClient(name=f"{owner}'s", owner_id=owner), by).id
        app.execute(RecordPurchase(client_id=client, amount=Decimal(amount), currency="EUR"), by)
        app.execute(
            OpenDeal(client_id=client, title="Deal", amount=Decimal(amount), currency="EUR"), by
        )
        app.execute(
            ScheduleFollowUp(
                client_id=client, due_at=datetime.now(UTC) + timedelta(hours=1), assignee_id=owner
            ),
            by,
        )
        manager = Envelope(actor_id=owner, actor_role="manager", source="api", correlation_id="c")
        app.execute(RecordContact(client_id=client, channel="call", direction="outbound"), manager)
    api.catch_up()
    return api


def _get(api: Api, user: str, url: str, **params: Any) -> Any:
    response = api.http.get(url, params=params, headers=api.auth(user))
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("url", "other"),
    [
        ("/funnel", {"owner_id": "max"}),
        ("/lifecycle", {"owner_id": "max"}),
        ("/kpis", {"owner_id": "max"}),
        ("/work-queue", {"assignee_id": "max"}),
        ("/activity", {"actor_id": "max"}),
    ],
)
def test_another_managers_figures_do_not_exist_for_a_manager(
    two_books: Api, url: str, other: dict[str, str]
) -> None:
    refused = two_books.http.get(url, params=other, headers=two_books.auth("mia"))
    assert_problem(refused, 404)


def test_a_managers_figures_are_their_own(two_books: Api) -> None:
    api = two_books
    now = datetime.now(UTC).isoformat()
    for url in ("/funnel", "/lifecycle", "/kpis"):
        own = _get(api, "mia", url, as_of=now)
        asked = _get(api, "mia", url, as_of=now, owner_id="mia")
        admins_view = _get(api, "admin", url, as_of=now, owner_id="mia")
        everyone = _get(api, "admin", url, as_of=now)
        assert own == asked == admins_view, url
        assert own != everyone, url
    kpis = _get(api, "mia", "/kpis")
    assert (kpis["clients_total"], kpis["avg_check"]) == (1, "100.0000")
    assert _get(api, "mia", "/funnel")["stages"][0]["reached"] == 1
    assert [row["assignee_id"] for row in _get(api, "mia", "/work-queue")] == ["mia"]
    assert [row["actor_id"] for row in _get(api, "mia", "/activity")] == ["mia"]


def test_auditors_and_services_read_everyones_work_queue_and_activity(two_books: Api) -> None:
    for role in ("auditor", "service"):
        queue = _get(two_books, role, "/work-queue")
        assert sorted(row["assignee_id"] for row in queue) == ["max", "mia"], role
        activity = _get(two_books, role, "/activity")
        assert sorted(row["actor_id"] for row in activity) == ["max", "mia"], role
