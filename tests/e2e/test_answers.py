"""Answers a new user expects (issue 26): what came back when the API was tried as a
newcomer would try it, each finding with the answer it gives now."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import orjson
import pytest

from tests.conftest import fresh_product
from tests.e2e.conftest import Api, assert_problem, open_api


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/lifecycle", "as_of"),
        ("/kpis", "as_of"),
        ("/funnel", "as_of"),
        ("/clients", "as_of"),
        ("/audit", "from"),
        ("/audit", "to"),
        ("/activity", "until"),
    ],
)
def test_a_date_where_an_instant_is_expected_means_its_midnight_utc(
    api: Api, path: str, parameter: str
) -> None:
    api.catch_up()  # the default pipeline's definition reaches the funnel
    response = api.http.get(path, params={parameter: "2026-03-01"}, headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    if parameter == "as_of" and path != "/clients":
        assert response.json()["as_of"] == "2026-03-01T00:00:00Z"


def test_an_instant_with_an_offset_is_answered_in_utc(api: Api) -> None:
    response = api.http.get(
        "/lifecycle", params={"as_of": "2026-03-01T11:30:00+02:00"}, headers=api.auth("admin")
    )
    assert response.json()["as_of"] == "2026-03-01T09:30:00Z"


def test_a_bad_instant_is_refused_naming_the_parameter_as_the_client_sent_it(api: Api) -> None:
    response = api.http.get("/audit", params={"from": "last week"}, headers=api.auth("admin"))
    body = assert_problem(response, 422)
    (error,) = body["errors"]
    assert (error["field"], error["source"]) == ("from", "query")
    assert "ISO 8601" in error["message"]


def test_the_funnel_of_an_unknown_pipeline_is_a_404_naming_it(api: Api) -> None:
    admin = api.auth("admin")
    defined = api.http.post(
        "/pipelines", json={"name": "Fitting", "stages": ["measure", "fit"]}, headers=admin
    )
    assert defined.status_code == 201, defined.text
    api.catch_up()
    body = assert_problem(api.http.get("/funnel", params={"pipeline": "nope"}, headers=admin), 404)
    assert "'nope'" in body["detail"]
    for known in ("default", "fitting", defined.json()["id"]):
        response = api.http.get("/funnel", params={"pipeline": known}, headers=admin)
        assert response.status_code == 200, (known, response.text)
    stages = api.http.get("/funnel", params={"pipeline": "Fitting"}, headers=admin).json()["stages"]
    assert [stage["stage"] for stage in stages] == ["measure", "fit"]


# ------------------------------------------------------------- telephony lookup


def _register(api: Api, phone: str) -> str:
    response = api.http.post(
        "/clients", json={"name": "Olena", "phones": [phone]}, headers=api.auth("admin")
    )
    assert response.status_code == 201, response.text
    api.catch_up()
    return str(response.json()["id"])


def test_a_national_number_without_a_default_country_says_what_it_lacks(api: Api) -> None:
    _register(api, "+380671112233")
    response = api.http.get(
        "/clients/lookup", params={"phone": "0671112233"}, headers=api.auth("admin")
    )
    detail = assert_problem(response, 404)["detail"]
    assert "'0671112233' has no country code" in detail
    assert "CRM_DEFAULT_COUNTRY" in detail


def test_an_unencoded_plus_is_read_as_a_plus_and_the_answer_says_so(api: Api) -> None:
    client = _register(api, "+380671112233")
    admin = api.auth("admin")
    found = api.http.get("/clients/lookup?phone=+380671112233", headers=admin)
    assert found.status_code == 200, found.text
    assert found.json()["id"] == client
    unknown = api.http.get("/clients/lookup?phone=+380671112244", headers=admin)
    missing = assert_problem(unknown, 404)
    assert missing["looked_up"] == "+380671112244"
    assert "%2B" in missing["detail"]


def test_an_unknown_email_is_named_as_it_was_looked_up(api: Api) -> None:
    response = api.http.get(
        "/clients/lookup", params={"email": " Nobody@Example.COM"}, headers=api.auth("admin")
    )
    body = assert_problem(response, 404)
    assert body["looked_up"] == "nobody@example.com"
    assert "no client holds the email nobody@example.com" in body["detail"]


@pytest.fixture
def ukrainian(tmp_path: Path) -> Iterator[Api]:
    """The API of a business whose national numbers are Ukrainian."""
    with (
        fresh_product("sqlite", tmp_path, embedded_projector=False, default_country="UA") as crm,
        open_api(crm) as api,
    ):
        yield api


def test_a_national_number_is_found_once_the_default_country_is_set(ukrainian: Api) -> None:
    client = _register(ukrainian, "067 111 22 33")
    admin = ukrainian.auth("admin")
    for spelling in ("0671112233", "067 111-22-33", "+380671112233"):
        found = ukrainian.http.get("/clients/lookup", params={"phone": spelling}, headers=admin)
        assert found.status_code == 200, (spelling, found.text)
        assert found.json()["id"] == client
    response = ukrainian.http.get("/clients/lookup", params={"phone": "0671112244"}, headers=admin)
    body = assert_problem(response, 404)
    assert body["looked_up"] == "+380671112244"
    assert "as a national number of UA" in body["detail"]


# ------------------------------------------------------------------ audit filters


def test_the_audit_trail_filters_by_source_and_correlation_id(api: Api) -> None:
    admin = api.auth("admin")
    registered = api.http.post(
        "/clients", json={"name": "Ann"}, headers=api.auth("admin", **{"X-Correlation-ID": "req-9"})
    )
    assert registered.status_code == 201, registered.text
    api.catch_up()

    def entries(**filters: str) -> set[tuple[int, str, str]]:
        response = api.http.get("/audit", params=filters, headers=admin)
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        return {(item["position"], item["source"], item["correlation_id"]) for item in items}

    written = entries(correlation_id="req-9")
    assert max(position for position, _, _ in written) == registered.json()["position"]
    assert {(source, request) for _, source, request in written} == {("api", "req-9")}
    assert entries(correlation_id="req-9", source="api") == written
    assert entries(correlation_id="req-9", source="import") == set()
    assert {source for _, source, _ in entries(source="system")} == {"system"}
    exported = api.http.get(
        "/audit", params={"correlation_id": "req-9", "format": "jsonl"}, headers=admin
    )
    assert {orjson.loads(line)["correlation_id"] for line in exported.text.splitlines()} == {
        "req-9"
    }
    unknown = assert_problem(api.http.get("/audit", params={"source": "fax"}, headers=admin), 422)
    assert unknown["errors"][0]["field"] == "source"


# ------------------------------------------------------------------------- pages


def _walk(api: Api, path: str, **params: object) -> list[list[dict[str, Any]]]:
    """Every page of a paged read, two items at a time."""
    pages, cursor = [], None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.http.get(path, params=query, headers=api.auth("admin"))
        assert response.status_code == 200, response.text
        pages.append(response.json()["items"])
        cursor = response.json()["next_cursor"]
        if cursor is None:
            return pages


def test_the_work_queue_activity_and_a_history_come_in_cursor_pages(api: Api) -> None:
    admin = api.auth("admin")
    client = api.http.post("/clients", json={"name": "Ann"}, headers=admin).json()["id"]
    soon = datetime.now(UTC) + timedelta(hours=1)
    for hours in (5, 1, 3, 2, 4):
        due = (soon + timedelta(hours=hours)).isoformat()
        answer = api.http.post(f"/clients/{client}/follow-ups", json={"due_at": due}, headers=admin)
        assert answer.status_code == 201, answer.text
    contact = {"channel": "call", "direction": "outbound"}
    for user in ("mia", "max", "ada"):  # each on a client of their own
        own = api.http.post("/clients", json={"name": user, "owner_id": user}, headers=admin)
        called = api.http.post(
            f"/clients/{own.json()['id']}/contacts", json=contact, headers=api.auth(user)
        )
        assert called.status_code == 200, called.text
    api.catch_up()

    queue = _walk(api, "/work-queue", within_hours=24)
    assert [len(page) for page in queue] == [2, 2, 1]
    dues = [item["due_at"] for page in queue for item in page]
    assert dues == sorted(dues)

    activity = _walk(api, "/activity")
    assert [[item["actor_id"] for item in page] for page in activity] == [["ada", "max"], ["mia"]]

    history = _walk(api, f"/clients/{client}/history")
    versions = [event["version"] for page in history for event in page]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) >= 1 + 5  # registered, five follow-ups


@pytest.mark.parametrize("path", ["/work-queue", "/activity", "/clients/{client}/history"])
def test_a_cursor_no_page_made_is_a_400(api: Api, path: str) -> None:
    client = api.http.post("/clients", json={"name": "Ann"}, headers=api.auth("admin")).json()
    url = path.format(client=client["id"])
    response = api.http.get(url, params={"cursor": "not/a+cursor"}, headers=api.auth("admin"))
    assert "malformed cursor" in assert_problem(response, 400)["detail"]


# ----------------------------------------------------------------- future as_of


def test_an_answer_as_of_a_future_instant_is_marked_as_a_projection(api: Api) -> None:
    admin = api.auth("admin")
    client = api.http.post("/clients", json={"name": "Ann"}, headers=admin).json()["id"]
    bought = api.http.post(f"/clients/{client}/purchases", json={"amount": "10"}, headers=admin)
    assert bought.status_code == 200, bought.text
    api.catch_up()
    later = (datetime.now(UTC) + timedelta(days=200)).date().isoformat()

    def answer(path: str, **params: str) -> dict[str, Any]:
        response = api.http.get(path, params=params, headers=admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    now, then = answer("/lifecycle"), answer("/lifecycle", as_of=later)
    assert (now["projected"], now["counts"]["new"], now["counts"]["dead"]) == (False, 1, 0)
    # no purchase for more than dormancy_days by then: dead, if nothing happens
    assert (then["projected"], then["counts"]["new"], then["counts"]["dead"]) == (True, 0, 1)
    for path in ("/kpis", "/funnel", "/clients"):
        assert answer(path)["projected"] is False, path
        assert answer(path, as_of="2020-01-01")["projected"] is False, path
        assert answer(path, as_of=later)["projected"] is True, path
    assert answer("/clients", as_of=later)["items"][0]["stage"] == "dead"


# ---------------------------------------------------------- what the document says


@pytest.mark.parametrize(
    ("path", "params"),
    [("/clients", {"format": "csv"}), ("/audit", {"format": "csv"})],
)
def test_a_csv_export_names_its_charset_once(api: Api, path: str, params: dict[str, str]) -> None:
    response = api.http.get(path, params=params, headers=api.auth("admin"))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"


def test_a_merge_honours_if_match_as_every_change_of_a_named_record_does(api: Api) -> None:
    admin = api.auth("admin")
    survivor = api.http.post("/clients", json={"name": "Ann"}, headers=admin).json()
    duplicate = api.http.post("/clients", json={"name": "Ann L."}, headers=admin).json()
    merge = {"duplicate_id": duplicate["id"]}
    stale = api.auth("admin", **{"If-Match": f'"{survivor["version"] - 1}"'})
    before = api.head()
    refused = api.http.post(f"/clients/{survivor['id']}/merge", json=merge, headers=stale)
    assert assert_problem(refused, 412)["current_version"] == survivor["version"]
    assert api.head() == before
    current = api.auth("admin", **{"If-Match": f'"{survivor["version"]}"'})
    merged = api.http.post(f"/clients/{survivor['id']}/merge", json=merge, headers=current)
    assert merged.status_code == 200, merged.text


def test_options_on_every_route_answers_its_allowed_methods(api: Api) -> None:
    """Found by the contract run: OPTIONS on a route whose guard is set on its
    controller (``/subscriptions``) was a 500."""
    for route in api.http.app.routes:
        if route.path_format.startswith(("/schema", "/ui")):
            continue
        path = re.sub(r"\{\w+\}", str(uuid4()), route.path_format)
        response = api.http.options(path)
        assert response.status_code == 204, (path, response.text)
        assert "OPTIONS" in response.headers["allow"], path
