"""HTTP semantics of SPEC §6: idempotency keys, If-Match, read-your-writes with
``min_position``, correlation ids, cursor pagination, and recorded, rate-limited
exports."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.read_models.audit import AuditReadModel
from api.http import support
from tests.conftest import fresh_product
from tests.e2e.conftest import PROBLEM, Api, assert_problem, open_api


def _register(api: Api, name: str, user: str = "admin", **headers: str) -> Any:
    return api.http.post("/clients", json={"name": name}, headers=api.auth(user, **headers))


# ------------------------------------------------------------------ idempotency


def test_a_retried_write_answers_the_first_answer_and_records_nothing(api: Api) -> None:
    headers = api.auth("admin", **{"Idempotency-Key": "register-ann-1"})
    first = api.http.post("/clients", json={"name": "Ann Retry"}, headers=headers)
    assert first.status_code == 201, first.text
    head = api.head()
    assert first.json()["position"] == head

    again = api.http.post("/clients", json={"name": "Ann Retry"}, headers=headers)

    assert again.status_code == 201
    assert again.json() == first.json()
    assert "replayed" not in again.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert api.head() == head


def test_a_retried_follow_up_answers_the_same_task(api: Api) -> None:
    client = _register(api, "Bob Callback").json()["id"]
    body = {"due_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()}
    headers = api.auth("admin", **{"Idempotency-Key": "call-bob-back"})
    first = api.http.post(f"/clients/{client}/follow-ups", json=body, headers=headers)
    head = api.head()
    again = api.http.post(f"/clients/{client}/follow-ups", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.json()["task_id"] is not None
    assert api.head() == head


def test_the_same_key_with_another_body_is_a_422_that_records_nothing(api: Api) -> None:
    headers = api.auth("admin", **{"Idempotency-Key": "register-once"})
    assert api.http.post("/clients", json={"name": "Cleo"}, headers=headers).status_code == 201
    head = api.head()

    other = api.http.post("/clients", json={"name": "Not Cleo"}, headers=headers)

    assert_problem(other, 422)
    assert api.head() == head


def _at_once(api: Api, copies: int, method: str, url: str, **kwargs: Any) -> list[httpx.Response]:
    """``copies`` copies of one request sent together (the app runs each in a worker
    thread, so they race for real)."""

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=api.http.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            return await asyncio.gather(
                *[http.request(method, url, **kwargs) for _ in range(copies)]
            )

    return asyncio.run(burst())


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_retries_with_one_key_record_once(api: Api, round_: int) -> None:
    client = _register(api, "Dora Doubleclick").json()["id"]
    before = api.head()
    registrations = _at_once(
        api,
        8,
        "POST",
        "/clients",
        json={"name": f"Ed Doubleclick {round_}"},
        headers=api.auth("mia", **{"Idempotency-Key": f"register-{round_}"}),
    )
    contacts = _at_once(
        api,
        8,
        "POST",
        f"/clients/{client}/contacts",
        json={"channel": "call", "direction": "inbound"},
        headers=api.auth("admin", **{"Idempotency-Key": f"contact-{round_}"}),
    )

    for answers, status in ((registrations, 201), (contacts, 200)):
        assert [a.status_code for a in answers] == [status] * 8, [a.text for a in answers]
        assert len({a.text for a in answers}) == 1
    feed = api.http.get("/events", params={"after": before}, headers=api.auth("service")).json()
    types = [e["event_type"] for e in feed["items"]]
    assert types.count("ClientRegistered") == 1
    assert types.count("ContactMade") == 1
    assert max(registrations[0].json()["position"], contacts[0].json()["position"]) == api.head()


# --------------------------------------------------------------------- If-Match


def test_the_etag_of_a_card_is_its_version(api: Api) -> None:
    written = _register(api, "Eve Etag")
    client = written.json()["id"]
    api.catch_up()
    card = api.http.get(f"/clients/{client}", headers=api.auth("admin"))
    assert card.headers["etag"] == f'"{written.json()["version"]}"'
    assert card.headers["etag"] == f'"{card.json()["version"]}"'
    assert written.headers["etag"] == card.headers["etag"]


def test_if_match_with_a_stale_version_is_a_412_that_records_nothing(api: Api) -> None:
    written = _register(api, "Fay Stale").json()
    client, version = written["id"], written["version"]
    moved = api.http.patch(
        f"/clients/{client}", json={"name": "Fay Moved"}, headers=api.auth("admin")
    )
    assert moved.json()["version"] == version + 1
    head = api.head()

    for method, url, body in [
        ("PATCH", f"/clients/{client}", {"name": "Fay Again"}),
        ("POST", f"/clients/{client}/contacts", {"channel": "call", "direction": "inbound"}),
    ]:
        stale = api.http.request(
            method, url, json=body, headers=api.auth("admin", **{"If-Match": f'"{version}"'})
        )
        assert_problem(stale, 412)
    assert api.head() == head


def test_if_match_with_the_current_version_changes_the_card(api: Api) -> None:
    client = _register(api, "Gus Current").json()["id"]
    api.catch_up()
    etag = api.http.get(f"/clients/{client}", headers=api.auth("admin")).headers["etag"]

    changed = api.http.patch(
        f"/clients/{client}",
        json={"name": "Gus Changed"},
        headers=api.auth("admin", **{"If-Match": etag}),
    )

    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == f'"{int(etag.strip(chr(34))) + 1}"'
    api.catch_up()
    card = api.http.get(f"/clients/{client}", headers=api.auth("admin"))
    assert card.json()["name"] == "Gus Changed"
    assert card.headers["etag"] == changed.headers["etag"]


# ------------------------------------------------------------ read-your-writes


@pytest.fixture
def quick_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bounded wait of a read for ``min_position`` (5 s) is shortened: the answer
    after it, not its length, is under test."""
    monkeypatch.setattr(support, "READ_WAIT_SECONDS", 0.3)


@pytest.mark.usefixtures("quick_wait")
def test_a_read_past_the_read_models_is_a_503_with_retry_after(api: Api) -> None:
    api.catch_up()
    written = _register(api, "Hal Behind").json()
    for url in (f"/clients/{written['id']}", "/clients", "/kpis", "/lifecycle"):
        response = api.http.get(
            url, params={"min_position": written["position"]}, headers=api.auth("admin")
        )
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0


@pytest.mark.usefixtures("quick_wait")
def test_a_read_before_any_projector_ran_is_not_a_server_error(api: Api) -> None:
    """A separate ``crm project`` may not have started yet: the API answers that the
    read models are behind (503), not a 500."""
    written = _register(api, "Ida Early").json()
    waiting = api.http.get(
        f"/clients/{written['id']}",
        params={"min_position": written["position"]},
        headers=api.auth("admin"),
    )
    assert_problem(waiting, 503)
    assert "retry-after" in waiting.headers
    plain = api.http.get("/clients", headers=api.auth("admin"))
    assert plain.status_code in (200, 503), plain.text


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Api]:
    """The app with its embedded projector following the store."""
    with fresh_product("sqlite", tmp_path, embedded_projector=True) as crm, open_api(crm) as api:
        yield api


def test_a_read_with_min_position_sees_the_write(live: Api) -> None:
    admin = live.auth("admin")
    for round_ in range(3):
        written = _register(live, f"Jo Fresh {round_}").json()
        at = {"min_position": written["position"]}
        card = live.http.get(f"/clients/{written['id']}", params=at, headers=admin)
        assert card.status_code == 200, card.text
        assert card.json()["name"] == f"Jo Fresh {round_}"
        listed = live.http.get("/clients", params={**at, "q": f"Fresh {round_}"}, headers=admin)
        assert [item["id"] for item in listed.json()["items"]] == [written["id"]]

        deal = live.http.post(
            "/deals",
            json={"client_id": written["id"], "title": "Roof", "amount": "10"},
            headers=admin,
        ).json()
        seen = live.http.get(
            f"/deals/{deal['id']}", params={"min_position": deal["position"]}, headers=admin
        )
        assert seen.status_code == 200, seen.text
        assert seen.json()["title"] == "Roof"


# --------------------------------------------------------------- correlation ids


def test_a_given_correlation_id_is_echoed_and_stamped_on_the_events(api: Api) -> None:
    written = _register(api, "Kim Traced", **{"X-Correlation-ID": "req-42.a"})
    assert written.headers["x-correlation-id"] == "req-42.a"
    client = written.json()["id"]
    contact = api.http.post(
        f"/clients/{client}/contacts",
        json={"channel": "email", "direction": "outbound"},
        headers=api.auth("admin", **{"X-Correlation-ID": "req-43"}),
    )
    assert contact.headers["x-correlation-id"] == "req-43"

    history = api.http.get(
        f"/clients/{client}/history", headers=api.auth("admin", **{"X-Correlation-ID": "req-44"})
    ).json()
    ids = {e["event_type"]: e["correlation_id"] for e in history["items"]}
    assert ids["ClientRegistered"] == "req-42.a"
    assert ids["ContactMade"] == "req-43"
    api.catch_up()
    trail = api.http.get("/audit", params={"client_id": client}, headers=api.auth("admin")).json()
    ids = {e["event_type"]: e["correlation_id"] for e in trail["items"]}
    # reading the history, personal data, is recorded under the reading request's id
    assert ids == {
        "ClientRegistered": "req-42.a",
        "OwnerAssigned": "req-42.a",
        "ContactMade": "req-43",
        "DataExported": "req-44",
    }


@pytest.mark.parametrize(
    ("method", "url", "user", "status"),
    [
        ("POST", "/clients", "admin", 422),  # a validation problem
        ("GET", "/clients", None, 401),
        ("POST", "/pipelines", "auditor", 403),
        ("GET", "/clients/00000000-0000-4000-8000-000000000000", "admin", 404),
        ("GET", "/no-such-route", "admin", 404),
        ("DELETE", "/clients", "admin", 405),
    ],
)
def test_the_correlation_id_is_echoed_on_errors(
    api: Api, method: str, url: str, user: str | None, status: int
) -> None:
    api.catch_up()
    response = api.http.request(
        method, url, json={}, headers=api.auth(user, **{"X-Correlation-ID": "err-7"})
    )
    body = assert_problem(response, status)
    assert response.headers["x-correlation-id"] == "err-7"
    assert body["correlation_id"] == "err-7"


def test_a_correlation_id_is_made_when_none_is_given(api: Api) -> None:
    first = _register(api, "Lea Untraced")
    second = api.http.get("/no-such-route", headers=api.auth("admin"))
    made = [first.headers["x-correlation-id"], second.headers["x-correlation-id"]]
    assert all(made)
    assert made[0] != made[1]
    assert second.json()["correlation_id"] == made[1]
    history = api.http.get(f"/clients/{first.json()['id']}/history", headers=api.auth("admin"))
    assert {e["correlation_id"] for e in history.json()["items"]} == {made[0]}


# ------------------------------------------------------------------- pagination


def _walk(api: Api, path: str, key: Any, **params: Any) -> list[Any]:
    """Every item of a cursor-paginated listing, two at a time."""
    seen: list[Any] = []
    cursor = None
    for _ in range(100):
        page = api.http.get(
            path,
            params={**params, "limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=api.auth("admin"),
        )
        assert page.status_code == 200, page.text
        items = page.json()["items"]
        assert len(items) <= 2
        seen += [key(item) for item in items]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


def test_walking_the_directory_two_at_a_time_meets_every_client_once(api: Api) -> None:
    ids = {_register(api, f"Page Client {n}").json()["id"] for n in range(7)}
    api.catch_up()
    walked = _walk(api, "/clients", lambda item: item["id"])
    assert sorted(walked) == sorted(ids)


def test_the_directory_cursor_is_stable_while_clients_arrive(api: Api) -> None:
    ids = {_register(api, f"Stable Client {n}").json()["id"] for n in range(5)}
    api.catch_up()
    first = api.http.get("/clients", params={"limit": 2}, headers=api.auth("admin")).json()
    _register(api, "Late Arrival")
    api.catch_up()
    rest = _walk(api, "/clients", lambda item: item["id"], cursor=first["next_cursor"])
    walked = [item["id"] for item in first["items"]] + rest
    assert len(walked) == len(set(walked))
    assert set(walked) >= ids


def _entry_key(entry: dict[str, Any]) -> tuple[Any, ...]:
    return (entry["event_id"], entry["position"], entry["seq"], entry.get("field"))


def test_walking_the_audit_trail_two_at_a_time_meets_every_entry_once(api: Api) -> None:
    for n in range(4):
        client = _register(api, f"Audit Client {n}").json()["id"]
        api.http.patch(
            f"/clients/{client}",
            json={"name": f"Audited {n}", "address": "1 Main St"},
            headers=api.auth("admin"),
        )
    api.catch_up()
    everything = api.http.get("/audit", params={"limit": 500}, headers=api.auth("admin")).json()
    assert everything["next_cursor"] is None
    expected = [_entry_key(entry) for entry in everything["items"]]
    assert len(expected) >= 16

    walked = _walk(api, "/audit", _entry_key)

    assert len(walked) == len(set(walked))
    assert sorted(walked) == sorted(expected)


# ---------------------------------------------------------------------- exports


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Api]:
    """The app with at most two bulk exports per user an hour."""
    with (
        fresh_product("sqlite", tmp_path, embedded_projector=False, export_rate_per_hour=2) as crm,
        open_api(crm) as api,
    ):
        yield api


def _exports(api: Api) -> list[dict[str, Any]]:
    """The recorded exports, read beside the API (a read of the trail through it would
    be one more)."""
    api.catch_up()
    trail = api.crm.model(AuditReadModel).page(limit=500).entries
    return [asdict(e) for e in trail if e.event_type == "DataExported"]


@pytest.mark.parametrize(
    ("query", "media"),
    [
        ("/audit?format=csv", "text/csv"),
        ("/audit?format=jsonl", "application/jsonl"),
        ("/clients?format=csv", "text/csv"),
    ],
)
def test_a_bulk_export_is_recorded_with_the_exporter(limited: Api, query: str, media: str) -> None:
    _register(limited, "Max Exported")
    limited.catch_up()
    before = len(_exports(limited))

    response = limited.http.get(query, headers=limited.auth("auditor"))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media)
    assert response.text.strip()
    recorded = _exports(limited)
    assert len(recorded) == before + 1
    assert recorded[-1]["actor_id"] == "aud"
    assert recorded[-1]["actor_role"] == "auditor"


def test_a_subject_export_is_recorded_against_its_client(limited: Api) -> None:
    client = _register(limited, "Nia Subject").json()["id"]
    limited.catch_up()
    response = limited.http.get(f"/clients/{client}/export", headers=limited.auth("auditor"))
    assert response.status_code == 200, response.text
    recorded = _exports(limited)
    assert [(e["actor_id"], str(e["client_id"])) for e in recorded] == [("aud", client)]


def test_bulk_exports_over_the_hourly_rate_are_a_429_with_retry_after(limited: Api) -> None:
    auditor = limited.auth("auditor")
    limited.catch_up()
    assert limited.http.get("/audit?format=csv", headers=auditor).status_code == 200
    assert limited.http.get("/clients?format=csv", headers=auditor).status_code == 200
    head = limited.head()

    refused = limited.http.get("/audit?format=jsonl", headers=auditor)

    assert_problem(refused, 429)
    assert refused.headers["content-type"].startswith(PROBLEM)
    assert int(refused.headers["retry-after"]) > 0
    assert limited.head() == head, "a refused export was recorded"
    # the rate is per user: the admin has exports left
    assert limited.http.get("/audit?format=csv", headers=limited.auth("admin")).status_code == 200
