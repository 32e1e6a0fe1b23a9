"""Who may call what (SPEC §6 roles, application/access.py): every route of the app
against every role, and a manager's view limited to their own records.

The matrix is written by hand from the spec, not derived from the guards: a route
added to the app without a row here fails ``test_every_route_of_the_app_has_a_row``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from litestar.routes import HTTPRoute

from api.bootstrap import Crm
from application.clients import RegisterClient, ScheduleFollowUp
from application.deals import LoseDeal, OpenDeal
from tests.e2e.conftest import Api, admin_envelope, assert_problem, open_api

ROLES: tuple[str | None, ...] = ("admin", "manager", "auditor", "service", None)

# The expected status of each route for each role. Writes succeed for the admin and
# for a manager acting on their own record; erasure, restriction and new pipelines are
# the admin's; the audit trail, activity and every export need the export permission
# (admin, auditor); the event feed is for admin, auditor and service; the work queue
# for admin and manager; metrics for admin, auditor and service; without a token
# everything but the /health pages and the schema pages is 401.
# fmt: off
MATRIX: list[tuple[str, str, int, int, int, int, int]] = [
    # method  route                                                admin mgr aud  svc  none
    ("POST",  "/clients",                                           201, 201, 403, 403, 401),
    ("GET",   "/clients",                                           200, 200, 200, 200, 401),
    ("GET",   "/clients?format=csv",                                200, 403, 200, 403, 401),
    ("GET",   "/clients/lookup",                                    200, 200, 200, 200, 401),
    ("GET",   "/clients/{client_id}",                               200, 200, 200, 200, 401),
    ("PATCH", "/clients/{client_id}",                               200, 200, 403, 403, 401),
    ("GET",   "/clients/{client_id}/lifecycle",                     200, 200, 200, 200, 401),
    ("GET",   "/clients/{client_id}/history",                       200, 200, 200, 403, 401),
    ("GET",   "/clients/{client_id}/export",                        200, 403, 200, 403, 401),
    ("POST",  "/clients/{client_id}/contacts",                      200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/purchases",                     200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/loss",                          200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/owner",                         200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/follow-ups",                    201, 201, 403, 403, 401),
    ("POST",  "/clients/{client_id}/follow-ups/{task_id}/complete", 200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/follow-ups/{task_id}/cancel",   200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/merge",                         200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/consents",                      200, 200, 403, 403, 401),
    ("POST",  "/clients/{client_id}/erasure",                       200, 403, 403, 403, 401),
    ("POST",  "/clients/{client_id}/restriction",                   200, 403, 403, 403, 401),
    ("POST",  "/deals",                                             201, 201, 403, 403, 401),
    ("GET",   "/deals/{deal_id}",                                   200, 200, 200, 200, 401),
    ("POST",  "/deals/{deal_id}/stage",                             200, 200, 403, 403, 401),
    ("POST",  "/deals/{deal_id}/win",                               200, 200, 403, 403, 401),
    ("POST",  "/deals/{deal_id}/lose",                              200, 200, 403, 403, 401),
    ("POST",  "/deals/{deal_id}/reopen",                            200, 200, 403, 403, 401),
    ("POST",  "/pipelines",                                         201, 403, 403, 403, 401),
    ("GET",   "/pipelines",                                         200, 200, 200, 200, 401),
    ("GET",   "/lifecycle",                                         200, 200, 200, 200, 401),
    ("GET",   "/funnel",                                            200, 200, 200, 200, 401),
    ("GET",   "/kpis",                                              200, 200, 200, 200, 401),
    ("GET",   "/audit",                                             200, 403, 200, 403, 401),
    ("GET",   "/audit?format=csv",                                  200, 403, 200, 403, 401),
    ("GET",   "/audit?format=jsonl",                                200, 403, 200, 403, 401),
    ("GET",   "/events",                                            200, 403, 200, 200, 401),
    ("GET",   "/work-queue",                                        200, 200, 403, 403, 401),
    ("GET",   "/activity",                                          200, 403, 200, 403, 401),
    ("GET",   "/health",                                            200, 200, 200, 200, 200),
    ("GET",   "/health/live",                                       200, 200, 200, 200, 200),
    ("GET",   "/health/ready",                                      200, 200, 200, 200, 200),
    ("GET",   "/metrics",                                           200, 403, 200, 200, 401),
    ("GET",   "/schema",                                            200, 200, 200, 200, 200),
    ("GET",   "/schema/openapi.json",                               200, 200, 200, 200, 200),
    ("GET",   "/schema/swagger",                                    200, 200, 200, 200, 200),
    ("GET",   "/schema/{path}",                                     404, 404, 404, 404, 404),
]
# fmt: on

_serial = itertools.count(1)


def _later() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


@dataclass
class Target:
    """The records one request acts on, made fresh for it (owned by the manager
    ``mia``, so a manager acts on their own record)."""

    api: Api
    ids: dict[str, str] = field(default_factory=dict)
    phone: str = ""

    def client(self) -> UUID:
        self.phone = f"+4420{next(_serial):07d}"
        result = self.api.crm.app.execute(
            RegisterClient(name="Target Client", phones=(self.phone,), owner_id="mia"),
            admin_envelope(),
        )
        self.ids["client_id"] = str(result.id)
        return result.id

    def follow_up(self) -> None:
        result = self.api.crm.app.execute(
            ScheduleFollowUp(client_id=self.client(), due_at=datetime.now(UTC) + timedelta(days=2)),
            admin_envelope(),
        )
        self.ids["task_id"] = result.extra["task_id"]

    def deal(self, *, lost: bool = False) -> None:
        result = self.api.crm.app.execute(
            OpenDeal(client_id=self.client(), title="Windows", amount=Decimal(500), currency="EUR"),
            admin_envelope(),
        )
        if lost:
            self.api.crm.app.execute(LoseDeal(deal_id=result.id, reason="price"), admin_envelope())
        self.ids["deal_id"] = str(result.id)


def _request(
    api: Api, method: str, route: str
) -> tuple[str, dict[str, Any] | None, dict[str, str]]:
    """A valid request for ``route``: its URL, JSON body and query parameters."""
    target = Target(api)
    body: dict[str, Any] | None = None
    params: dict[str, str] = {}
    if "{task_id}" in route:
        target.follow_up()
    elif route.startswith("/deals/{deal_id}"):
        target.deal(lost=route.endswith("/reopen"))
    elif "{client_id}" in route or route in ("/clients/lookup", "/deals"):
        target.client()
    match (method, route.removeprefix("/clients/{client_id}")):
        case ("POST", "/clients"):
            body = {"name": f"Nora Newcomer {next(_serial)}"}
        case ("GET", "/clients/lookup"):
            params = {"phone": target.phone}
        case ("PATCH", ""):
            body = {"name": "Renamed Client"}
        case ("POST", "/contacts"):
            body = {"channel": "call", "direction": "outbound", "summary": "called"}
        case ("POST", "/purchases"):
            body = {"amount": "120.00", "cost": "80.00"}
        case ("POST", "/loss"):
            body = {"reason": "price", "note": "too dear"}
        case ("POST", "/owner"):
            body = {"owner_id": "max"}
        case ("POST", "/follow-ups"):
            body = {"due_at": _later()}
        case ("POST", "/follow-ups/{task_id}/complete" | "/follow-ups/{task_id}/cancel"):
            body = {"note": "done"}
        case ("POST", "/merge"):
            survivor = target.ids["client_id"]
            body = {"duplicate_id": str(target.client())}
            target.ids["client_id"] = survivor
        case ("POST", "/consents"):
            body = {"purpose": "marketing", "given": True}
        case ("POST", "/erasure"):
            body = {"reason": "the subject asked"}
        case ("POST", "/restriction"):
            body = {"restricted": True, "reason": "the subject objected"}
        case ("POST", "/deals"):
            body = {"client_id": target.ids["client_id"], "title": "Door", "amount": "300"}
        case ("POST", "/deals/{deal_id}/stage"):
            body = {"stage": "interest"}
        case ("POST", "/deals/{deal_id}/win" | "/deals/{deal_id}/reopen"):
            body = {}
        case ("POST", "/deals/{deal_id}/lose"):
            body = {"reason": "competitor"}
        case ("POST", "/pipelines"):
            body = {"name": f"fitter-{next(_serial)}", "stages": ["lead", "measurement"]}
    url = route.format(path="no-such-page", **target.ids)
    return url, body, params


Row = tuple[str, str, int, int, int, int, int]


@pytest.mark.parametrize("row", MATRIX, ids=[f"{method} {route}" for method, route, *_ in MATRIX])
def test_each_role_gets_the_status_the_spec_gives_it(api: Api, row: Row) -> None:
    method, address, *statuses = row
    route, _, query = address.partition("?")
    wrong = []
    for role, expected in zip(ROLES, statuses, strict=True):
        url, body, params = _request(api, method, route)
        if query:
            params.update(dict([query.split("=")]))
        api.catch_up()
        before = api.head()
        response = api.http.request(method, url, json=body, params=params, headers=api.auth(role))
        if response.status_code != expected:
            wrong.append(f"{role}: expected {expected}, got {response.status_code} {response.text}")
            continue
        if expected >= 400 and not route.startswith("/schema"):  # litestar's docs pages
            assert_problem(response, expected)
        if expected in (401, 403):
            assert api.head() == before, f"{role}: a refused request recorded events"
        if expected < 300 and method != "GET":
            assert api.head() > before, f"{role}: the write recorded nothing"
        if expected == 401:
            assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert not wrong, "\n".join(wrong)


def test_every_route_of_the_app_has_a_row(api: Api) -> None:
    registered = {
        (method, route.path_format)
        for route in api.http.app.routes
        if isinstance(route, HTTPRoute)
        for method in route.methods
        if method not in ("OPTIONS", "HEAD")
        if not route.path_format.startswith("/ui")  # the console's: test_console.py's matrix
    }
    in_matrix = {(method, address.partition("?")[0]) for method, address, *_ in MATRIX}
    assert registered - in_matrix == set(), "routes without a row in the role matrix"
    assert in_matrix - registered == set(), "rows for routes the app does not have"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer crm_not-a-token",
        "Bearer ",
        "Basic YWRhOnNlY3JldA==",
        "crm_no-scheme",
        "Bearer revoked",
    ],
)
def test_a_missing_unknown_or_revoked_token_is_a_401(api: Api, authorization: str) -> None:
    if authorization == "Bearer revoked":
        authorization = f"Bearer {api.tokens['svc']}"
        assert api.crm.users.revoke("svc")
    response = api.http.get("/kpis", headers={"Authorization": authorization})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].lower().startswith("bearer")


# ------------------------------------------------------------- manager isolation


@dataclass
class Book:
    """Records of two managers (``mia``, ``max``), of the admin, and an unassigned lead,
    served by ``api``."""

    api: Api
    lead: str
    mine: str
    theirs: str
    admins: str
    my_deal: str
    their_deal: str
    their_task: str
    their_phone: str


def _register(crm: Crm, name: str, owner: str | None, phone: str) -> str:
    command = RegisterClient(name=name, owner_id=owner, phones=(phone,))
    return str(crm.app.execute(command, admin_envelope()).id)


def _open_deal(crm: Crm, client_id: str) -> str:
    command = OpenDeal(client_id=UUID(client_id), title="Deal", amount=Decimal(1), currency="EUR")
    return str(crm.app.execute(command, admin_envelope()).id)


@pytest.fixture
def book(product: Crm) -> Iterator[Book]:
    # Registered before any manager exists, so round-robin has nobody to give it to.
    lead = _register(product, "Unassigned Lead", None, "+4420100001")
    with open_api(product) as api:
        mine = _register(product, "Mine", "mia", "+4420100002")
        theirs = _register(product, "Theirs", "max", "+4420100003")
        task = product.app.execute(
            ScheduleFollowUp(client_id=UUID(theirs), due_at=datetime.now(UTC) + timedelta(days=1)),
            admin_envelope(),
        ).extra["task_id"]
        filled = Book(
            api=api,
            lead=lead,
            mine=mine,
            theirs=theirs,
            admins=_register(product, "Admins", "ada", "+4420100004"),
            my_deal=_open_deal(product, mine),
            their_deal=_open_deal(product, theirs),
            their_task=task,
            their_phone="+4420100003",
        )
        api.catch_up()
        yield filled


def test_a_manager_lists_only_their_own_clients_and_unassigned_leads(book: Book) -> None:
    def listed(role: str) -> set[str]:
        response = book.api.http.get("/clients", headers=book.api.auth(role))
        assert response.status_code == 200, response.text
        return {item["id"] for item in response.json()["items"]}

    assert listed("mia") == {book.mine, book.lead}
    assert listed("max") == {book.theirs, book.lead}
    assert listed("admin") == {book.lead, book.mine, book.theirs, book.admins}


def test_a_manager_reads_their_own_clients_and_unassigned_leads(book: Book) -> None:
    for client in (book.mine, book.lead):
        for suffix in ("", "/lifecycle", "/history"):
            response = book.api.http.get(f"/clients/{client}{suffix}", headers=book.api.auth("mia"))
            assert response.status_code == 200, (suffix, response.text)
    response = book.api.http.get(f"/deals/{book.my_deal}", headers=book.api.auth("mia"))
    assert response.status_code == 200


def test_another_managers_records_do_not_exist_for_a_manager(book: Book) -> None:
    reads = [
        f"/clients/{book.theirs}",
        f"/clients/{book.theirs}/lifecycle",
        f"/clients/{book.theirs}/history",
        f"/clients/{book.admins}",
        f"/deals/{book.their_deal}",
    ]
    for url in reads:
        assert_problem(book.api.http.get(url, headers=book.api.auth("mia")), 404)
    lookup = book.api.http.get(
        "/clients/lookup", params={"phone": book.their_phone}, headers=book.api.auth("mia")
    )
    assert_problem(lookup, 404)


def test_every_write_on_another_managers_client_is_a_404_and_records_nothing(book: Book) -> None:
    theirs = f"/clients/{book.theirs}"
    writes: list[tuple[str, str, dict[str, Any], int]] = [
        ("PATCH", theirs, {"name": "Stolen"}, 404),
        ("POST", f"{theirs}/contacts", {"channel": "call", "direction": "outbound"}, 404),
        ("POST", f"{theirs}/purchases", {"amount": "10"}, 404),
        ("POST", f"{theirs}/loss", {"reason": "price"}, 404),
        ("POST", f"{theirs}/owner", {"owner_id": "mia"}, 404),
        ("POST", f"{theirs}/follow-ups", {"due_at": _later()}, 404),
        ("POST", f"{theirs}/follow-ups/{book.their_task}/complete", {}, 404),
        ("POST", f"{theirs}/follow-ups/{book.their_task}/cancel", {}, 404),
        ("POST", f"{theirs}/merge", {"duplicate_id": book.mine}, 404),
        ("POST", f"/clients/{book.mine}/merge", {"duplicate_id": book.theirs}, 404),
        ("POST", f"{theirs}/consents", {"purpose": "marketing", "given": True}, 404),
        ("POST", f"{theirs}/erasure", {"reason": "asked"}, 403),
        ("POST", f"{theirs}/restriction", {"restricted": True, "reason": "asked"}, 403),
        ("POST", "/deals", {"client_id": book.theirs, "title": "Mine now", "amount": "5"}, 404),
        ("POST", f"/deals/{book.their_deal}/stage", {"stage": "interest"}, 404),
        ("POST", f"/deals/{book.their_deal}/win", {}, 404),
        ("POST", f"/deals/{book.their_deal}/lose", {"reason": "price"}, 404),
        ("POST", f"/deals/{book.their_deal}/reopen", {}, 404),
    ]
    before = book.api.head()
    for method, url, body, status in writes:
        response = book.api.http.request(method, url, json=body, headers=book.api.auth("mia"))
        assert_problem(response, status)
        assert book.api.head() == before, f"{method} {url} recorded events"
    assert_problem(book.api.http.get(f"{theirs}/export", headers=book.api.auth("mia")), 403)


def test_a_manager_may_work_on_an_unassigned_lead(book: Book) -> None:
    response = book.api.http.post(
        f"/clients/{book.lead}/contacts",
        json={"channel": "call", "direction": "outbound"},
        headers=book.api.auth("mia"),
    )
    assert response.status_code == 200, response.text
