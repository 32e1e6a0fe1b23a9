"""Webhook delivery against a real receiver on 127.0.0.1, on SQLite and PostgreSQL:
every event arrives once in position order and verifies with the Standard Webhooks
library; a receiver that fails for a while gets everything with only the retried
messages twice; replays, pauses, the failing state; follow-ups ringing and leads
flagged once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from standardwebhooks.webhooks import Webhook

from adapters.projector import Backoff
from adapters.read_models.work_queue import WorkQueueReadModel
from api.bootstrap import Crm, bootstrap
from api.push import create_subscription, deliver_until_stopped, list_subscriptions
from application import clients
from application.subscriptions import PauseSubscription, ReplaySubscription, ResumeSubscription
from domain.envelope import Envelope
from domain.errors import InvalidValue
from tests.conftest import make_settings
from tests.receiver import Receiver, receiver

ADMIN = Envelope(actor_id="alice", actor_role="admin", source="api", correlation_id="t")
BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def push_settings(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    overrides: dict[str, Any] = {"webhook_allow_private": True, "lead_response_minutes": 0.03}
    if request.param == "postgresql":
        overrides["database_schema"] = request.getfixturevalue("postgres_schema")
    return make_settings(request.param, tmp_path, **overrides)


@pytest.fixture
def crm(push_settings: Any) -> Iterator[Crm]:
    with bootstrap(push_settings) as product:
        product.users.add("maria", "manager")
        product.projector()  # the read models' tables, as every process makes them
        yield product


@pytest.fixture
def hook() -> Iterator[Receiver]:
    with receiver() as r:
        yield r


@contextmanager
def delivering(crm: Crm) -> Iterator[None]:
    """A delivery process (its own models, the timer) in a thread, quick retries."""
    stop = threading.Event()
    thread = threading.Thread(
        target=deliver_until_stopped,
        args=(crm, stop),
        kwargs={"own_models": True, "backoff": lambda: Backoff(first=0.05, cap=0.2)},
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=15)
        assert not thread.is_alive()


def register(crm: Crm, name: str, **fields: Any) -> UUID:
    return crm.app.execute(clients.RegisterClient(name=name, **fields), ADMIN).id


def buy(crm: Crm, client_id: UUID, amount: str) -> None:
    crm.app.execute(
        clients.RecordPurchase(client_id=client_id, amount=Decimal(amount), currency="EUR"), ADMIN
    )


def status(crm: Crm) -> list[str]:
    return [s["status"] for s in list_subscriptions(crm)]


def positions_after(crm: Crm, position: int) -> list[int]:
    head = crm.app.recorder.max_notification_id() or 0
    return [n.id for n in crm.app.recorder.select_notifications(start=position + 1, limit=head + 1)]


def test_every_event_arrives_once_in_order_and_verifies_with_the_library(
    crm: Crm, hook: Receiver
) -> None:
    created = create_subscription(crm, ADMIN, url=hook.url, events=["*"])
    secret = created.secret
    assert secret.startswith("whsec_")
    ann = register(crm, "Ann Lee", phones=["+49301234567"])
    for amount in ("10", "20", "30"):
        buy(crm, ann, amount)
    expected = positions_after(crm, created.result.position or 0)

    with delivering(crm):
        assert hook.wait_for(lambda r: len(r.delivered()) >= len(expected))
        bob = register(crm, "Bob")  # recorded while it runs: follows at once
        expected += positions_after(crm, expected[-1])
        assert hook.wait_for(lambda r: len(r.delivered()) >= len(expected))

    assert hook.positions() == expected  # each once, in position order, none skipped
    webhook = Webhook(secret)
    for request in hook.delivered():
        assert webhook.verify(request.body, request.headers) == request.json
    first = hook.delivered()[0].json
    assert first["type"] == "Client.ClientRegistered"
    assert first["aggregate_id"] == str(ann)
    assert set(first) >= {"type", "id", "position", "occurred_at", "recorded_at", "version"}
    assert first["envelope"] == {
        "actor": "alice",
        "role": "admin",
        "source": "api",
        "correlation_id": "t",
        "causation_id": None,
    }
    assert "name" not in first["data"]  # no include_personal: personal fields left out
    assert {"name", "phones"} <= set(first["redacted"])
    assert hook.delivered()[-1].json["aggregate_id"] in (str(bob), str(ann))
    purchase = next(r.json for r in hook.delivered() if r.json["type"] == "Client.PurchaseMade")
    assert purchase["data"]["amount"] == "10"
    (listed,) = list_subscriptions(crm)
    assert listed["delivered_position"] == expected[-1]
    assert listed["lag"] == 0
    assert listed["deliveries"] == len(expected)


def test_personal_fields_travel_only_when_asked_by_someone_who_may_read_them(
    crm: Crm, hook: Receiver
) -> None:
    create_subscription(
        crm, ADMIN, url=hook.url, events=["Client.ClientRegistered"], include_personal=True
    )
    register(crm, "Ann Lee")
    with delivering(crm):
        assert hook.wait_for(lambda r: len(r.delivered()) == 1)
    (body,) = [r.json for r in hook.delivered()]
    assert body["data"]["name"] == "Ann Lee"
    assert "redacted" not in body
    service = Envelope(actor_id="bot", actor_role="service", source="api", correlation_id="s")
    with pytest.raises(Exception, match="permission to read personal data"):
        create_subscription(crm, service, url=hook.url, events=["*"], include_personal=True)


def test_a_receiver_failing_for_a_while_gets_everything_and_only_retries_twice(
    crm: Crm, hook: Receiver
) -> None:
    created = create_subscription(crm, ADMIN, url=hook.url, events=["Client.*"])
    ann = register(crm, "Ann")
    for amount in ("1", "2", "3", "4", "5"):
        buy(crm, ann, amount)
    expected = positions_after(crm, created.result.position or 0)
    failed_until = time.monotonic() + 1.0
    hook.fail_for = lambda _: time.monotonic() < failed_until

    with delivering(crm):
        assert hook.wait_for(lambda r: len(r.delivered()) >= len(expected))

    assert hook.positions() == expected  # no gap, in order
    refused = [r for r in hook.requests if r.status == 500]
    assert refused  # it did fail, and was retried
    ids = [r.headers["webhook-id"] for r in hook.requests]
    assert {i for i in ids if ids.count(i) > 1} <= {r.headers["webhook-id"] for r in refused}
    assert len(set(ids)) == len(expected)
    (listed,) = list_subscriptions(crm)
    assert listed["failures"] == len(refused)
    assert listed["last_error"] == "HTTP 500"


def test_after_the_max_age_of_failures_it_is_failing_and_resumes_where_it_stopped(
    push_settings: Any, hook: Receiver
) -> None:
    with bootstrap(push_settings.model_copy(update={"webhook_max_age": 0.5})) as crm:
        crm.projector()
        created = create_subscription(crm, ADMIN, url=hook.url, events=["*"])
        ann = register(crm, "Ann")
        hook.fail_for = lambda _: True
        with delivering(crm):
            assert hook.wait_for(lambda _: status(crm) == ["failing"])
        assert hook.delivered() == []
        (listed,) = list_subscriptions(crm)
        assert listed["delivered_position"] == created.result.position
        assert listed["failing_since"] is not None
        hook.fail_for = lambda _: False
        crm.app.execute(ResumeSubscription(subscription_id=created.result.id), ADMIN)
        buy(crm, ann, "5")
        expected = positions_after(crm, created.result.position or 0)
        # the failing mark and the resumption are events too, delivered in their turn
        with delivering(crm):
            assert hook.wait_for(lambda r: len(r.delivered()) >= len(expected))
        assert hook.positions() == expected
        (listed,) = list_subscriptions(crm)
        assert (listed["status"], listed["failing_since"]) == ("active", None)
        assert listed["last_error"] == "HTTP 500"  # what went wrong last, kept


def test_a_replay_delivers_again_from_a_position_and_a_pause_stops_deliveries(
    crm: Crm, hook: Receiver
) -> None:
    created = create_subscription(crm, ADMIN, url=hook.url, events=["Client.PurchaseMade"])
    ann = register(crm, "Ann")
    buy(crm, ann, "1")
    buy(crm, ann, "2")
    with delivering(crm):
        assert hook.wait_for(lambda r: len(r.delivered()) == 2)
        first = hook.positions()
        crm.app.execute(
            ReplaySubscription(subscription_id=created.result.id, from_position=first[1]),
            ADMIN,
        )
        assert hook.wait_for(lambda r: len(r.delivered()) == 3)
        assert hook.positions() == [*first, first[1]]
        crm.app.execute(  # "again from" a position not reached yet: skips nothing
            ReplaySubscription(subscription_id=created.result.id, from_position=10**9), ADMIN
        )
        crm.app.execute(PauseSubscription(subscription_id=created.result.id), ADMIN)
        assert hook.wait_for(lambda _: status(crm) == ["paused"])
        time.sleep(0.6)  # the delivery process has seen the pause
        buy(crm, ann, "3")
        time.sleep(0.6)
        assert len(hook.delivered()) == 3
        crm.app.execute(ResumeSubscription(subscription_id=created.result.id), ADMIN)
        assert hook.wait_for(lambda r: len(r.delivered()) == 4)
        register(crm, "Bob")  # not a purchase: nothing to send, yet no lag either
        head = crm.app.recorder.max_notification_id()
        assert hook.wait_for(lambda _: list_subscriptions(crm)[0]["delivered_position"] == head)
        assert list_subscriptions(crm)[0]["lag"] == 0
    assert len(hook.delivered()) == 4


def test_a_destination_on_a_private_network_is_refused_unless_allowed(tmp_path: Path) -> None:
    with bootstrap(make_settings("sqlite", tmp_path)) as crm:
        for url in ("http://127.0.0.1:9/x", "http://10.1.2.3/x", "http://[::1]/x"):
            with pytest.raises(InvalidValue, match="private"):
                create_subscription(crm, ADMIN, url=url, events=["*"])
        with pytest.raises(InvalidValue, match="http"):
            create_subscription(crm, ADMIN, url="ftp://example.org/x", events=["*"])
        with pytest.raises(InvalidValue, match="password"):
            create_subscription(crm, ADMIN, url="https://u:p@example.org/x", events=["*"])


def test_a_follow_up_due_in_a_moment_rings_once_and_a_completed_one_never(
    crm: Crm, hook: Receiver
) -> None:
    create_subscription(crm, ADMIN, url=hook.url, events=["FollowUp.Due"])
    ann = register(crm, "Ann Lee", phones=["+49301234567"], owner_id="maria")
    kyiv = timezone_plus_two()
    due = (datetime.now(UTC) + timedelta(seconds=2)).astimezone(kyiv)
    ring = crm.app.execute(
        clients.ScheduleFollowUp(client_id=ann, due_at=due, note="call back"), ADMIN
    ).extra["task_id"]
    done = crm.app.execute(
        clients.ScheduleFollowUp(client_id=ann, due_at=due, note="never mind"), ADMIN
    ).extra["task_id"]
    crm.app.execute(clients.CompleteFollowUp(client_id=ann, task_id=UUID(done)), ADMIN)

    with delivering(crm):
        assert hook.wait_for(lambda r: len(r.delivered()) == 1, timeout=10)
        rang_at = datetime.now(UTC)
    with delivering(crm):  # a restart rings nothing again
        time.sleep(1.0)

    assert rang_at - due < timedelta(seconds=5)
    (body,) = [r.json for r in hook.delivered()]
    assert body["type"] == "FollowUp.Due"
    assert body["data"]["task_id"] == ring
    assert body["data"]["due_at"] == due.isoformat()  # the assignee's offset kept
    dues = [
        n
        for n in crm.app.recorder.select_notifications(start=1, limit=10_000)
        if n.topic.endswith("FollowUpDue")
    ]
    assert len(dues) == 1
    crm.projector().catch_up()
    items = crm.model(WorkQueueReadModel).items(now=datetime.now(UTC), assignee_id="maria")
    (item,) = items
    assert item.kind == "FollowUpDue"
    assert item.note == "call back"
    assert item.client_name == "Ann Lee"
    assert item.phones == ("+49301234567",)
    assert item.due_at.utcoffset() == timedelta(hours=2)


def test_a_lead_left_unanswered_past_the_limit_is_flagged_once(crm: Crm, hook: Receiver) -> None:
    create_subscription(crm, ADMIN, url=hook.url, events=["Lead.Unanswered"])
    lost = register(crm, "Lost Lead", owner_id="maria")
    answered = register(crm, "Called Back", owner_id="maria")
    crm.app.execute(
        clients.RecordContact(client_id=answered, channel="call", direction="outbound"), ADMIN
    )
    crm.users.revoke("maria")  # no manager left: the next lead stays unassigned
    unassigned = register(crm, "Nobody's")

    with delivering(crm):
        assert hook.wait_for(lambda r: len(r.delivered()) == 2, timeout=10)
        time.sleep(0.6)
    with delivering(crm):  # a restart flags nothing again
        time.sleep(0.8)

    flagged = {r.json["aggregate_id"] for r in hook.delivered()}
    assert flagged == {str(lost), str(unassigned)}
    assert len(hook.delivered()) == 2
    crm.projector().catch_up()
    model = crm.model(WorkQueueReadModel)
    (mine,) = model.items(now=datetime.now(UTC), assignee_id="maria")
    assert (mine.kind, mine.client_id) == ("LeadUnanswered", lost)
    everyone = model.items(now=datetime.now(UTC))
    assert {(i.kind, i.assignee_id) for i in everyone} == {
        ("LeadUnanswered", "maria"),
        ("LeadUnanswered", None),
    }
    crm.app.execute(
        clients.RecordContact(client_id=lost, channel="call", direction="outbound"), ADMIN
    )
    crm.projector().catch_up()
    assert model.items(now=datetime.now(UTC), assignee_id="maria") == []


def timezone_plus_two() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=2))


def test_two_delivery_processes_deliver_each_subscription_once(crm: Crm, hook: Receiver) -> None:
    created = create_subscription(crm, ADMIN, url=hook.url, events=["Client.*"])
    ann = register(crm, "Ann")
    for amount in ("1", "2", "3"):
        buy(crm, ann, amount)
    with delivering(crm), delivering(crm):  # each with its own lock or lease
        expected = positions_after(crm, created.result.position or 0)
        assert hook.wait_for(lambda r: len(r.delivered()) >= len(expected))
        buy(crm, ann, "4")
        expected = positions_after(crm, created.result.position or 0)
        assert hook.wait_for(lambda r: len(r.delivered()) >= len(expected))
        time.sleep(0.3)
    assert hook.positions() == expected  # none twice
