"""Erasure is complete (SPEC §8): every string a caller can put into a request about a
client or a deal is encrypted under the client's key or taken from a closed set.

The request bodies are walked, not listed: every ``str`` a body holds — a field, an
item of a list, a key or a value of a mapping, at any depth — gets a marker of its
own, valid for its field (phones and emails embed theirs), unless the field takes its
value from a closed set: a ``Literal``, or one of ``CLOSED``, which says why. The API
is driven through every body, the client is erased, and no marker may be left in any
answer of the API (as an admin, who reads everything), nor in a ``pg_dump`` of the
schema, nor in the SQLite file and its write-ahead log. A field added to a body later
is covered without touching this test; a new body needs a step in ``drive``, and
``test_the_story_sends_every_body_the_api_takes`` says so.
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from uuid import UUID

import pytest
from litestar.routes import HTTPRoute
from pydantic import BaseModel

from api.bootstrap import Crm
from api.http import schemas, subscriptions
from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES, fresh_product
from tests.e2e.conftest import Api, assert_problem, open_api

ITEM, KEY, VALUE = "[]", "{key}", "{value}"
"""How a slot's path goes into a list's items, a mapping's keys and its values."""

_STAFF = "a user id: one of the active staff accounts (others are refused), not about a client"
_CURRENCY = "the business's one currency (CRM_CURRENCY); any other is refused"
_STAGE = "a stage of the deal's pipeline (others are refused): business configuration"
_PIPELINE = "business configuration, the same for every client: not about anyone"
CLOSED: Mapping[str, str] = {
    "RegisterClientBody.owner_id": _STAFF,
    "OwnerBody.owner_id": _STAFF,
    "FollowUpBody.assignee_id": _STAFF,
    "OpenDealBody.owner_id": _STAFF,
    "PurchaseBody.currency": _CURRENCY,
    "OpenDealBody.currency": _CURRENCY,
    "OpenDealBody.stage": _STAGE,
    "StageBody.stage": _STAGE,
    "ConsentBody.purpose": "one of the purposes declared in CRM_CONSENT_PURPOSES",
    "PipelineBody.name": _PIPELINE,
    "PipelineBody.stages[]": _PIPELINE,
}
"""The string slots that take a value from a closed set other than a ``Literal``, and
why that set holds no personal data. Everything else a body holds must be erasable."""

ABOUT_NO_CLIENT: Mapping[type[BaseModel], str] = {
    subscriptions.SubscriptionBody: "a webhook receiver an admin configures: about no client",
    subscriptions.ReplayBody: "a store position to deliver a webhook subscription from",
}
"""Bodies of routes whose commands are about no client or deal, and why: erasing a
client has nothing of theirs to remove."""


# ------------------------------------------------------------------ the walk


@dataclass(frozen=True)
class Slot:
    """A place in a request body where a string goes."""

    path: str
    """``RegisterClientBody.attributes{key}``, ``RegisterClientBody.phones[]``"""
    closed: str | None
    """Why it holds no personal data (a closed set), or ``None``: it must be erasable."""


def _alternatives(annotation: Any) -> list[Any]:
    """The types a value of ``annotation`` may have, without ``Annotated`` and ``None``."""
    if get_origin(annotation) is typing.Annotated:
        return _alternatives(get_args(annotation)[0])
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return [kind for option in get_args(annotation) for kind in _alternatives(option)]
    return [] if annotation is type(None) else [annotation]


def slots(model: type[BaseModel], prefix: str | None = None) -> list[Slot]:
    """Every string slot of ``model``, recursively."""
    found: list[Slot] = []
    for name, info in model.model_fields.items():
        found += _slots(info.annotation, f"{prefix or model.__name__}.{name}")
    return found


def _slots(annotation: Any, path: str) -> list[Slot]:
    found: list[Slot] = []
    for kind in _alternatives(annotation):
        origin = get_origin(kind)
        if kind is str:
            found.append(Slot(path, CLOSED.get(path)))
        elif origin is Literal:
            choices = [str(choice) for choice in get_args(kind)]
            found.append(Slot(path, f"a Literal: one of {', '.join(choices)}"))
        elif origin in (list, tuple, set, frozenset):
            found += _slots(get_args(kind)[0], path + ITEM)
        elif origin is dict:
            key, value = get_args(kind)
            found += _slots(key, path + KEY) + _slots(value, path + VALUE)
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            found += slots(kind, path)
    return found


def body_models() -> set[type[BaseModel]]:
    """Every request body model of ``api.http.schemas``."""
    return {
        model
        for model in vars(schemas).values()
        if isinstance(model, type) and issubclass(model, schemas.Body) and model is not schemas.Body
    }


def route_bodies(api: Api) -> dict[type[BaseModel], list[str]]:
    """The body models the app's routes take, with the routes taking each (a route's
    request body is its handler's ``data`` parameter)."""
    found: dict[type[BaseModel], list[str]] = {}
    for route in api.http.app.routes:
        # The console is read-only: its forms (sign-in, search, verify) record nothing.
        if not isinstance(route, HTTPRoute) or route.path_format.startswith("/ui"):
            continue
        for handler in route.route_handlers:
            data = handler.parsed_fn_signature.parameters.get("data")  # litestar's body
            for kind in _alternatives(data.annotation if data else type(None)):
                for method in handler.http_methods:
                    found.setdefault(kind, []).append(f"{method} {route.path_format}")
    return found


# ------------------------------------------------------------------ markers


@dataclass
class Markers:
    """Unique values, one per slot filled, valid for the field they go in."""

    made: dict[str, str] = field(default_factory=dict)
    """The text searched for (an email's local part, a phone's digits) → its slot."""

    def new(self, path: str) -> str:
        n = len(self.made) + 1
        leaf = path.rsplit(".", 1)[-1]
        if leaf.startswith("phones"):  # E.164: '+' and 7 to 15 digits
            searched = f"4917{n:03d}90817"
            value = "+" + searched
        elif leaf.startswith("emails"):  # lower-cased by the domain anyway
            searched = f"zqmail{n:03d}x"
            value = f"{searched}@example.org"
        elif path.endswith(KEY):  # attribute keys are slugs
            value = searched = f"zqkey{n:03d}x"
        else:  # free text: upper case (the directory's search text is lower-cased)
            value = searched = f"Zq{n:03d}Mérk"  # and a non-ASCII letter (JSON escapes)
        self.made[searched] = path
        return value


def forms(marker: str) -> set[bytes]:
    """The byte strings a stored marker may show up as: raw UTF-8, lower-cased,
    JSON-escaped (``\\u00e9``), and each of those in hex (``pg_dump``'s bytea)."""
    texts = {marker, marker.lower()}
    texts |= {json.dumps(text)[1:-1] for text in texts}
    raw = {text.encode() for text in texts}
    return raw | {data.hex().encode() for data in raw}


_SKIP = object()


def build(model: type[BaseModel], markers: Markers, given: Mapping[str, Any]) -> dict[str, Any]:
    """A body of ``model`` with a fresh marker in every open string slot, the first
    choice of every ``Literal``, and ``given`` values (which closed slots and
    non-string required fields need)."""
    body: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        path = f"{model.__name__}.{name}"
        value = given[name] if name in given else _value(info.annotation, path, markers)
        if value is not _SKIP:
            body[name] = value
        else:
            assert not info.is_required(), f"{path}: give it a value"
    return body


def _value(annotation: Any, path: str, markers: Markers) -> Any:
    for kind in _alternatives(annotation):
        origin = get_origin(kind)
        if kind is str:
            assert path not in CLOSED, f"{path} takes a value from a closed set: give one"
            return markers.new(path)
        if origin is Literal:
            return get_args(kind)[0]
        if origin in (list, tuple, set, frozenset):
            items = [_value(get_args(kind)[0], path + ITEM, markers) for _ in range(2)]
            if _SKIP not in items:
                return items
        elif origin is dict:
            key, value = get_args(kind)
            pairs = [
                (_value(key, path + KEY, markers), _value(value, path + VALUE, markers))
                for _ in range(2)
            ]
            if all(_SKIP not in pair for pair in pairs):
                return dict(pairs)
        elif isinstance(kind, type) and issubclass(kind, BaseModel):
            return build(kind, markers, {})
    return _SKIP


# ------------------------------------------------------------------ the story


@dataclass
class Story:
    """Requests by the admin, each body built from its model (``build``)."""

    api: Api
    markers: Markers = field(default_factory=Markers)
    sent: set[type[BaseModel]] = field(default_factory=set)
    last: dict[str, Any] = field(default_factory=dict)
    """The body of the last request sent."""

    def send(self, method: str, path: str, model: type[BaseModel], **given: Any) -> Any:
        self.last = build(model, self.markers, given)
        body = model.model_validate(self.last)  # as the API will
        self.sent.add(model)
        response = self.api.http.request(
            method,
            path,
            content=body.model_dump_json(exclude_unset=True),
            headers=self.api.auth("admin", **{"Content-Type": "application/json"}),
        )
        assert response.status_code in (200, 201), f"{method} {path}: {response.text}"
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.api.http.get(path, params=params, headers=self.api.auth("admin"))


@dataclass(frozen=True)
class Told:
    client: UUID
    duplicate: UUID
    deals: tuple[UUID, ...]


def _later(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def drive(story: Story) -> Told:
    """Every body the API takes, about a client, their duplicate and their deals."""
    pipeline = story.send(
        "POST", "/pipelines", schemas.PipelineBody, name="Erasure test", stages=["first", "second"]
    )["id"]
    client = UUID(story.send("POST", "/clients", schemas.RegisterClientBody, owner_id="mia")["id"])
    kept, dropped = sorted(story.last["attributes"])[:2]
    duplicate = UUID(
        story.send("POST", "/clients", schemas.RegisterClientBody, owner_id="mia")["id"]
    )
    at = f"/clients/{client}"
    story.send("PATCH", at, schemas.ChangeClientBody)
    story.send(  # one attribute removed, another changed
        "PATCH",
        at,
        schemas.ChangeClientBody,
        attributes={dropped: None, kept: story.markers.new("ChangeClientBody.attributes{value}")},
    )
    story.send("POST", f"{at}/contacts", schemas.ContactBody)
    story.send("POST", f"{at}/purchases", schemas.PurchaseBody, amount="120.00", currency="EUR")
    story.send("POST", f"{at}/loss", schemas.LossBody)
    story.send("POST", f"{at}/purchases", schemas.PurchaseBody, amount="80.00", currency="EUR")
    story.send("POST", f"{at}/owner", schemas.OwnerBody, owner_id="max")
    for done in ("complete", "cancel", None):  # the last one is left open
        task = story.send(
            "POST", f"{at}/follow-ups", schemas.FollowUpBody, due_at=_later(2), assignee_id="max"
        )["task_id"]
        if done:
            story.send("POST", f"{at}/follow-ups/{task}/{done}", schemas.FollowUpDoneBody)
    story.send("POST", f"{at}/consents", schemas.ConsentBody, purpose="newsletter", given=True)
    story.send("POST", f"{at}/consents", schemas.ConsentBody, purpose="newsletter", given=False)
    deal = story.send(
        "POST",
        "/deals",
        schemas.OpenDealBody,
        client_id=str(client),
        amount="300",
        currency="EUR",
        pipeline_id=pipeline,
        owner_id="max",
        stage="first",
    )["id"]
    story.send("POST", f"/deals/{deal}/stage", schemas.StageBody, stage="second")
    story.send("POST", f"/deals/{deal}/lose", schemas.LoseDealBody)
    story.send("POST", f"/deals/{deal}/reopen", schemas.ReopenBody)
    story.send("POST", f"/deals/{deal}/win", schemas.WinBody)
    other_deal = story.send(
        "POST",
        "/deals",
        schemas.OpenDealBody,
        client_id=str(duplicate),
        amount="50",
        currency="EUR",
        owner_id="mia",
        stage="attraction",
    )["id"]
    story.send("POST", f"/deals/{other_deal}/lose", schemas.LoseDealBody)
    story.send("POST", f"{at}/restriction", schemas.RestrictionBody, restricted=True)
    story.send("POST", f"{at}/restriction", schemas.RestrictionBody, restricted=False)
    story.send("POST", f"{at}/merge", schemas.MergeBody, duplicate_id=str(duplicate))
    return Told(client, duplicate, (UUID(deal), UUID(other_deal)))


def erase(story: Story, told: Told) -> None:
    """Erase the client (and so the duplicate merged into their card)."""
    story.send("POST", f"/clients/{told.client}/erasure", schemas.ErasureBody)


# ------------------------------------------------------------------ what is left


def answers(story: Story, told: Told) -> Iterator[tuple[str, bytes]]:
    """Every answer the admin gets from every read route of the app, as (what, bytes):
    each route once per client or deal it can name, exports and every page included."""
    api = story.api
    for route in api.http.app.routes:
        if not isinstance(route, HTTPRoute) or "GET" not in route.methods:
            continue
        template = route.path_format
        if template.startswith(("/schema", "/health", "/metrics")):
            continue
        ids = {"client_id": (told.client, told.duplicate), "deal_id": told.deals}
        names = [name for name in ids if f"{{{name}}}" in template]
        assert len(names) <= 1, f"name the ids for {template}"
        assert "{task_id}" not in template, f"name a task for {template}"
        for value in ids[names[0]] if names else [None]:
            path = template.replace(f"{{{names[0]}}}", str(value)) if names else template
            yield from _pages(story, path)


def _pages(story: Story, path: str) -> Iterator[tuple[str, bytes]]:
    variants: list[dict[str, Any]] = [{}]
    if path in ("/clients", "/audit"):
        variants += [{"format": "csv"}, {"limit": 500}]
    if path == "/audit":
        variants += [{"format": "jsonl"}]
    if path == "/work-queue":
        variants += [{"within_hours": 24 * 90}]
    for params in variants:
        response = story.get(path, **params)
        yield f"GET {path} {params}", response.content
        cursor_name, cursor = _next(path, response)
        while cursor is not None:  # every page
            response = story.get(path, **params, **{cursor_name: cursor})
            yield f"GET {path} {params} {cursor_name}={cursor}", response.content
            previous = cursor
            cursor_name, cursor = _next(path, response)
            if cursor == previous:
                break


def _next(path: str, response: Any) -> tuple[str, Any]:
    media = response.headers.get("content-type", "").split(";")[0]
    if response.status_code != 200 or media != "application/json":
        return "", None
    page = response.json()
    if path == "/events":
        return "after", page["next_after"] if page["items"] else None
    if isinstance(page, dict) and page.get("next_cursor"):
        return "cursor", page["next_cursor"]
    return "", None


def database_files(crm: Crm) -> Iterator[tuple[str, bytes]]:
    """What a copy of the database holds: a ``pg_dump`` of the schema, or the SQLite
    file and its write-ahead log (the product empties the log after an erasure)."""
    settings = crm.settings
    if settings.backend == "postgresql":
        pg_dump = shutil.which("pg_dump") or next(
            iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"), reverse=True)), None
        )
        if pg_dump is None:
            message = "pg_dump is not installed: the dump of the schema cannot be searched"
            if REQUIRE_POSTGRES:
                pytest.fail(f"{message} (CRM_REQUIRE_POSTGRES=1)")
            pytest.skip(message)
        dump = subprocess.run(
            [pg_dump, POSTGRES_URL, f"--schema={settings.database_schema}", "--no-owner"],
            check=True,
            capture_output=True,
        )
        yield "pg_dump", dump.stdout
        return
    path = settings.sqlite_path
    yield path.name, path.read_bytes()
    wal = Path(f"{path}-wal")
    if wal.exists():
        yield wal.name, wal.read_bytes()


def leaks(markers: Markers, sources: Iterator[tuple[str, bytes]]) -> dict[str, list[str]]:
    """Per marker found (named with its slot), where."""
    searched = {marker: forms(marker) for marker in markers.made}
    found: dict[str, list[str]] = {}
    for where, data in sources:
        for marker, variants in searched.items():
            if any(variant in data for variant in variants):
                found.setdefault(f"{markers.made[marker]} ({marker})", []).append(where)
    return found


# ------------------------------------------------------------------ tests


@pytest.fixture(params=["sqlite", "postgresql"])
def erasable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The API over a fresh product; exports unlimited, as this test makes many."""
    with (
        fresh_product(
            request.param, tmp_path, embedded_projector=False, export_rate_per_hour=10_000
        ) as crm,
        open_api(crm) as api,
    ):
        yield api


def test_after_erasure_no_string_sent_in_any_body_is_left_anywhere(erasable: Api) -> None:
    story = Story(erasable)
    told = drive(story)
    feed = story.get("/events", limit=1000).content  # every event, decrypted
    stored = leaks(story.markers, iter([("feed", feed)]))
    missing = {
        marker for marker, path in story.markers.made.items() if f"{path} ({marker})" not in stored
    }
    assert missing == set(), f"markers never stored, so never tested: {sorted(missing)}"
    assert len(story.markers.made) >= 40

    erase(story, told)
    story.api.catch_up()  # the erasure's purge, and the product empties the SQLite log

    on_disk = leaks(story.markers, database_files(story.api.crm))
    answered = leaks(story.markers, answers(story, told))
    assert (on_disk, answered) == ({}, {}), (
        f"left after erasure — in the database: {on_disk}; in the API's answers: {answered}"
    )
    for marker, path in story.markers.made.items():  # the lookup forgot every point
        if ".phones" in path or ".emails" in path:
            kind = "phone" if ".phones" in path else "email"
            value = "+" + marker if kind == "phone" else f"{marker}@example.org"
            response = story.get("/clients/lookup", **{kind: value})
            assert response.status_code == 404, f"{kind} {value}: {response.text}"


def test_the_walk_finds_every_string_of_every_body(api: Api) -> None:
    models = body_models()
    taken = set(route_bodies(api)) - set(ABOUT_NO_CLIENT)
    assert taken == models, "a body model no route takes, or one not in schemas"
    found = {slot.path: slot for model in models for slot in slots(model)}
    assert len(found) > 40
    for path in (  # the finding of issue 20
        "RegisterClientBody.channel",
        "RegisterClientBody.attributes{key}",
        "RegisterClientBody.attributes{value}",
        "ChangeClientBody.channel",
        "ChangeClientBody.attributes{key}",
        "RegisterClientBody.phones[]",
        "OpenDealBody.title",
        "LoseDealBody.note",
        "RestrictionBody.reason",
    ):
        assert found[path].closed is None, path
    for path in ("ConsentBody.purpose", "ErasureBody.reason", "ContactBody.purpose"):
        assert found[path].closed is not None, path
    assert set(CLOSED) <= set(found), "CLOSED names a slot no body has"
    open_slots = sum(slot.closed is None for slot in found.values())
    assert open_slots >= 20


def test_the_story_sends_every_body_the_api_takes(api: Api) -> None:
    story = Story(api)
    erase(story, drive(story))
    assert story.sent == body_models(), "a body no step of drive() sends: add one"


def test_free_text_for_a_closed_set_is_refused_with_a_422_that_records_nothing(
    api: Api,
) -> None:
    admin = api.auth("admin")
    client = api.http.post("/clients", json={"name": "Ann"}, headers=admin).json()["id"]
    head = api.head()
    erasure = api.http.post(
        f"/clients/{client}/erasure",
        json={"reason": "asked by Ann Lee, tel 0301234"},
        headers=admin,
    )
    consent = api.http.post(
        f"/clients/{client}/consents",
        json={"purpose": "calls_to_ann_at_home", "given": True},
        headers=admin,
    )
    assert_problem(erasure, 422)
    assert "reason" in erasure.text
    problem = assert_problem(consent, 422)
    assert "is not one of the declared purposes: newsletter, marketing" in problem["detail"]
    assert api.head() == head
