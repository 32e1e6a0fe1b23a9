"""Bad input at the HTTP edge: every refusal is a problem document (RFC 9457) naming
each bad field, and records nothing. Then schemathesis throws generated requests at
every operation of the app's own OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from api.http import support
from tests.conftest import fresh_product
from tests.e2e.conftest import PROBLEM, Api, assert_problem, open_api

JSON = {"Content-Type": "application/json"}
FUTURE = (datetime.now(UTC) + timedelta(days=3650)).isoformat()


@dataclass(frozen=True)
class Bad:
    """A bad request: ``{client}`` and ``{deal}`` in the path name real records."""

    label: str
    method: str
    path: str
    status: int | tuple[int, ...]
    fields: set[str] | None = None
    """The fields ``errors`` must name (exactly), for validation problems."""
    json: Any = None
    content: bytes | None = None
    headers: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


def nested(depth: int) -> bytes:
    """A client's registration nested ``depth`` levels deep: the object is the first
    level, ``attributes`` holds arrays in arrays for the rest, with strings on the way
    whose brackets, escaped quotes and escaped backslashes must not count."""
    value = b'"]\\"{"'
    for _ in range(depth - 1):
        value = b'["[\\\\", ' + value + b"]"
    return b'{"name": "x [{", "attributes": ' + value + b"}"


CONTACT = {"channel": "call", "direction": "inbound"}
# A query parameter out of its bounds is a validation problem; the spec does not say
# whether 400 or 422, only that the problem names the field.
QUERY_INVALID = (400, 422)

CASES = [
    # the body as a whole
    Bad("oversized body", "POST", "/clients", 413,
        content=b'{"name": "' + b"a" * (1024 * 1024 + 1) + b'"}', headers=JSON),
    Bad("invalid UTF-8", "POST", "/clients", 400, content=b'{"name": "\xff\xfe"}', headers=JSON),
    Bad("malformed JSON", "POST", "/clients", 400, content=b'{"name": ', headers=JSON),
    Bad("JSON nested too deep", "POST", "/clients", 400,
        content=b"[" * 100_000 + b"]" * 100_000, headers=JSON),
    Bad("JSON nested 1000 deep (orjson accepts it)", "POST", "/clients", 400,
        content=nested(1000), headers=JSON),
    Bad("JSON nested 33 deep", "POST", "/clients", 400, content=nested(33), headers=JSON),
    Bad("JSON nested 32 deep: refused for its shape, not its depth", "POST", "/clients", 422,
        {"attributes"}, content=nested(32), headers=JSON),
    Bad("text/plain body", "POST", "/clients", 415, content=b'{"name": "x"}',
        headers={"Content-Type": "text/plain"}),
    Bad("form body", "POST", "/clients", 415, content=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"}),
    Bad("a JSON array, not an object", "POST", "/clients", 422, json=[1, 2]),
    Bad("no body at all", "POST", "/clients", 422),
    # wrong types and unknown fields
    Bad("wrong JSON types", "POST", "/clients", 422, {"name", "phones"},
        json={"name": 5, "phones": "+441234567890"}),
    Bad("missing name", "POST", "/clients", 422, {"name"}, json={}),
    Bad("unknown field", "POST", "/clients", 422, {"colour"}, json={"name": "x", "colour": "red"}),
    Bad("empty name", "POST", "/clients", 422, {"name"}, json={"name": ""}),
    Bad("blank name", "POST", "/clients", 422, {"name"}, json={"name": "   "}),
    Bad("control character in name", "POST", "/clients", 422, {"name"}, json={"name": "a\x00b"}),
    Bad("phone without country code", "POST", "/clients", 422, {"phones"},
        json={"name": "x", "phones": ["020 7946 0000"]}),
    Bad("malformed email", "POST", "/clients", 422, {"emails"},
        json={"name": "x", "emails": ["nobody@"]}),
    Bad("eleven phones", "POST", "/clients", 422, {"phones"},
        json={"name": "x", "phones": [f"+4420794600{i:02d}" for i in range(11)]}),
    Bad("unknown kind", "POST", "/clients", 422, {"kind"}, json={"name": "x", "kind": "robot"}),
    Bad("renamed to blank", "PATCH", "/clients/{client}", 422, {"name"}, json={"name": " "}),
    # money
    *[
        Bad(f"amount {label}", "POST", "/clients/{client}/purchases", 422, {"amount"},
            json={"amount": amount})
        for label, amount in [
            ("1e30 (float)", 1e30), ("10**30 (int)", 10**30), ("'1e30'", "1e30"),
            ("negative", -5), ("'-0.01'", "-0.01"), ("zero", 0), ("'0.00'", "0.00"),
            ("five decimals", "1.23456"), ("NaN", "NaN"), ("Infinity", "Infinity"),
            ("a word", "ten"),
        ]
    ],
    Bad("amount with 5000 digits", "POST", "/clients/{client}/purchases", (400, 422),
        content=b'{"amount": 1' + b"0" * 5000 + b"}", headers=JSON),
    Bad("negative cost", "POST", "/clients/{client}/purchases", 422, {"cost"},
        json={"amount": "10", "cost": "-1"}),
    Bad("lower-case currency", "POST", "/clients/{client}/purchases", 422, {"currency"},
        json={"amount": "10", "currency": "eur"}),
    Bad("another currency than the books'", "POST", "/clients/{client}/purchases", 422,
        {"currency"}, json={"amount": "10", "currency": "USD"}),
    Bad("deal worth 1e30", "POST", "/deals", 422, {"amount"},
        json={"client_id": "{client}", "title": "Big", "amount": 1e30}),
    Bad("deal won for a negative amount", "POST", "/deals/{deal}/win", 422, {"amount"},
        json={"amount": "-3"}),
    # business time
    Bad("occurred_at in the future", "POST", "/clients/{client}/contacts", 422, {"occurred_at"},
        json={**CONTACT, "occurred_at": FUTURE}),
    Bad("naive occurred_at", "POST", "/clients/{client}/contacts", 422, {"occurred_at"},
        json={**CONTACT, "occurred_at": "2020-01-01T10:00:00"}),
    Bad("purchase in the future", "POST", "/clients/{client}/purchases", 422, {"occurred_at"},
        json={"amount": "10", "occurred_at": FUTURE}),
    Bad("registered in the future", "POST", "/clients", 422, {"occurred_at"},
        json={"name": "x", "occurred_at": FUTURE}),
    Bad("occurred_at not a date", "POST", "/clients/{client}/contacts", 422, {"occurred_at"},
        json={**CONTACT, "occurred_at": "yesterday"}),
    Bad("follow-up due in the past", "POST", "/clients/{client}/follow-ups", 422, {"due_at"},
        json={"due_at": "2001-01-01T00:00:00Z"}),
    # unknown enum values
    Bad("unknown channel", "POST", "/clients/{client}/contacts", 422, {"channel"},
        json={**CONTACT, "channel": "pigeon"}),
    Bad("unknown direction", "POST", "/clients/{client}/contacts", 422, {"direction"},
        json={**CONTACT, "direction": "sideways"}),
    Bad("unknown loss reason", "POST", "/clients/{client}/loss", 422, {"reason"},
        json={"reason": "aliens"}),
    Bad("unknown deal loss reason", "POST", "/deals/{deal}/lose", 422, {"reason"},
        json={"reason": "aliens"}),
    Bad("unknown assignment reason", "POST", "/clients/{client}/owner", 422, {"reason"},
        json={"owner_id": "mia", "reason": "whim"}),
    Bad("an owner who is no user", "POST", "/clients/{client}/owner", 422, {"owner_id"},
        json={"owner_id": "nobody"}),
    Bad("an auditor as owner", "POST", "/clients/{client}/owner", 422, {"owner_id"},
        json={"owner_id": "aud"}),
    Bad("unknown stage", "POST", "/deals/{deal}/stage", 422, {"stage"},
        json={"stage": "negotiation"}),
    # paths
    Bad("bad UUID in the path", "GET", "/clients/not-a-uuid", 404),
    Bad("bad UUID in a write's path", "POST", "/clients/not-a-uuid/contacts", 404, json=CONTACT),
    Bad("bad deal UUID", "GET", "/deals/12345", 404),
    Bad("unknown client", "POST", "/clients/00000000-0000-4000-8000-000000000000/contacts", 404,
        json=CONTACT),
    Bad("unknown route", "GET", "/no-such-thing", 404),
    Bad("unknown route under a resource", "POST", "/clients/{client}/teleport", 404, json={}),
    Bad("wrong method", "DELETE", "/clients", 405),
    Bad("wrong method on a card", "PUT", "/clients/{client}", 405, json={"name": "x"}),
    # headers
    *[
        Bad(f"If-Match {value!r}", "PATCH", "/clients/{client}", 400, json={"name": "New"},
            headers={"If-Match": value})
        for value in ["abc", 'W/"x"', '"-1"', "3", '"1", "2"']
    ],
    *[
        Bad(f"Idempotency-Key {label}", "POST", "/clients", 400, json={"name": "Idem"},
            headers={"Idempotency-Key": value})
        for label, value in [
            ("with a space", "a b"), ("empty", ""), ("of 201 characters", "k" * 201),
            ("not ASCII", "clé".encode("latin-1")),
        ]
    ],
    # queries
    *[
        Bad(f"{path} limit={limit}", "GET", path, QUERY_INVALID, {"limit"},
            params={"limit": limit})
        for path in ("/clients", "/audit")
        for limit in ("501", "-1", "0", "ten")
    ],
    Bad("events limit above 1000", "GET", "/events", QUERY_INVALID, {"limit"},
        params={"limit": "1001"}),
    Bad("negative min_position", "GET", "/clients", QUERY_INVALID, {"min_position"},
        params={"min_position": "-5"}),
    Bad("as_of not a date", "GET", "/kpis", QUERY_INVALID, {"as_of"}, params={"as_of": "soon"}),
    Bad("unknown stage filter", "GET", "/clients", QUERY_INVALID, {"stage"},
        params={"stage": "zombie"}),
    Bad("unknown export format", "GET", "/audit", QUERY_INVALID, {"format"},
        params={"format": "xlsx"}),
    Bad("malformed cursor on /clients", "GET", "/clients", 400, params={"cursor": "garbage"}),
    Bad("malformed cursor on /audit", "GET", "/audit", 400, params={"cursor": "garbage"}),
    Bad("lookup with neither phone nor email", "GET", "/clients/lookup", 400),
]  # fmt: skip


@pytest.fixture
def records(api: Api) -> dict[str, str]:
    """A client and an open deal of the manager ``mia``, with the read models current."""
    admin = api.auth("admin")
    client = api.http.post(
        "/clients", json={"name": "Ann Example", "owner_id": "mia"}, headers=admin
    ).json()["id"]
    deal = api.http.post(
        "/deals", json={"client_id": client, "title": "Windows", "amount": "900"}, headers=admin
    ).json()["id"]
    api.catch_up()
    return {"client": client, "deal": deal}


def _fill(value: Any, records: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**records)
    if isinstance(value, dict):
        return {key: _fill(item, records) for key, item in value.items()}
    return value


@pytest.mark.parametrize("bad", CASES, ids=[case.label for case in CASES])
def test_bad_input_is_a_problem_that_records_nothing(
    api: Api, records: dict[str, str], bad: Bad
) -> None:
    before = api.head()
    response = api.http.request(
        bad.method,
        _fill(bad.path, records),
        json=_fill(bad.json, records),
        content=bad.content,
        params=bad.params,
        headers=api.auth("admin", **bad.headers),
    )
    expected = bad.status if isinstance(bad.status, tuple) else (bad.status,)
    assert response.status_code in expected, response.text
    body = assert_problem(response, response.status_code)
    if bad.fields is not None:
        assert {error["field"] for error in body.get("errors", [])} == bad.fields, body
    if response.status_code == 405:
        assert response.headers["allow"]
    assert api.head() == before, "a refused request recorded events"


def test_an_unknown_page_under_the_schema_is_a_problem_too(api: Api) -> None:
    assert_problem(api.http.get("/schema/no-such-page"), 404)


# ------------------------------------------------- text PostgreSQL cannot store

TEXT_PARAMETERS = [
    ("/clients", "q"),
    ("/clients", "owner_id"),
    ("/audit", "field"),
    ("/audit", "actor_id"),
    ("/activity", "actor_id"),
    ("/work-queue", "assignee_id"),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def either_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The app in-process over SQLite and over PostgreSQL, whose text cannot hold NUL
    (there a NUL that got through was a 500)."""
    with (
        fresh_product(request.param, tmp_path, embedded_projector=False) as crm,
        open_api(crm) as api,
    ):
        yield api


@pytest.mark.parametrize(("path", "name"), TEXT_PARAMETERS)
def test_a_nul_in_a_text_query_parameter_is_refused_naming_it(
    either_api: Api, path: str, name: str
) -> None:
    response = either_api.http.get(
        path, params={name: "ma\x00ria"}, headers=either_api.auth("admin")
    )
    body = assert_problem(response, 422)
    assert [error["field"] for error in body["errors"]] == [name], body


NUL_FIELDS = [
    ("/clients", {"name": "Ann\x00"}, "name"),
    ("/clients", {"name": "Ann", "phones": ["+442079460001", "+44207946\x000002"]}, "phones[1]"),
    ("/clients", {"name": "Ann", "attributes": {"city": "Ky\x00iv"}}, "attributes.city"),
    ("/clients", {"name": "Ann", "owner_id": "mia\x00"}, "owner_id"),
    ("/pipelines", {"name": "windows", "stages": ["lead", "measure\x00ment"]}, "stages[1]"),
]


@pytest.mark.parametrize(("path", "body", "name"), NUL_FIELDS, ids=[f[2] for f in NUL_FIELDS])
def test_a_nul_in_a_body_field_is_refused_naming_the_field_and_records_nothing(
    either_api: Api, path: str, body: dict[str, Any], name: str
) -> None:
    before = either_api.head()
    response = either_api.http.post(path, json=body, headers=either_api.auth("admin"))
    problem = assert_problem(response, 422)
    assert [error["field"] for error in problem["errors"]] == [name], problem
    assert either_api.head() == before, "a refused request recorded events"


INJECTIONS = [
    "Robert'); DROP TABLE events;--",
    "<script>alert(1)</script>",
    "x' OR '1'='1",
    '"; DELETE FROM directory_cards; --',
    "{{7*7}} ${7*7} %s %n",
]


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_strings_are_stored_and_returned_verbatim(api: Api, text: str) -> None:
    admin = api.auth("admin")
    client = api.http.post("/clients", json={"name": text}, headers=admin).json()["id"]
    contact = api.http.post(
        f"/clients/{client}/contacts", json={**CONTACT, "summary": text}, headers=admin
    )
    assert contact.status_code == 200, contact.text
    api.catch_up()

    card = api.http.get(f"/clients/{client}", headers=admin)
    assert card.headers["content-type"].startswith("application/json")
    assert card.json()["name"] == text
    history = api.http.get(f"/clients/{client}/history", headers=admin).json()["items"]
    assert [e["payload"]["summary"] for e in history if e["event_type"] == "ContactMade"] == [text]
    audit = api.http.get("/audit", params={"client_id": client, "field": "name"}, headers=admin)
    assert [entry["new_value"] for entry in audit.json()["items"]] == [text]
    found = api.http.get("/clients", params={"q": text}, headers=admin).json()["items"]
    assert [item["id"] for item in found] == [client]

    for table in ("events", "directory_cards", "users"):
        assert api.crm.db.query(f"SELECT COUNT(*) FROM {table}")[0][0] > 0


# ------------------------------------------------------------------ schemathesis

MAX_EXAMPLES = 15


def _seeded(api: Api) -> dict[str, str]:
    admin = api.auth("admin")
    client = api.http.post(
        "/clients", json={"name": "Seed", "phones": ["+442079460001"]}, headers=admin
    ).json()["id"]
    task = api.http.post(
        f"/clients/{client}/follow-ups",
        json={"due_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        headers=admin,
    ).json()["task_id"]
    deal = api.http.post(
        "/deals", json={"client_id": client, "title": "Seed deal", "amount": "10"}, headers=admin
    ).json()["id"]
    api.catch_up()
    return {"client_id": client, "task_id": task, "deal_id": deal}


def _is_problem(response: schemathesis.Response) -> bool:
    if not response.headers.get("content-type", [""])[0].startswith(PROBLEM):
        return False
    body = response.json()
    return all(key in body for key in ("type", "title", "status", "detail")) and (
        body["status"] == response.status_code
    )


def test_generated_requests_never_break_the_server(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every operation of the app's own schema, with generated valid and invalid input,
    as the admin (who may call everything): no 5xx, and every 4xx is a problem
    document. Path ids are half the time real records, so that bodies reach the
    domain rules instead of stopping at a 404. The app is the fixture's, so the
    hypothesis loop runs inside the test instead of through schemathesis' pytest
    plugin (which cannot use function-scoped fixtures).

    No projector runs, so a generated ``min_position`` past the read models is
    answered 503 (with ``Retry-After``), as the spec wants; the bounded wait before
    that answer is shortened so the run stays quick."""
    monkeypatch.setattr(support, "READ_WAIT_SECONDS", 0.01)
    real = _seeded(api)
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", api.http.app)
    admin = api.auth("admin")
    failures: list[str] = []
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the schema has operations schemathesis cannot read"
    assert len(operations) >= 30, "the schema lost operations"
    # erasing or merging the seeded client early would turn later writes into 422s
    operations.sort(key=lambda operation: operation.path.endswith(("/erasure", "/merge")))
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = st.one_of(
                operation.as_strategy(generation_mode=mode),
                operation.as_strategy(
                    generation_mode=mode,
                    path_parameters={
                        name: real[name] for name in real if f"{{{name}}}" in operation.path
                    },
                ),
            )

            @settings(
                max_examples=MAX_EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: schemathesis.Case[Any]) -> None:
                response = case.call(headers=admin)
                status = response.status_code
                behind = status == 503 and "retry-after" in response.headers
                if (status >= 500 and not behind) or (status >= 400 and not _is_problem(response)):
                    failures.append(
                        f"{case.method} {case.path} {case.path_parameters} {case.query}"
                        f" {case.body!r} -> {status} {response.text[:300]}"
                    )

            run()
    assert not failures, "\n".join(dict.fromkeys(failures))
