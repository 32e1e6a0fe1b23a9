"""Who may call what (SPEC §6 roles, §8 permissions; ``application/access.py``): every
route of the app against every role, and a manager's view limited to their own
records.

Each route's row says the permission it needs and its answer when allowed; what each
role gets follows from ``ROLE_PERMISSIONS`` (403 without the permission). The rows
are written by hand: the route's own guard must declare the same permission, a
route added to the app without a row fails ``test_every_route_of_the_app_has_a_row``
and one without a declared permission fails
``test_every_route_but_the_public_ones_declares_one_permission``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from litestar.handlers import HTTPRouteHandler
from litestar.routes import HTTPRoute

from api.bootstrap import Crm
from api.http.auth import PUBLIC_PATHS, Requires
from api.push import create_subscription
from application.access import ROLE_PERMISSIONS, Permission
from application.clients import RegisterClient, ScheduleFollowUp
from application.deals import LoseDeal, OpenDeal
from application.subscriptions import PauseSubscription
from tests.e2e.conftest import Api, admin_envelope, assert_problem, open_api

ROLES: tuple[str | None, ...] = ("admin", "manager", "auditor", "service", None)
P = Permission

# The permission each route needs and its status when allowed; None: public (no
# token needed). A query variant may need more than its route (an export file).
# fmt: off
MATRIX: list[tuple[str, str, int, Permission | None]] = [
    # method  route                                                ok   needs
    ("POST",  "/clients",                                           201, P.WRITE_OWN),
    ("GET",   "/clients",                                           200, P.READ_MODELS),
    ("GET",   "/clients?format=csv",                                200, P.EXPORT),
    ("GET",   "/clients/lookup",                                    200, P.READ_MODELS),
    ("GET",   "/clients/{client_id}",                               200, P.READ_MODELS),
    ("PATCH", "/clients/{client_id}",                               200, P.WRITE_OWN),
    ("GET",   "/clients/{client_id}/lifecycle",                     200, P.READ_MODELS),
    ("GET",   "/clients/{client_id}/history",                       200, P.READ_MODELS),
    ("GET",   "/clients/{client_id}/export",                        200, P.EXPORT),
    ("POST",  "/clients/{client_id}/contacts",                      200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/purchases",                     200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/loss",                          200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/owner",                         200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/follow-ups",                    201, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/follow-ups/{task_id}/complete", 200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/follow-ups/{task_id}/cancel",   200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/merge",                         200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/consents",                      200, P.WRITE_OWN),
    ("POST",  "/clients/{client_id}/erasure",                       200, P.ADMIN),
    ("POST",  "/clients/{client_id}/restriction",                   200, P.ADMIN),
    ("POST",  "/deals",                                             201, P.WRITE_OWN),
    ("GET",   "/deals/{deal_id}",                                   200, P.READ_MODELS),
    ("POST",  "/deals/{deal_id}/stage",                             200, P.WRITE_OWN),
    ("POST",  "/deals/{deal_id}/win",                               200, P.WRITE_OWN),
    ("POST",  "/deals/{deal_id}/lose",                              200, P.WRITE_OWN),
    ("POST",  "/deals/{deal_id}/reopen",                            200, P.WRITE_OWN),
    ("POST",  "/pipelines",                                         201, P.ADMIN),
    ("POST",  "/imports",                                           200, P.ADMIN),
    ("GET",   "/pipelines",                                         200, P.READ_MODELS),
    ("GET",   "/lifecycle",                                         200, P.READ_MODELS),
    ("GET",   "/funnel",                                            200, P.READ_MODELS),
    ("GET",   "/kpis",                                              200, P.READ_MODELS),
    ("GET",   "/audit",                                             200, P.AUDIT),
    ("GET",   "/audit?format=csv",                                  200, P.EXPORT),
    ("GET",   "/audit?format=jsonl",                                200, P.EXPORT),
    ("GET",   "/events",                                            200, P.AUDIT),
    ("GET",   "/work-queue",                                        200, P.READ_MODELS),
    ("GET",   "/activity",                                          200, P.READ_MODELS),
    ("POST",  "/subscriptions",                                     201, P.ADMIN),
    ("GET",   "/subscriptions",                                     200, P.ADMIN),
    ("GET",   "/subscriptions/{subscription_id}",                   200, P.ADMIN),
    ("DELETE", "/subscriptions/{subscription_id}",                  200, P.ADMIN),
    ("POST",  "/subscriptions/{subscription_id}/pause",             200, P.ADMIN),
    ("POST",  "/subscriptions/{subscription_id}/resume",            200, P.ADMIN),
    ("POST",  "/subscriptions/{subscription_id}/replay",            200, P.ADMIN),
    ("GET",   "/health",                                            200, None),
    ("GET",   "/health/live",                                       200, None),
    ("GET",   "/health/ready",                                      200, None),
    ("GET",   "/metrics",                                           200, P.AUDIT),
    ("GET",   "/schema",                                            200, None),
    ("GET",   "/schema/openapi.json",                               200, None),
    ("GET",   "/schema/swagger",                                    200, None),
    ("GET",   "/schema/{path}",                                     404, None),
]
# fmt: on


def expected_status(role: str | None, ok: int, needs: Permission | None) -> int:
    """What ``role`` gets from a route that needs ``needs``: the table decides."""
    if needs is None:
        return ok
    if role is None:
        return 401
    return ok if needs in ROLE_PERMISSIONS[role] else 403


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
        self.phone = f"+44207{next(_serial):07d}"
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

    def subscription(self, *, paused: bool = False) -> None:
        created = create_subscription(
            self.api.crm, admin_envelope(), url="http://127.0.0.1:9/hook", events=["*"]
        )
        if paused:  # so that resuming records something
            self.api.crm.app.execute(
                PauseSubscription(subscription_id=created.result.id), admin_envelope()
            )
        self.ids["subscription_id"] = str(created.result.id)

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
    elif route.startswith("/subscriptions/{subscription_id}"):
        target.subscription(paused=route.endswith("/resume"))
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
            body = {"reason": "subject_request"}
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
        case ("POST", "/subscriptions"):
            body = {"url": "http://127.0.0.1:9/hook", "events": ["Client.*"]}
        case ("POST", "/subscriptions/{subscription_id}/replay"):
            body = {"from_position": 1}
        case ("POST", "/pipelines"):
            body = {"name": f"fitter-{next(_serial)}", "stages": ["lead", "measurement"]}
    url = route.format(path="no-such-page", **target.ids)
    return url, body, params


Row = tuple[str, str, int, Permission | None]


@pytest.mark.parametrize("row", MATRIX, ids=[f"{method} {route}" for method, route, *_ in MATRIX])
def test_each_role_gets_the_status_its_permissions_give_it(api: Api, row: Row) -> None:
    method, address, ok, needs = row
    route, _, query = address.partition("?")
    wrong = []
    for role in ROLES:
        expected = expected_status(role, ok, needs)
        url, body, params = _request(api, method, route)
        if query:
            params.update(dict([query.split("=")]))
        api.catch_up()
        before = api.head()
        request: dict[str, Any] = {"json": body, "headers": api.auth(role)}
        if route == "/imports":  # the body is a spreadsheet
            request = {
                "content": f"name\nImported Client {next(_serial)}\n".encode(),
                "headers": api.auth(role, **{"Content-Type": "text/csv"}),
            }
        response = api.http.request(method, url, params=params, **request)
        if response.status_code != expected:
            wrong.append(f"{role}: expected {expected}, got {response.status_code} {response.text}")
            continue
        if expected >= 400 and not route.startswith("/schema"):  # litestar's docs pages
            assert_problem(response, expected)
        if expected == 403:  # one wording, naming a permission the role lacks
            said = re.fullmatch(
                rf"the {role} role does not have the (\w+) permission", response.json()["detail"]
            )
            assert said is not None, response.json()["detail"]
            assert role is not None
            assert Permission(said[1]) not in ROLE_PERMISSIONS[role]
        if expected in (401, 403):
            assert api.head() == before, f"{role}: a refused request recorded events"
        if expected < 300 and method != "GET":
            assert api.head() > before, f"{role}: the write recorded nothing"
        if expected == 401:
            assert response.headers["www-authenticate"].lower().startswith("bearer")
    assert not wrong, "\n".join(wrong)


def _handlers(api: Api) -> Iterator[tuple[str, str, HTTPRouteHandler]]:
    """(method, path, handler) of every route of the API (the console's pages, under
    ``/ui``, have a matrix of their own in ``test_console.py``)."""
    for route in api.http.app.routes:
        if not isinstance(route, HTTPRoute) or route.path_format.startswith("/ui"):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                if method not in ("OPTIONS", "HEAD"):
                    yield method, route.path_format, handler


def _public(path: str) -> bool:
    return any(re.match(pattern, path) for pattern in PUBLIC_PATHS)


def test_every_route_of_the_app_has_a_row(api: Api) -> None:
    registered = {(method, path) for method, path, _ in _handlers(api)}
    in_matrix = {(method, address.partition("?")[0]) for method, address, *_ in MATRIX}
    assert registered - in_matrix == set(), "routes without a row in the role matrix"
    assert in_matrix - registered == set(), "rows for routes the app does not have"


def test_every_route_but_the_public_ones_declares_one_permission(api: Api) -> None:
    declared: dict[tuple[str, str], Permission | None] = {}
    for method, path, handler in _handlers(api):
        guards = [guard for guard in handler.resolve_guards() if isinstance(guard, Requires)]
        assert len(guards) == (0 if _public(path) else 1), (method, path, handler.guards)
        declared[method, path] = guards[0].permission if guards else None
    for method, address, _, needs in MATRIX:
        if "?" not in address:  # a query variant needs more than its route declares
            assert declared[method, address] == needs, (method, address)


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
    lead = _register(product, "Unassigned Lead", None, "+442071000001")
    with open_api(product) as api:
        mine = _register(product, "Mine", "mia", "+442071000002")
        theirs = _register(product, "Theirs", "max", "+442071000003")
        task = product.app.execute(
            ScheduleFollowUp(client_id=UUID(theirs), due_at=datetime.now(UTC) + timedelta(days=1)),
            admin_envelope(),
        ).extra["task_id"]
        filled = Book(
            api=api,
            lead=lead,
            mine=mine,
            theirs=theirs,
            admins=_register(product, "Admins", "ada", "+442071000004"),
            my_deal=_open_deal(product, mine),
            their_deal=_open_deal(product, theirs),
            their_task=task,
            their_phone="+442071000003",
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
        ("POST", f"{theirs}/erasure", {"reason": "subject_request"}, 403),
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


def test_the_leads_a_manager_registers_are_theirs(book: Book) -> None:
    owners = []
    for name in ("Walk-in", "Caller"):  # not shared out in turn with the other manager
        written = book.api.http.post("/clients", json={"name": name}, headers=book.api.auth("mia"))
        assert written.status_code == 201, written.text
        book.api.catch_up()
        card = book.api.http.get(f"/clients/{written.json()['id']}", headers=book.api.auth("mia"))
        assert card.status_code == 200, card.text
        owners.append(card.json()["owner_id"])
    assert owners == ["mia", "mia"]


def test_a_manager_may_work_on_an_unassigned_lead(book: Book) -> None:
    response = book.api.http.post(
        f"/clients/{book.lead}/contacts",
        json={"channel": "call", "direction": "outbound"},
        headers=book.api.auth("mia"),
    )
    assert response.status_code == 200, response.text
