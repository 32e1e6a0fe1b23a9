"""End to end: a real ``crm serve`` process, spoken to over HTTP, on SQLite and on
PostgreSQL.

Users are made with the command line (``crm users add``); a dated story is told
through the API (every fact back-dated with ``occurred_at``, all at midnight UTC);
then every read endpoint is checked against figures worked out by hand from the
rules (SPEC §2-§4, ``domain/lifecycle.py``): loyal = 3 purchases within 365 days;
dead = no purchase for more than 90 days (from 1 µs after the last purchase + 90
days) or lost after the last purchase; a lead lost before paying is dead too.

Users: boss (admin), audrey (auditor), shop (service) first; the managers maria and
ivan join after the first lead arrived, so that lead stays unassigned. Leads are
registered by the admin without an owner: round-robin gives maria, ivan, maria…

    Zoe     lead 2024-01-05, before any manager exists: unassigned. Nothing else.
    Anna    lead 2024-01-10 -> maria. Call 01-12; follow-up due 01-15, done 01-14
            (on time). Deal D1 opened 01-15 (attraction, 1000.00), interest 01-20,
            evaluation 02-01, won 02-10 at cost 600.00 (her purchase 1000.00/600.00).
            Buys 06-10 (300.00/180.00) and 08-20 (500.00/300.00); a purchase of
            04-10 (199.90/119.95) is recorded last, late.
            -> new 02-10; loyal 06-10 (third purchase within 365 days: 02-10, 04-10,
            06-10); dead 2024-11-18 + 1 µs (08-20 + 90 days), by inactivity.
    Boris   lead 2024-01-20 -> ivan. Call 01-22; follow-up due 01-24, done 01-26
            (late). Deal D2 opened 01-25, skips to evaluation 02-05, steps back to
            interest 02-15, lost 03-01 (price). Buys 03-10 (400.00/300.00), then goes
            quiet -> new 03-10, dead 2024-06-08 + 1 µs (03-10 + 90 days).
    Clara   lead 2024-02-01 -> maria. Buys 02-15 (500.00/350.00); lost 03-15
            (competitor); follow-up scheduled 03-16, due 04-01, left open. Buys again
            2025-02-01 (600.00/400.00, sent twice with one Idempotency-Key)
            -> new 02-15, dead 03-15 (competitor), returned 2025-02-01, dead
            2025-05-02 + 1 µs (2025-02-01 + 90 days).
    Dmitri  lead 2024-02-10 -> ivan. Call 02-12; follow-up due 02-20 left open. Deal
            D3 opened 02-15, interest 03-01, still open. Never buys: potential.
    Elena   lead 2024-03-01 -> maria. Email 03-05; lost 04-01 (no_need) without ever
            paying -> dead 04-01.

Every write sends an ``X-Correlation-ID``; the next read passes the write's
``position`` as ``min_position`` (read-your-writes through the real server).
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import POSTGRES_URL, TEST_MASTER_KEY, require_postgres
from tests.e2e.server import add_user, crm_environment, running_server

US = timedelta(microseconds=1)
STORES = ["sqlite", "postgresql"]
FIRST_USERS = {"boss": "admin", "audrey": "auditor", "shop": "service"}
MANAGERS = ("maria", "ivan")  # in this order: the round-robin follows creation order
NAMES = {
    "zoe": "Zoe Adler",
    "anna": "Anna Schmidt",
    "boris": "Boris Petrov",
    "clara": "Clara Weiss",
    "dmitri": "Dmitri Ivanov",
    "elena": "Elena Popova",
}


def day(text: str) -> datetime:
    """Midnight UTC of an ISO date."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def instant(text: str | None) -> datetime | None:
    """An instant as the API sends it (RFC 3339), or None."""
    return None if text is None else datetime.fromisoformat(text)


def money(value: Any) -> Decimal:
    """Money is sent as an exact decimal string, never as a JSON number."""
    assert isinstance(value, str), f"money must be a decimal string, got {value!r}"
    return Decimal(value)


# ------------------------------------------------------------------ the story


@dataclass
class Write:
    """One write: who, in which request, when it happened, the position answered,
    and the events it must have recorded, as (event type, aggregate id)."""

    actor: str
    role: str
    correlation_id: str
    occurred_at: datetime
    position: int
    events: list[tuple[str, str]]


@dataclass
class Story:
    store: str
    http: httpx.Client
    tokens: dict[str, str]
    roles: dict[str, str]
    clients: dict[str, str] = field(default_factory=dict)
    deals: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, str] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    position: int = 0
    """The position answered by the latest write."""
    owners_when_registered: dict[str, str | None] = field(default_factory=dict)
    anna_before_late_purchase: list[dict[str, Any]] = field(default_factory=list)
    retried: dict[str, Any] = field(default_factory=dict)

    def headers(self, user: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}", **extra}

    def write(
        self,
        user: str,
        path: str,
        body: dict[str, Any],
        *,
        when: str,
        cid: str,
        events: tuple[str, ...],
        subjects: tuple[str, ...] | None = None,
        status: int = 200,
        key: str | None = None,
    ) -> dict[str, Any]:
        """POST a write back-dated to ``when``; ``subjects`` name the aggregate of each
        expected event (default: the record the answer names)."""
        headers = self.headers(user, **{"X-Correlation-ID": cid})
        if key is not None:
            headers["Idempotency-Key"] = key
        body = {**body, "occurred_at": f"{when}T00:00:00Z"}
        response = self.http.post(path, json=body, headers=headers)
        assert response.status_code == status, f"POST {path}: {response.text}"
        assert response.headers["x-correlation-id"] == cid
        answer: dict[str, Any] = response.json()
        assert answer["position"] > self.position, "positions grow with every write"
        assert response.headers["etag"] == f'"{answer["version"]}"'
        targets = subjects or (answer["id"],) * len(events)
        self.writes.append(
            Write(
                user,
                self.roles[user],
                cid,
                day(when),
                answer["position"],
                list(zip(events, targets, strict=True)),
            )
        )
        self.position = answer["position"]
        return answer

    def get(self, user: str | None, path: str, *, wait: bool = True, **params: Any) -> Any:
        """GET as ``user``; with ``wait`` the read waits for the latest write."""
        if wait:
            params["min_position"] = self.position
        headers = self.headers(user) if user else {}
        return self.http.get(path, params=params, headers=headers)

    def read(self, user: str, path: str, *, wait: bool = True, **params: Any) -> Any:
        response = self.get(user, path, wait=wait, **params)
        assert response.status_code == 200, f"GET {path} as {user}: {response.text}"
        return response.json()


def tell(story: Story, add_managers: Callable[[], None]) -> None:
    """The story of the module docstring, in the order the API hears it."""
    s = story

    def lead(name: str, when: str, **fields: Any) -> None:
        events = ("ClientRegistered", "OwnerAssigned") if name != "zoe" else ("ClientRegistered",)
        answer = s.write(
            "boss",
            "/clients",
            {"name": NAMES[name], **fields},
            when=when,
            cid=f"lead-{name}",
            events=events,
            status=201,
        )
        s.clients[name] = answer["id"]
        card = s.read("boss", f"/clients/{answer['id']}")  # read-your-write
        s.owners_when_registered[name] = card["owner_id"]

    def buy(user: str, name: str, when: str, amount: str, cost: str, **options: Any) -> None:
        s.write(
            user,
            f"/clients/{s.clients[name]}/purchases",
            {"amount": amount, "cost": cost},
            when=when,
            cid=f"{name}-buys-{when}",
            events=("PurchaseMade",),
            **options,
        )

    def contact(user: str, name: str, when: str, channel: str, direction: str) -> None:
        s.write(
            user,
            f"/clients/{s.clients[name]}/contacts",
            {"channel": channel, "direction": direction, "summary": f"{channel} with {name}"},
            when=when,
            cid=f"{name}-{channel}",
            events=("ContactMade",),
        )

    def follow_up(user: str, name: str, when: str, due: str) -> None:
        answer = s.write(
            user,
            f"/clients/{s.clients[name]}/follow-ups",
            {"due_at": f"{due}T00:00:00Z", "note": "call back"},
            when=when,
            cid=f"{name}-follow-up",
            events=("FollowUpScheduled",),
            status=201,
        )
        s.tasks[name] = answer["task_id"]

    def done(user: str, name: str, when: str) -> None:
        s.write(
            user,
            f"/clients/{s.clients[name]}/follow-ups/{s.tasks[name]}/complete",
            {"note": "called"},
            when=when,
            cid=f"{name}-follow-up-done",
            events=("FollowUpCompleted",),
        )

    def open_deal(user: str, deal: str, name: str, when: str, title: str, amount: str) -> None:
        answer = s.write(
            user,
            "/deals",
            {"client_id": s.clients[name], "title": title, "amount": amount},
            when=when,
            cid=f"{deal}-open",
            events=("DealOpened",),
            status=201,
        )
        s.deals[deal] = answer["id"]

    def move(user: str, deal: str, when: str, stage: str) -> None:
        s.write(
            user,
            f"/deals/{s.deals[deal]}/stage",
            {"stage": stage},
            when=when,
            cid=f"{deal}-{stage}",
            events=("DealStageChanged",),
        )

    # Leads. The first arrives while there is no manager: it stays unassigned.
    lead("zoe", "2024-01-05", channel="fair")
    add_managers()
    lead(
        "anna",
        "2024-01-10",
        phones=["+49 30 1234567"],
        emails=["Anna@Example.com"],
        channel="website",
    )
    lead("boris", "2024-01-20", phones=["+7 912 345-67-89"], channel="phone")
    lead("clara", "2024-02-01", emails=["clara@example.org"], channel="website")
    lead("dmitri", "2024-02-10", channel="referral")
    lead("elena", "2024-03-01", channel="website")

    # Calls and follow-ups.
    contact("maria", "anna", "2024-01-12", "call", "outbound")
    follow_up("maria", "anna", "2024-01-12", due="2024-01-15")
    done("maria", "anna", "2024-01-14")  # before it was due: on time
    contact("ivan", "boris", "2024-01-22", "call", "outbound")
    follow_up("ivan", "boris", "2024-01-22", due="2024-01-24")
    done("ivan", "boris", "2024-01-26")  # after it was due: late
    contact("ivan", "dmitri", "2024-02-12", "call", "inbound")
    follow_up("ivan", "dmitri", "2024-02-12", due="2024-02-20")  # left open
    contact("maria", "elena", "2024-03-05", "email", "inbound")

    # Deals in the default pipeline.
    open_deal("maria", "d1", "anna", "2024-01-15", "Office chairs", "1000.00")
    move("maria", "d1", "2024-01-20", "interest")
    move("maria", "d1", "2024-02-01", "evaluation")
    s.write(
        "maria",
        f"/deals/{s.deals['d1']}/win",
        {"cost": "600.00"},
        when="2024-02-10",
        cid="d1-win",
        events=("DealWon", "PurchaseMade"),
        subjects=(s.deals["d1"], s.clients["anna"]),
    )
    open_deal("ivan", "d2", "boris", "2024-01-25", "Laptops", "800.00")
    move("ivan", "d2", "2024-02-05", "evaluation")  # skips interest
    move("ivan", "d2", "2024-02-15", "interest")  # a step back
    s.write(
        "ivan",
        f"/deals/{s.deals['d2']}/lose",
        {"reason": "price", "note": "found it cheaper"},
        when="2024-03-01",
        cid="d2-lose",
        events=("DealLost",),
    )
    open_deal("ivan", "d3", "dmitri", "2024-02-15", "Printer", "300.00")
    move("ivan", "d3", "2024-03-01", "interest")

    # Purchases, a loss, a quiet client, a late purchase, a return.
    buy("ivan", "boris", "2024-03-10", "400.00", "300.00")
    buy("maria", "clara", "2024-02-15", "500.00", "350.00")
    s.write(
        "maria",
        f"/clients/{s.clients['clara']}/loss",
        {"reason": "competitor", "note": "went to the shop next door"},
        when="2024-03-15",
        cid="clara-lost",
        events=("ClientLost",),
    )
    follow_up("maria", "clara", "2024-03-16", due="2024-04-01")  # left open
    s.write(
        "maria",
        f"/clients/{s.clients['elena']}/loss",
        {"reason": "no_need"},
        when="2024-04-01",
        cid="elena-lost",
        events=("ClientLost",),
    )
    buy("maria", "anna", "2024-06-10", "300.00", "180.00")
    buy("maria", "anna", "2024-08-20", "500.00", "300.00")
    s.anna_before_late_purchase = s.read("audrey", f"/clients/{s.clients['anna']}/lifecycle")
    buy("maria", "anna", "2024-04-10", "199.90", "119.95")  # recorded late

    # Clara returns; the request is sent twice with one Idempotency-Key.
    buy("maria", "clara", "2025-02-01", "600.00", "400.00", key="clara-returns")
    first = s.writes[-1]
    retry = s.http.post(
        f"/clients/{s.clients['clara']}/purchases",
        json={"amount": "600.00", "cost": "400.00", "occurred_at": "2025-02-01T00:00:00Z"},
        headers=s.headers(
            "maria", **{"Idempotency-Key": "clara-returns", "X-Correlation-ID": "clara-retry"}
        ),
    )
    s.retried = {"first_position": first.position, "status": retry.status_code, **retry.json()}


@pytest.fixture(scope="module", params=STORES)
def story(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Story]:
    """The story told to a real server on one store; the server is stopped (and the
    PostgreSQL schema dropped) afterwards, whatever happened."""
    store: str = request.param
    directory = tmp_path_factory.mktemp(f"e2e-{store}")
    settings = {
        "CRM_MASTER_KEY": TEST_MASTER_KEY,
        "CRM_KEY_FILE": str(directory / "crm.key"),
        "CRM_LOG_LEVEL": "warning",
    }
    schema = None
    if store == "postgresql":
        require_postgres()
        schema = f"test_{uuid.uuid4().hex[:12]}"
        settings |= {"CRM_DATABASE_URL": POSTGRES_URL, "CRM_DATABASE_SCHEMA": schema}
    else:
        settings["CRM_DATABASE_URL"] = f"sqlite:///{directory / 'crm.db'}"
    environment = crm_environment(settings)
    roles = {**FIRST_USERS, **dict.fromkeys(MANAGERS, "manager")}
    try:
        tokens = {
            name: add_user(environment, directory, name, role) for name, role in FIRST_USERS.items()
        }

        def add_managers() -> None:
            for name in MANAGERS:
                tokens[name] = add_user(environment, directory, name, "manager")

        with (
            running_server(environment, directory) as server,
            httpx.Client(base_url=server.base_url, timeout=30.0, trust_env=False) as http,
        ):
            told = Story(store, http, tokens, roles)
            tell(told, add_managers)
            yield told
    finally:
        if schema is not None:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def ids(story: Story, *names: str) -> list[str]:
    return [story.clients[name] for name in names]


# ------------------------------------------------------------------ assignment


def test_leads_are_assigned_round_robin_to_the_managers_in_turn(story: Story) -> None:
    # Zoe came before any manager existed; then maria, ivan, maria, ivan, maria.
    assert story.owners_when_registered == {
        "zoe": None,
        "anna": "maria",
        "boris": "ivan",
        "clara": "maria",
        "dmitri": "ivan",
        "elena": "maria",
    }


# ------------------------------------------------------------------ client cards

# Read now (2026 or later): every paying client has been without a purchase for more
# than 90 days, so is dead; Zoe and Dmitri never paid and were never lost.
CARDS: dict[str, dict[str, Any]] = {
    "zoe": {
        "owner_id": None,
        "stage": "potential",
        "purchases_count": 0,
        "revenue": "0",
        "margin": "0",
        "last_purchase_at": None,
        "last_contact_at": None,
        "open_follow_ups": 0,
        "version": 1,  # registered
    },
    "anna": {
        "owner_id": "maria",
        "stage": "dead",
        "purchases_count": 4,
        "revenue": "1999.90",  # 1000.00 + 199.90 + 300.00 + 500.00
        "margin": "799.95",  # 400.00 + 79.95 + 120.00 + 200.00
        "last_purchase_at": "2024-08-20",  # the late 04-10 purchase does not move it back
        "last_contact_at": "2024-01-12",
        "open_follow_ups": 0,
        "version": 9,  # registered, owner, call, follow-up, done, 4 purchases
    },
    "boris": {
        "owner_id": "ivan",
        "stage": "dead",
        "purchases_count": 1,
        "revenue": "400.00",
        "margin": "100.00",  # 400.00 - 300.00
        "last_purchase_at": "2024-03-10",
        "last_contact_at": "2024-01-22",
        "open_follow_ups": 0,
        "version": 6,  # registered, owner, call, follow-up, done, purchase
    },
    "clara": {
        "owner_id": "maria",
        "stage": "dead",
        "purchases_count": 2,  # the retried purchase counts once
        "revenue": "1100.00",  # 500.00 + 600.00
        "margin": "350.00",  # 150.00 + 200.00
        "last_purchase_at": "2025-02-01",
        "last_contact_at": None,
        "open_follow_ups": 1,
        "version": 6,  # registered, owner, purchase, lost, follow-up, purchase
    },
    "dmitri": {
        "owner_id": "ivan",
        "stage": "potential",
        "purchases_count": 0,
        "revenue": "0",
        "margin": "0",
        "last_purchase_at": None,
        "last_contact_at": "2024-02-12",
        "open_follow_ups": 1,
        "version": 4,  # registered, owner, call, follow-up
    },
    "elena": {
        "owner_id": "maria",
        "stage": "dead",
        "purchases_count": 0,
        "revenue": "0",
        "margin": "0",
        "last_purchase_at": None,
        "last_contact_at": "2024-03-05",
        "open_follow_ups": 0,
        "version": 4,  # registered, owner, email, lost
    },
}


@pytest.mark.parametrize("name", list(CARDS))
def test_the_client_card_holds_the_hand_computed_figures(story: Story, name: str) -> None:
    expected = CARDS[name]
    response = story.get("boss", f"/clients/{story.clients[name]}")
    assert response.status_code == 200, response.text
    card = response.json()
    assert response.headers["etag"] == f'"{expected["version"]}"'
    assert card["id"] == story.clients[name]
    assert card["name"] == NAMES[name]
    assert card["owner_id"] == expected["owner_id"]
    assert card["stage"] == expected["stage"]
    assert card["purchases_count"] == expected["purchases_count"]
    assert money(card["revenue"]) == Decimal(expected["revenue"])
    assert money(card["margin"]) == Decimal(expected["margin"])
    for key in ("last_purchase_at", "last_contact_at"):
        assert instant(card[key]) == (expected[key] and day(expected[key])), key
    assert card["open_follow_ups"] == expected["open_follow_ups"]
    assert card["version"] == expected["version"]


def test_contact_points_are_normalised_on_the_card(story: Story) -> None:
    anna = story.read("maria", f"/clients/{story.clients['anna']}")
    assert anna["phones"] == ["+49301234567"]  # "+49 30 1234567" in E.164
    assert anna["emails"] == ["anna@example.com"]  # lower-cased
    assert instant(anna["registered_at"]) == day("2024-01-10")


def test_a_manager_cannot_see_another_managers_client(story: Story) -> None:
    assert story.get("ivan", f"/clients/{story.clients['anna']}").status_code == 404
    assert story.get("maria", f"/clients/{story.clients['boris']}").status_code == 404
    assert story.get("ivan", f"/clients/{story.clients['zoe']}").status_code == 200  # unassigned


# ------------------------------------------------------------------ the directory


def test_the_directory_shows_a_manager_their_own_clients_and_unassigned_leads(
    story: Story,
) -> None:
    # Newest registration first.
    maria = story.read("maria", "/clients")
    assert [c["id"] for c in maria["items"]] == ids(story, "elena", "clara", "anna", "zoe")
    assert maria["next_cursor"] is None
    ivan = story.read("ivan", "/clients")
    assert [c["id"] for c in ivan["items"]] == ids(story, "dmitri", "boris", "zoe")


def test_the_directory_pages_through_every_client_for_the_admin(story: Story) -> None:
    first = story.read("boss", "/clients", limit=4)
    assert [c["id"] for c in first["items"]] == ids(story, "elena", "dmitri", "clara", "boris")
    assert first["next_cursor"]
    rest = story.read("boss", "/clients", limit=4, cursor=first["next_cursor"])
    assert [c["id"] for c in rest["items"]] == ids(story, "anna", "zoe")
    assert rest["next_cursor"] is None
    everyone = story.read("shop", "/clients")
    assert len(everyone["items"]) == 6


def test_the_directory_filters_by_the_stage_at_an_instant(story: Story) -> None:
    # On 2024-07-01: Boris dead since 06-08 (+1 µs), Clara since 03-15, Elena since
    # 04-01; Anna loyal since 06-10; Zoe and Dmitri potential.
    july = "2024-07-01T00:00:00Z"
    dead = story.read("boss", "/clients", stage="dead", as_of=july)
    assert [c["id"] for c in dead["items"]] == ids(story, "elena", "clara", "boris")
    loyal = story.read("boss", "/clients", stage="loyal", as_of=july)
    assert [c["id"] for c in loyal["items"]] == ids(story, "anna")
    marias_dead = story.read("maria", "/clients", stage="dead", as_of=july)
    assert [c["id"] for c in marias_dead["items"]] == ids(story, "elena", "clara")


# ------------------------------------------------------------------ lookup


def test_the_telephony_popup_finds_a_card_by_any_spelling_of_its_phone(story: Story) -> None:
    response = story.get("shop", "/clients/lookup", phone="0049 30 123-4567")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == story.clients["anna"]
    assert money(response.json()["revenue"]) == Decimal(CARDS["anna"]["revenue"])
    assert response.headers["etag"] == '"9"'
    by_email = story.read("audrey", "/clients/lookup", email="CLARA@Example.org")
    assert by_email["id"] == story.clients["clara"]
    by_maria = story.read("maria", "/clients/lookup", phone="+49301234567")
    assert by_maria["id"] == story.clients["anna"]


def test_the_telephony_popup_finds_nothing_for_unknown_or_hidden_numbers(story: Story) -> None:
    unknown = story.get("shop", "/clients/lookup", phone="+44 20 7946 0000")
    assert unknown.status_code == 404
    assert unknown.headers["content-type"].startswith("application/problem+json")
    assert story.get("ivan", "/clients/lookup", phone="+49301234567").status_code == 404
    boris = story.read("ivan", "/clients/lookup", phone="+79123456789")
    assert boris["id"] == story.clients["boris"]


# ------------------------------------------------------------------ lifecycle

Interval = tuple[str, datetime, datetime | None, str | None]

INTERVALS: dict[str, list[Interval]] = {
    "zoe": [("potential", day("2024-01-05"), None, None)],
    "anna": [
        ("potential", day("2024-01-10"), day("2024-02-10"), None),
        # third purchase within 365 days on 06-10 (02-10, 04-10, 06-10): loyal
        ("new", day("2024-02-10"), day("2024-06-10"), None),
        # last purchase 08-20 + 90 days = 11-18; dead one microsecond later
        ("loyal", day("2024-06-10"), day("2024-11-18") + US, None),
        ("dead", day("2024-11-18") + US, None, "inactivity"),
    ],
    "boris": [
        ("potential", day("2024-01-20"), day("2024-03-10"), None),
        # 03-10 + 90 days = 06-08 (21 + 30 + 31 + 8)
        ("new", day("2024-03-10"), day("2024-06-08") + US, None),
        ("dead", day("2024-06-08") + US, None, "inactivity"),
    ],
    "clara": [
        ("potential", day("2024-02-01"), day("2024-02-15"), None),
        ("new", day("2024-02-15"), day("2024-03-15"), None),
        ("dead", day("2024-03-15"), day("2025-02-01"), "competitor"),
        # 2025-02-01 + 90 days = 05-02 (27 + 31 + 30 + 2)
        ("returned", day("2025-02-01"), day("2025-05-02") + US, None),
        ("dead", day("2025-05-02") + US, None, "inactivity"),
    ],
    "dmitri": [("potential", day("2024-02-10"), None, None)],
    "elena": [
        ("potential", day("2024-03-01"), day("2024-04-01"), None),
        ("dead", day("2024-04-01"), None, "no_need"),  # lost without ever paying
    ],
}


def intervals(body: list[dict[str, Any]]) -> list[Interval]:
    return [
        (i["stage"], instant(i["valid_from"]), instant(i["valid_to"]), i["reason"]) for i in body
    ]


@pytest.mark.parametrize("name", list(INTERVALS))
def test_a_clients_lifecycle_is_exact_to_the_microsecond(story: Story, name: str) -> None:
    body = story.read("audrey", f"/clients/{story.clients[name]}/lifecycle")
    assert intervals(body) == INTERVALS[name]


def test_a_late_purchase_rewrites_the_lifecycle_before_it(story: Story) -> None:
    # Before the 04-10 purchase arrived Anna had bought on 02-10, 06-10 and 08-20: 121
    # days without a purchase after 02-10, so she died 02-10 + 90 days = 05-10 (+1 µs)
    # and returned on 06-10; since the return only 06-10 and 08-20 count (2 < 3), so
    # she stayed "returned" until 08-20 + 90 days. The late 04-10 purchase (60 and 61
    # days from its neighbours) erases that death and return: see INTERVALS["anna"].
    assert intervals(story.anna_before_late_purchase) == [
        ("potential", day("2024-01-10"), day("2024-02-10"), None),
        ("new", day("2024-02-10"), day("2024-05-10") + US, None),
        ("dead", day("2024-05-10") + US, day("2024-06-10"), "inactivity"),
        ("returned", day("2024-06-10"), day("2024-11-18") + US, None),
        ("dead", day("2024-11-18") + US, None, "inactivity"),
    ]


LIFECYCLE_COUNTS = {
    # before anyone registered
    "2024-01-01": {"potential": 0, "new": 0, "loyal": 0, "dead": 0, "returned": 0},
    # Zoe, Dmitri potential; Anna (02-10), Boris (03-10) new; Clara (03-15), Elena (04-01) dead
    "2024-05-01": {"potential": 2, "new": 2, "loyal": 0, "dead": 2, "returned": 0},
    # Anna loyal since 06-10; Boris dead since 06-08 (+1 µs)
    "2024-07-01": {"potential": 2, "new": 0, "loyal": 1, "dead": 3, "returned": 0},
    # Anna dead since 2024-11-18; Clara returned on 2025-02-01
    "2025-03-01": {"potential": 2, "new": 0, "loyal": 0, "dead": 3, "returned": 1},
    # Clara dead again since 2025-05-02
    "2025-12-31": {"potential": 2, "new": 0, "loyal": 0, "dead": 4, "returned": 0},
}


@pytest.mark.parametrize("as_of", list(LIFECYCLE_COUNTS))
def test_the_clients_per_stage_at_an_instant(story: Story, as_of: str) -> None:
    body = story.read("shop", "/lifecycle", as_of=f"{as_of}T00:00:00Z")
    assert instant(body["as_of"]) == day(as_of)
    assert body["counts"] == LIFECYCLE_COUNTS[as_of]


# ------------------------------------------------------------------ funnel

# (stage, reached, current, conversion_next, conversion_cumulative, avg days, median days)
Stage = tuple[str, int, int, float | None, float | None, float | None, float | None]

FUNNELS: dict[str, dict[str, Any]] = {
    # D1 and D2 are open (D3 opens 02-15). D1 went attraction 01-15, interest 01-20,
    # evaluation 02-01; D2 attraction 01-25, evaluation 02-05 (a skip counts as
    # passing interest). Finished stays: D1 attraction 5 days, D1 interest 12, D2
    # attraction 11. Both sit in evaluation; nothing is won yet (0 of 2 onwards).
    "2024-02-07": {
        "owner_id": None,
        "stages": [
            ("attraction", 2, 0, 2 / 2, 2 / 2, (5 + 11) / 2, 8.0),
            ("interest", 2, 0, 2 / 2, 2 / 2, 12.0, 12.0),
            ("evaluation", 2, 2, 0 / 2, 2 / 2, None, None),
        ],
        "won": 0,
        "lost": 0,
        "win_rate": None,
        "lost_reasons": {},
        "avg_sales_cycle_days": None,
    },
    # D1 won 02-10 (26 days after 01-15); D2 back to interest 02-15, lost 03-01
    # (price); D3 attraction 02-15, interest 03-01, open. Reached: attraction 3,
    # interest 3 (D2 went further, D3 is there), evaluation 2 (D1, D2).
    # Stays: attraction 5 (D1), 11 (D2), 15 (D3: 02-15 to 03-01 in a leap year);
    # interest 12 (D1), 15 (D2: 02-15 to 03-01); evaluation 9 (D1), 10 (D2).
    "2025-03-01": {
        "owner_id": None,
        "stages": [
            ("attraction", 3, 0, 3 / 3, 3 / 3, (5 + 11 + 15) / 3, 11.0),
            ("interest", 3, 1, 2 / 3, 3 / 3, (12 + 15) / 2, 13.5),
            ("evaluation", 2, 0, 1 / 2, 2 / 3, (9 + 10) / 2, 9.5),  # next: won 1 of 2
        ],
        "won": 1,
        "lost": 1,
        "win_rate": 1 / 2,
        "lost_reasons": {"price": 1},
        "avg_sales_cycle_days": 26.0,
    },
    # ivan's deals only: D2 (lost) and D3 (open in interest).
    "2025-03-01/ivan": {
        "owner_id": "ivan",
        "stages": [
            ("attraction", 2, 0, 2 / 2, 2 / 2, (11 + 15) / 2, 13.0),
            ("interest", 2, 1, 1 / 2, 2 / 2, 15.0, 15.0),
            ("evaluation", 1, 0, 0 / 1, 1 / 2, 10.0, 10.0),
        ],
        "won": 0,
        "lost": 1,
        "win_rate": 0.0,
        "lost_reasons": {"price": 1},
        "avg_sales_cycle_days": None,
    },
}


def approx(value: float | None) -> Any:
    return None if value is None else pytest.approx(value, abs=1e-6)


@pytest.mark.parametrize("case", list(FUNNELS))
def test_the_funnel_at_an_instant(story: Story, case: str) -> None:
    expected = FUNNELS[case]
    as_of = case.split("/", maxsplit=1)[0]
    params: dict[str, Any] = {"as_of": f"{as_of}T00:00:00Z"}
    if expected["owner_id"]:
        params["owner_id"] = expected["owner_id"]
    body = story.read("boss", "/funnel", **params)
    (pipeline,) = story.read("shop", "/pipelines")
    assert body["pipeline_id"] == pipeline["id"]
    assert instant(body["as_of"]) == day(as_of)
    stages = [
        (
            s["stage"],
            s["reached"],
            s["current"],
            s["conversion_next"],
            s["conversion_cumulative"],
            s["avg_days_in_stage"],
            s["median_days_in_stage"],
        )
        for s in body["stages"]
    ]
    assert stages == [
        (name, reached, current, *(approx(v) for v in rest))
        for name, reached, current, *rest in expected["stages"]
    ]
    assert body["won"] == expected["won"]
    assert body["lost"] == expected["lost"]
    assert body["win_rate"] == approx(expected["win_rate"])
    assert body["lost_reasons"] == expected["lost_reasons"]
    assert body["avg_sales_cycle_days"] == approx(expected["avg_sales_cycle_days"])


def test_the_default_pipeline(story: Story) -> None:
    (pipeline,) = story.read("maria", "/pipelines")
    assert pipeline["name"] == "default"
    assert pipeline["stages"] == ["attraction", "interest", "evaluation"]
    assert pipeline["version"] == 1


# ------------------------------------------------------------------ KPIs

# Purchases (amount / cost, margin): Anna 02-10 1000.00/600.00 (400.00), 04-10
# 199.90/119.95 (79.95), 06-10 300.00/180.00 (120.00), 08-20 500.00/300.00 (200.00);
# Boris 03-10 400.00/300.00 (100.00); Clara 2024-02-15 500.00/350.00 (150.00),
# 2025-02-01 600.00/400.00 (200.00). Deaths: Clara 2024-03-15 competitor, Elena
# 2024-04-01 no_need, Boris 2024-06-08 (+1 µs) inactivity, Anna 2024-11-18 (+1 µs)
# inactivity, Clara 2025-05-02 (+1 µs) inactivity. clv = avg_check x purchases per
# customer-year x margin_ratio x lifetime in years = total margin / paying clients.
KPIS: dict[str, dict[str, Any]] = {
    "2024-07-01": {
        "clients_total": 6,
        "stage_counts": {"potential": 2, "new": 0, "loyal": 1, "dead": 3, "returned": 0},
        "dead_clients": 3,
        # live: Zoe (never touched, registered 01-05) and Dmitri (last call 02-12) are
        # before 06-01; Anna bought on 06-10
        "no_contact_over_30d": 2,
        "no_contact_over_180d": 0,  # 180 days before is 2024-01-03: Zoe came 01-05
        "lost_per_year": {"2024": 3},  # Clara, Elena, Boris
        "churn_reasons": {"competitor": 1, "inactivity": 1, "no_need": 1},
        # Anna 3 (1000.00 + 199.90 + 300.00), Boris 1 (400.00), Clara 1 (500.00)
        "avg_purchases_per_client": 5 / 3,
        "avg_check": Decimal("479.9800"),  # 2399.90 / 5
        "avg_margin": Decimal("169.9900"),  # (599.95 + 100.00 + 150.00) = 849.95 / 5
        "margin_ratio": 849.95 / 2399.90,
        # first purchase to T or death: Anna 02-10..07-01 = 142, Boris 90 (+1 µs),
        # Clara 02-15..03-15 = 29
        "avg_customer_lifetime_days": (142 + 90 + 29) / 3,
        # from registration: Anna 01-10..07-01 = 173, Boris 01-20..06-08 = 140,
        # Clara 02-01..03-15 = 43
        "avg_lifecycle_days": (173 + 140 + 43) / 3,
        "churn_rate": None,  # nobody was a paying client on 2023-07-02
        "clv": Decimal("283.3167"),  # 849.95 / 3 = 283.31666…
    },
    "2025-03-01": {
        "clients_total": 6,
        "stage_counts": {"potential": 2, "new": 0, "loyal": 0, "dead": 3, "returned": 1},
        "dead_clients": 3,
        # live: Zoe, Dmitri (2024-02-12) and Clara (bought 2025-02-01, after 01-30)
        "no_contact_over_30d": 2,
        "no_contact_over_180d": 2,  # Zoe and Dmitri, before 2024-09-02
        "lost_per_year": {"2024": 4},  # Clara, Elena, Boris, Anna
        "churn_reasons": {"competitor": 1, "inactivity": 2, "no_need": 1},
        "avg_purchases_per_client": 7 / 3,
        "avg_check": Decimal("499.9857"),  # 3499.90 / 7 = 499.985714…
        "avg_margin": Decimal("178.5643"),  # 1249.95 / 7 = 178.564285…
        "margin_ratio": 1249.95 / 3499.90,
        # Anna 02-10..11-18 = 282, Boris 90, Clara (returned, alive) 2024-02-15..T = 380
        "avg_customer_lifetime_days": (282 + 90 + 380) / 3,
        # Anna 01-10..11-18 = 313, Boris 140, Clara 2024-02-01..T = 394
        "avg_lifecycle_days": (313 + 140 + 394) / 3,
        # paying on 2024-03-01 (365 days before): Anna and Clara (both new); both
        # died since (Clara 2024-03-15, Anna 2024-11-18)
        "churn_rate": 2 / 2,
        "clv": Decimal("416.6500"),  # 1249.95 / 3
    },
    "2025-12-31": {
        "clients_total": 6,
        "stage_counts": {"potential": 2, "new": 0, "loyal": 0, "dead": 4, "returned": 0},
        "dead_clients": 4,
        "no_contact_over_30d": 2,  # Zoe and Dmitri
        "no_contact_over_180d": 2,
        "lost_per_year": {"2024": 4, "2025": 1},  # Clara again, 2025-05-02
        "churn_reasons": {"competitor": 1, "inactivity": 3, "no_need": 1},
        "avg_purchases_per_client": 7 / 3,
        "avg_check": Decimal("499.9857"),
        "avg_margin": Decimal("178.5643"),
        "margin_ratio": 1249.95 / 3499.90,
        # Clara now ends at her death: 2024-02-15..2025-05-02 = 442
        "avg_customer_lifetime_days": (282 + 90 + 442) / 3,
        # Clara 2024-02-01..2025-05-02 = 456
        "avg_lifecycle_days": (313 + 140 + 456) / 3,
        "churn_rate": None,  # on 2024-12-31 nobody was a paying client
        "clv": Decimal("416.6500"),
    },
}


@pytest.mark.parametrize("as_of", list(KPIS))
def test_the_kpis_at_an_instant(story: Story, as_of: str) -> None:
    body = story.read("shop", "/kpis", as_of=f"{as_of}T00:00:00Z")
    assert instant(body["as_of"]) == day(as_of)
    for key, expected in KPIS[as_of].items():
        actual = body[key]
        if isinstance(expected, Decimal):
            assert money(actual) == expected, key
        elif isinstance(expected, float):
            assert actual == pytest.approx(expected, abs=1e-6), key
        else:
            assert actual == expected, key


# ------------------------------------------------------------------ audit trail


def entries(
    event: str,
    who: tuple[str, str],
    correlation_id: str,
    deal: str | None,
    on: str,
    *changes: tuple[str | None, str | None, str | None],
) -> list[tuple[Any, ...]]:
    """Expected audit entries of one event: one per changed field, else one."""
    return [
        (event, name, old, new, who, correlation_id, deal, day(on))
        for name, old, new in changes or ((None, None, None),)
    ]


def test_the_audit_trail_of_one_client(story: Story) -> None:
    anna, d1 = story.clients["anna"], story.deals["d1"]
    (pipeline,) = story.read("audrey", "/pipelines")
    trail: list[dict[str, Any]] = []
    cursor = None
    while True:  # ten at a time, following the cursor
        params: dict[str, Any] = {"client_id": anna, "limit": 10}
        if cursor:
            params["cursor"] = cursor
        page = story.read("audrey", "/audit", **params)
        trail += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    boss, maria = ("boss", "admin"), ("maria", "manager")
    registered = "ClientRegistered", boss, "lead-anna", None, "2024-01-10"
    opened = "DealOpened", maria, "d1-open", d1, "2024-01-15"
    # (event, field, old, new, (actor, role), correlation id, deal, occurred on)
    expected = [
        *entries(*registered, ("name", None, "Anna Schmidt"), ("kind", None, "person")),
        *entries(*registered, ("phones", None, '["+49301234567"]')),
        *entries(*registered, ("emails", None, '["anna@example.com"]')),
        *entries(*registered, ("channel", None, "website")),
        *entries(
            "OwnerAssigned", boss, "lead-anna", None, "2024-01-10", ("owner_id", None, "maria")
        ),
        *entries("ContactMade", maria, "anna-call", None, "2024-01-12"),
        *entries("FollowUpScheduled", maria, "anna-follow-up", None, "2024-01-12"),
        *entries("FollowUpCompleted", maria, "anna-follow-up-done", None, "2024-01-14"),
        *entries(*opened, ("title", None, "Office chairs"), ("amount", None, "1000.00")),
        *entries(*opened, ("currency", None, "EUR"), ("stage", None, "attraction")),
        *entries(*opened, ("owner_id", None, "maria"), ("pipeline_id", None, pipeline["id"])),
        *entries(
            "DealStageChanged",
            maria,
            "d1-interest",
            d1,
            "2024-01-20",
            ("stage", "attraction", "interest"),
        ),
        *entries(
            "DealStageChanged",
            maria,
            "d1-evaluation",
            d1,
            "2024-02-01",
            ("stage", "interest", "evaluation"),
        ),
        *entries("DealWon", maria, "d1-win", d1, "2024-02-10"),
        *entries("PurchaseMade", maria, "d1-win", None, "2024-02-10"),
        *entries("PurchaseMade", maria, "anna-buys-2024-06-10", None, "2024-06-10"),
        *entries("PurchaseMade", maria, "anna-buys-2024-08-20", None, "2024-08-20"),
        *entries("PurchaseMade", maria, "anna-buys-2024-04-10", None, "2024-04-10"),
    ]
    actual = [
        (
            e["event_type"],
            e["field"],
            e["old_value"],
            e["new_value"],
            (e["actor_id"], e["actor_role"]),
            e["correlation_id"],
            e["deal_id"],
            instant(e["occurred_at"]),
        )
        for e in trail
    ]
    assert actual == expected
    assert all(e["client_id"] == anna for e in trail)
    assert all(e["source"] == "api" for e in trail)
    assert all(e["redacted"] is False for e in trail)
    positions = [(e["position"], e["seq"]) for e in trail]
    assert positions == sorted(set(positions))
    # The owner was assigned by the round-robin; the win caused the purchase.
    assert '"round_robin"' in trail[5]["details"]
    won, bought = trail[17], trail[18]
    assert bought["causation_id"] == f"{d1}@4"  # D1's fourth event: the win
    assert bought["position"] > won["position"]
    assert [e["causation_id"] for e in trail if e is not bought] == [None] * 21


# ------------------------------------------------------------------ event feed


def test_the_event_feed_holds_every_event_in_order(story: Story) -> None:
    items: list[dict[str, Any]] = []
    after = 0
    while True:  # twelve at a time, following next_after
        page = story.read("shop", "/events", wait=False, after=after, limit=12)
        items += page["items"]
        if not page["items"]:
            assert page["next_after"] == after
            break
        after = page["next_after"]
        assert after == page["items"][-1]["position"]
    positions = [e["position"] for e in items]
    assert all(a < b for a, b in itertools.pairwise(positions)), positions
    # Between the writes: the records of the other tests' reads of personal values,
    # by users who may read them (the service's own reads record nothing).
    reads = [e for e in items if e["event_type"] == "DataExported"]
    assert {e["actor_id"] for e in reads} <= {"boss", "audrey", "maria", "ivan"}
    items = [e for e in items if e["event_type"] != "DataExported"]
    # The service may not read personal values: the feed leaves them out and names them.
    registered = [e for e in items if e["event_type"] == "ClientRegistered"]
    assert len(registered) == len(NAMES)
    assert all("name" not in e["payload"] and "name" in e["redacted"] for e in registered)
    assert not any(name in str(items) for name in NAMES.values())
    # The store starts with the default pipeline, defined by the system.
    (pipeline,) = story.read("shop", "/pipelines")
    first = items[0]
    assert (first["event_type"], first["aggregate_id"]) == ("PipelineDefined", pipeline["id"])
    assert (first["actor_id"], first["actor_role"], first["source"]) == (
        "system",
        "system",
        "system",
    )
    expected = [
        (kind, subject, w.actor, w.role, "api", w.correlation_id, w.occurred_at)
        for w in story.writes
        for kind, subject in w.events
    ]
    actual = [
        (
            e["event_type"],
            e["aggregate_id"],
            e["actor_id"],
            e["actor_role"],
            e["source"],
            e["correlation_id"],
            instant(e["occurred_at"]),
        )
        for e in items[1:]
    ]
    assert actual == expected  # every event, and nothing more (the retry added none)
    # Each write answered with the position of its last event.
    ends = []
    index = 1
    for w in story.writes:
        index += len(w.events)
        ends.append(items[index - 1]["position"])
    assert ends == [w.position for w in story.writes]
    # Payloads: money as exact strings, the win's purchase caused by the win.
    anna_purchases = [
        e["payload"]
        for e in items
        if e["event_type"] == "PurchaseMade" and e["aggregate_id"] == story.clients["anna"]
    ]
    assert [(p["amount"], p["cost"]) for p in anna_purchases] == [
        ("1000.00", "600.00"),
        ("300.00", "180.00"),
        ("500.00", "300.00"),
        ("199.90", "119.95"),
    ]
    assert [p["deal_id"] for p in anna_purchases] == [story.deals["d1"], None, None, None]
    assigned = [e["payload"] for e in items if e["event_type"] == "OwnerAssigned"]
    assert [(p["owner_id"], p["reason"]) for p in assigned] == [
        ("maria", "round_robin"),
        ("ivan", "round_robin"),
        ("maria", "round_robin"),
        ("ivan", "round_robin"),
        ("maria", "round_robin"),
    ]


def test_a_retried_write_with_the_same_idempotency_key_records_nothing_new(
    story: Story,
) -> None:
    retried = story.retried
    assert retried["status"] == 200
    assert retried["id"] == story.clients["clara"]
    assert retried["position"] == retried["first_position"] == story.position
    assert retried["version"] == 6


# ------------------------------------------------------------------ deals


def test_the_deal_cards(story: Story) -> None:
    (pipeline,) = story.read("shop", "/pipelines")
    expected = {
        # D1: opened 01-15, moved twice, won 02-10 (4 events); D2: opened 01-25, moved
        # twice, lost 03-01 (4); D3: opened 02-15, moved 03-01 (2)
        "d1": ("maria", "anna", "Office chairs", "1000.00", "evaluation", "won"),
        "d2": ("ivan", "boris", "Laptops", "800.00", "interest", "lost"),
        "d3": ("ivan", "dmitri", "Printer", "300.00", "interest", "open"),
    }
    dates = {
        "d1": ("2024-01-15", "2024-02-10", 4),
        "d2": ("2024-01-25", "2024-03-01", 4),
        "d3": ("2024-02-15", "2024-03-01", 2),
    }
    for deal, (owner, client, title, amount, stage, status) in expected.items():
        opened, updated, version = dates[deal]
        reader = owner
        response = story.get(reader, f"/deals/{story.deals[deal]}")
        assert response.status_code == 200, response.text
        card = response.json()
        assert response.headers["etag"] == f'"{version}"'
        assert card["id"] == story.deals[deal]
        assert card["client_id"] == story.clients[client]
        assert card["pipeline_id"] == pipeline["id"]
        assert card["title"] == title
        assert money(card["amount"]) == Decimal(amount), deal
        assert card["currency"] == "EUR"
        assert (card["owner_id"], card["stage"], card["status"]) == (owner, stage, status), deal
        assert instant(card["opened_at"]) == day(opened), deal
        assert instant(card["updated_at"]) == day(updated), deal
        assert card["version"] == version, deal
    assert story.get("ivan", f"/deals/{story.deals['d1']}").status_code == 404
    assert story.get("maria", f"/deals/{story.deals['d2']}").status_code == 404


# ------------------------------------------------------------------ work queue


def test_the_work_queue_shows_each_manager_their_overdue_follow_ups(story: Story) -> None:
    def queue(user: str) -> list[tuple[Any, ...]]:
        return [
            (
                row["task_id"],
                row["client_id"],
                row["assignee_id"],
                instant(row["due_at"]),
                instant(row["scheduled_at"]),
                row["overdue"],
            )
            for row in story.read(user, "/work-queue")["items"]
        ]

    clara = (
        story.tasks["clara"],
        story.clients["clara"],
        "maria",
        day("2024-04-01"),
        day("2024-03-16"),
        True,
    )
    dmitri = (
        story.tasks["dmitri"],
        story.clients["dmitri"],
        "ivan",
        day("2024-02-20"),
        day("2024-02-12"),
        True,
    )
    assert queue("maria") == [clara]  # Anna's follow-up was done
    assert queue("ivan") == [dmitri]  # Boris's follow-up was done (late)
    assert queue("boss") == [dmitri, clara]  # earliest due first
    assert queue("audrey") == queue("shop") == [dmitri, clara]  # they read everyone's


def test_what_each_manager_did_in_2024(story: Story) -> None:
    body = story.read(
        "boss", "/activity", wait=False, since="2024-01-01T00:00:00Z", until="2025-01-01T00:00:00Z"
    )
    assert body["next_cursor"] is None
    assert body["items"] == [
        # ivan: calls to Boris and Dmitri; Boris's follow-up done late; D2 moved twice,
        # D3 once
        {
            "actor_id": "ivan",
            "contacts": 2,
            "follow_ups_on_time": 0,
            "follow_ups_late": 1,
            "deals_moved": 3,
            "deals_won": 0,
            # Boris and Dmitri each called two days after registering; none unanswered
            "unanswered_leads": 0,
            "median_first_response_minutes": 2 * 24 * 60.0,
        },
        # maria: call to Anna, email from Elena; Anna's follow-up on time; D1 moved
        # twice and won
        {
            "actor_id": "maria",
            "contacts": 2,
            "follow_ups_on_time": 1,
            "follow_ups_late": 0,
            "deals_moved": 2,
            "deals_won": 1,
            # Anna called after 2 days, Elena answered after 4; Clara never called (she
            # bought, so she is no unanswered lead): the median of 2 and 4 days
            "unanswered_leads": 0,
            "median_first_response_minutes": 3 * 24 * 60.0,
        },
    ]


# ------------------------------------------------------------------ history


def test_an_auditor_reads_a_clients_history_decrypted(story: Story) -> None:
    history = story.read("audrey", f"/clients/{story.clients['anna']}/history", wait=False)
    events = history["items"]
    assert history["next_cursor"] is None
    assert [e["event_type"] for e in events] == [
        "ClientRegistered",
        "OwnerAssigned",
        "ContactMade",
        "FollowUpScheduled",
        "FollowUpCompleted",
        *["PurchaseMade"] * 4,
    ]
    assert [e["version"] for e in events] == list(range(1, 10))
    assert events[0]["payload"]["name"] == "Anna Schmidt"
    assert events[0]["payload"]["phones"] == ["+49301234567"]
    assert events[2]["payload"]["summary"] == "call with anna"
    assert [instant(e["occurred_at"]) for e in events[5:]] == [
        day("2024-02-10"),
        day("2024-06-10"),
        day("2024-08-20"),
        day("2024-04-10"),
    ]


# ------------------------------------------------------------------ operations


def _settled(story: Story) -> int:
    """The store's head, once the read models have reached it. Reads of personal
    values (by the auditor, the admin, the managers) record ``DataExported`` events
    after the story's last write; the service's reads record none."""
    head: int = story.get(None, "/health", wait=False).json()["head_position"]
    assert head >= story.position
    story.read("shop", "/lifecycle", wait=False, min_position=head)
    return head


def test_health_says_the_read_models_have_caught_up(story: Story) -> None:
    head = _settled(story)
    response = story.get(None, "/health", wait=False)  # no token needed
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "store": story.store,
        "head_position": head,
        "read_models_position": head,
    }


def test_metrics_show_no_projection_lag(story: Story) -> None:
    settled = _settled(story)
    response = story.get("shop", "/metrics", wait=False)
    assert response.status_code == 200
    text = response.text
    head = re.search(r"^crm_events_head_position (\S+)$", text, re.MULTILINE)
    assert head is not None
    assert float(head[1]) == settled
    lag = re.compile(r'^crm_projection_lag_events\{read_model="(\w+)"\} (\S+)$', re.MULTILINE)
    lags = lag.findall(text)
    assert lags
    assert all(float(lag) == 0 for _, lag in lags), lags
