"""Issue 20 over HTTP: no personal value leaves without ``read_personal``; bulk reads
of personal values are counted against the export limit and recorded; the limit is
shared by every instance of the app over one store; a manager's figures are their
own (SPEC §8 "Access").

Users (``tests/e2e/conftest.py``): ``ada`` admin, ``mia`` and ``max`` managers,
``aud`` auditor, ``svc`` service.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from litestar.testing import TestClient

from adapters.read_models.audit import AuditReadModel
from api.bootstrap import bootstrap
from api.http.app import create_app
from application.clients import (
    ChangeClientDetails,
    RecordContact,
    RecordPurchase,
    RegisterClient,
    ScheduleFollowUp,
)
from application.deals import OpenDeal
from application.settings import Settings
from domain.envelope import Envelope
from tests.conftest import fresh_product, make_settings
from tests.e2e.conftest import Api, admin_envelope, assert_problem, open_api

NAME, PHONE, EMAIL, SUMMARY = "Ann Secret", "+49301112233", "ann@secret.example", "owes us"
CLIENT_PERSONAL = ["address", "attributes", "channel", "company", "emails", "name", "phones"]
CARD_PERSONAL = ["address", "attributes", "channel", "company", "emails", "name", "phones"]


def _personal_history(api: Api, owner: str = "mia") -> UUID:
    """A client of ``owner`` with personal values in every kind of event."""
    app, by = api.crm.app, admin_envelope()
    client = app.execute(
        RegisterClient(
            name=NAME,
            phones=(PHONE,),
            emails=(EMAIL,),
            address="1 Hidden Way",
            attributes={"vip": "yes"},
            owner_id=owner,
        ),
        by,
    ).id
    app.execute(
        RecordContact(client_id=client, channel="call", direction="outbound", summary=SUMMARY),
        by,
    )
    app.execute(ChangeClientDetails(client_id=client, changes={"name": "Ann Hidden"}), by)
    app.execute(
        RecordPurchase(client_id=client, amount=Decimal(100), cost=Decimal(60), currency="EUR"),
        by,
    )
    api.catch_up()
    return client


def _exports(api: Api) -> list[dict[str, Any]]:
    """The recorded exports, read beside the API."""
    api.catch_up()
    trail = api.crm.model(AuditReadModel).page(limit=500).entries
    return [asdict(e) for e in trail if e.event_type == "DataExported"]


def _leaks(response: Any) -> list[str]:
    return [
        value for value in (NAME, PHONE, EMAIL, SUMMARY, "Ann Hidden") if value in response.text
    ]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    store: str = request.param
    return store


@pytest.fixture
def limited(backend: str, tmp_path: Path) -> Iterator[Api]:
    """The app on each store, with at most three exports and bulk reads an hour."""
    with (
        fresh_product(backend, tmp_path, embedded_projector=False, export_rate_per_hour=3) as crm,
        open_api(crm) as api,
    ):
        yield api


# ------------------------------------------------------------------ the feed


def test_the_feed_carries_no_personal_field_to_a_service(limited: Api) -> None:
    _personal_history(limited)
    head = limited.head()

    response = limited.http.get("/events", headers=limited.auth("service"))

    assert response.status_code == 200, response.text
    assert _leaks(response) == []
    by_type = {item["event_type"]: item for item in response.json()["items"]}
    registered = by_type["ClientRegistered"]
    assert registered["redacted"] == CLIENT_PERSONAL
    assert not set(CLIENT_PERSONAL) & registered["payload"].keys()
    assert registered["payload"]["owner_id"] == "mia"  # what is not personal stays
    assert by_type["ContactMade"]["redacted"] == ["outcome", "summary"]
    assert by_type["ClientDetailsChanged"]["redacted"] == ["new", "old"]
    assert by_type["ClientDetailsChanged"]["payload"]["fields"] == ["name"]
    assert by_type["PurchaseMade"]["redacted"] == []
    assert by_type["PurchaseMade"]["payload"]["amount"] == "100"
    assert limited.head() == head, "a page without personal values is not recorded"


def test_each_page_of_the_feed_with_personal_values_is_recorded(limited: Api) -> None:
    _personal_history(limited)
    before = limited.head()

    first = limited.http.get("/events", params={"limit": 2}, headers=limited.auth("auditor"))
    assert first.status_code == 200, first.text
    assert NAME in first.text
    assert all(item["redacted"] == [] for item in first.json()["items"])
    after = first.json()["next_after"]
    second = limited.http.get(
        "/events", params={"after": after, "limit": 2}, headers=limited.auth("auditor")
    )
    assert SUMMARY in second.text

    recorded = _exports(limited)
    assert [(e["actor_id"], e["actor_role"]) for e in recorded] == [("aud", "auditor")] * 2
    details = [e["details"] for e in recorded]
    assert '"kind":"events"' in details[0]
    assert '"filters":{"after":"0","limit":"2"}' in details[0]
    assert f'"up_to_position":{after}' in details[0]
    assert f'"filters":{{"after":"{after}","limit":"2"}}' in details[1]
    assert limited.head() == before + 2


def test_a_feed_page_of_no_personal_values_is_not_counted(limited: Api) -> None:
    # The store begins with the default pipeline's definition: nothing personal.
    for _ in range(5):
        page = limited.http.get("/events", params={"limit": 1}, headers=limited.auth("auditor"))
        assert page.status_code == 200
    assert _exports(limited) == []


def test_over_the_limit_an_auditor_gets_429_on_feed_and_directory_pages(limited: Api) -> None:
    _personal_history(limited)
    auditor = limited.auth("auditor")
    assert limited.http.get("/audit", params={"format": "csv"}, headers=auditor).status_code == 200
    assert limited.http.get("/events", headers=auditor).status_code == 200
    assert limited.http.get("/clients", headers=auditor).status_code == 200
    head = limited.head()

    for url, params in (
        ("/audit", {"format": "csv"}),
        ("/events", {"limit": 1000}),
        ("/clients", {"limit": 500}),
        ("/audit", {"limit": 500}),
    ):
        refused = limited.http.get(url, params=params, headers=auditor)
        assert_problem(refused, 429)
        assert 0 < int(refused.headers["retry-after"]) <= 3600

    assert limited.head() == head, "a refused read was recorded"
    # The limit is the auditor's: a service, reading no personal value, is not counted.
    assert limited.http.get("/events", headers=limited.auth("service")).status_code == 200


# ------------------------------------------------------------ other bulk reads


def test_directory_pages_withhold_personal_values_from_a_service(api: Api) -> None:
    _personal_history(api)
    head = api.head()

    response = api.http.get("/clients", headers=api.auth("service"))

    assert response.status_code == 200
    assert _leaks(response) == []
    (card,) = response.json()["items"]
    assert card["redacted"] == CARD_PERSONAL
    assert (card["owner_id"], card["purchases_count"], card["revenue"]) == ("mia", 1, "100")
    assert api.head() == head
    assert_problem(api.http.get("/clients", params={"q": "ann"}, headers=api.auth("service")), 403)


def test_a_managers_directory_page_is_recorded_but_their_card_is_not(api: Api) -> None:
    client = _personal_history(api)

    card = api.http.get(f"/clients/{client}", headers=api.auth("mia"))
    lookup = api.http.get("/clients/lookup", params={"phone": PHONE}, headers=api.auth("mia"))
    assert card.json()["name"] == lookup.json()["name"] == "Ann Hidden"
    assert card.json()["redacted"] == []
    assert _exports(api) == []

    page = api.http.get("/clients", headers=api.auth("mia"))
    assert page.json()["items"][0]["phones"] == [PHONE]
    (recorded,) = _exports(api)
    assert (recorded["actor_id"], recorded["actor_role"]) == ("mia", "manager")
    assert '"kind":"clients"' in recorded["details"]
    assert '"visible_to":"mia"' in recorded["details"]


def test_cards_and_deals_withhold_personal_values_from_a_service(api: Api) -> None:
    client = _personal_history(api)
    deal = api.crm.app.execute(
        OpenDeal(client_id=client, title="Secret windows", amount=Decimal(9), currency="EUR"),
        admin_envelope(),
    ).id
    api.catch_up()
    service = api.auth("service")

    card = api.http.get(f"/clients/{client}", headers=service)
    lookup = api.http.get("/clients/lookup", params={"phone": PHONE}, headers=service)
    deal_card = api.http.get(f"/deals/{deal}", headers=service)

    for response in (card, lookup):
        assert response.status_code == 200
        assert _leaks(response) == []
        assert response.json()["redacted"] == CARD_PERSONAL
    assert "Secret windows" not in deal_card.text
    assert deal_card.json()["redacted"] == ["title"]
    assert deal_card.json()["amount"] == "9"


def test_audit_pages_withhold_personal_values_from_a_service(api: Api) -> None:
    client = _personal_history(api)
    head = api.head()

    response = api.http.get("/audit", params={"client_id": str(client)}, headers=api.auth("svc"))

    assert response.status_code == 200, response.text
    assert _leaks(response) == []
    entries = response.json()["items"]
    renamed = next(e for e in entries if e["event_type"] == "ClientDetailsChanged")
    assert renamed["field"] == "name"
    assert "old_value" not in renamed
    assert "new_value" not in renamed
    assert renamed["withheld"] == ["old_value", "new_value"]
    contact = next(e for e in entries if e["event_type"] == "ContactMade")
    assert contact["withheld"] == ["details.outcome", "details.summary"]
    assert '"channel":"call"' in contact["details"]
    bought = next(e for e in entries if e["event_type"] == "PurchaseMade")
    assert bought["withheld"] == []
    assert api.head() == head


def test_an_auditors_audit_page_is_recorded_with_the_positions_it_covers(api: Api) -> None:
    client = _personal_history(api)

    page = api.http.get("/audit", params={"client_id": str(client)}, headers=api.auth("aud"))

    assert "Ann Hidden" in page.text
    (recorded,) = _exports(api)
    last = page.json()["items"][-1]["position"]
    assert '"kind":"audit"' in recorded["details"]
    assert f'"client_id":"{client}"' in recorded["details"]
    assert f'"up_to_position":{last}' in recorded["details"]


def test_a_history_is_withheld_from_a_service_and_recorded_for_an_auditor(api: Api) -> None:
    client = _personal_history(api)

    withheld = api.http.get(f"/clients/{client}/history", headers=api.auth("service"))
    assert withheld.status_code == 200
    assert _leaks(withheld) == []
    assert withheld.json()["items"][0]["redacted"] == CLIENT_PERSONAL
    assert _exports(api) == []

    shown = api.http.get(f"/clients/{client}/history", headers=api.auth("auditor"))
    assert NAME in shown.text
    (recorded,) = _exports(api)
    assert (recorded["actor_id"], recorded["client_id"]) == ("aud", client)
    assert '"kind":"history"' in recorded["details"]


# ------------------------------------------------------------ shared limits


@pytest.fixture
def one_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    overrides: dict[str, object] = {"embedded_projector": False, "export_rate_per_hour": 3}
    if backend == "postgresql":
        overrides["database_schema"] = request.getfixturevalue("postgres_schema")
    return make_settings(backend, tmp_path, **overrides)


def test_two_app_instances_share_the_limit_and_a_restart_keeps_it(one_store: Settings) -> None:
    def csv(http: TestClient[Any], token: str) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        return http.get("/audit", params={"format": "csv"}, headers=headers).status_code

    with bootstrap(one_store) as first, bootstrap(one_store) as second:
        token = first.users.add("aud", "auditor")
        with (
            TestClient(create_app(first), raise_server_exceptions=False) as a,
            TestClient(create_app(second), raise_server_exceptions=False) as b,
        ):
            assert [csv(http, token) for http in (a, b, a, b, a)] == [200, 200, 200, 429, 429]
    with (
        bootstrap(one_store) as restarted,
        TestClient(create_app(restarted), raise_server_exceptions=False) as c,
    ):
        assert csv(c, token) == 429


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
    assert [row["assignee_id"] for row in _get(api, "mia", "/work-queue")["items"]] == ["mia"]
    assert [row["actor_id"] for row in _get(api, "mia", "/activity")["items"]] == ["mia"]


def test_auditors_and_services_read_everyones_work_queue_and_activity(two_books: Api) -> None:
    for role in ("auditor", "service"):
        queue = _get(two_books, role, "/work-queue")["items"]
        assert sorted(row["assignee_id"] for row in queue) == ["max", "mia"], role
        activity = _get(two_books, role, "/activity")["items"]
        assert sorted(row["actor_id"] for row in activity) == ["max", "mia"], role
        assert _get(two_books, role, "/audit")["items"], role
