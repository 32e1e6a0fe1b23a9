"""Push in the domain: the Subscription aggregate's rules, a follow-up falling due
once, a lead flagged unanswered once, and the leads fold."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from domain.client import Client
from domain.envelope import Envelope, recording
from domain.errors import InvalidValue, RuleViolation
from domain.subscription import Subscription, matches
from projections import leads
from projections.base import Recorded

pytestmark = pytest.mark.usefixtures("attributed")

HOUR = timedelta(hours=1)


def subscribe(**overrides: Any) -> Subscription:
    fields: dict[str, Any] = {
        "subscription_id": uuid4(),
        "url": "https://hooks.example.com/crm",
        "event_types": ["Client.PurchaseMade", "Deal.*"],
        "secret_fingerprint": "0123456789abcdef",
    }
    fields.update(overrides)
    return Subscription.create(**fields)


def names(aggregate: Any) -> list[str]:
    return [type(event).__name__ for event in aggregate.pending_events]


# ------------------------------------------------------------------ subscriptions


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/x", "http"),
        ("https:///x", "host"),
        ("https://user:secret@example.com/x", "password"),
        ("https://example.com/x#frag", "fragment"),
        ("", "characters"),
    ],
)
def test_a_subscription_goes_to_a_plain_http_or_https_url(url: str, problem: str) -> None:
    with pytest.raises(InvalidValue, match=problem):
        subscribe(url=url)


@pytest.mark.parametrize("events", [[], ["purchase"], ["client.PurchaseMade"], ["Deal.**"]])
def test_event_types_are_star_aggregate_star_or_aggregate_event(events: list[str]) -> None:
    with pytest.raises(InvalidValue) as raised:
        subscribe(event_types=events)
    assert raised.value.field == "events"


def test_patterns_match_their_types() -> None:
    patterns = ("Client.PurchaseMade", "Deal.*")
    assert matches(patterns, "Client.PurchaseMade")
    assert matches(patterns, "Deal.DealWon")
    assert not matches(patterns, "Client.ClientRegistered")
    assert matches(("*",), "FollowUp.Due")
    assert not matches(("Client.*",), "FollowUp.Due")  # reminders have their own names


def test_pause_resume_and_failing_move_the_status_and_repeat_as_no_ops() -> None:
    subscription = subscribe()
    subscription.pause()
    subscription.pause()
    subscription.resume()
    subscription.resume()
    subscription.mark_failing(failures=3, last_error="HTTP 500")
    subscription.mark_failing(failures=4, last_error="HTTP 500")  # already failing
    assert subscription.status == "failing"
    subscription.pause()
    subscription.mark_failing(failures=5, last_error="HTTP 500")  # paused: left paused
    assert subscription.status == "paused"
    assert names(subscription) == [
        "SubscriptionCreated",
        "SubscriptionPaused",
        "SubscriptionResumed",
        "SubscriptionFailing",
        "SubscriptionPaused",
    ]


def test_a_removed_subscription_changes_no_more() -> None:
    subscription = subscribe()
    subscription.remove()
    for command in (
        subscription.pause,
        subscription.resume,
        subscription.remove,
        lambda: subscription.replay(from_position=1),
    ):
        with pytest.raises(RuleViolation):
            command()


def test_a_replay_starts_at_a_store_position() -> None:
    subscription = subscribe()
    with pytest.raises(InvalidValue):
        subscription.replay(from_position=0)
    subscription.replay(from_position=7)
    assert names(subscription)[-1] == "SubscriptionReplayed"


# ------------------------------------------------------------------ reminders


def past(envelope: Envelope, when: datetime) -> Any:
    return recording(replace(envelope, occurred_at=when))


def test_a_follow_up_falls_due_once_and_only_when_due(envelope: Envelope) -> None:
    now = datetime.now(UTC)
    with past(envelope, now - 2 * HOUR):
        client = Client.register(name="Ann Lee", phones=["+49301234567"])
        due_now = client.schedule_follow_up(due_at=now - HOUR, assignee_id="maria", note="call")
        later = client.schedule_follow_up(due_at=now + HOUR, assignee_id="maria")
    client.mark_follow_up_due(later)  # not due yet
    client.mark_follow_up_due(due_now)
    client.mark_follow_up_due(due_now)  # once
    assert names(client).count("FollowUpDue") == 1
    event = client.pending_events[-1]
    assert isinstance(event, Client.FollowUpDue)
    assert (event.task_id, event.note, event.name, event.phones) == (
        due_now,
        "call",
        "Ann Lee",
        ("+49301234567",),
    )


def test_a_follow_up_done_or_cancelled_before_it_fell_due_never_does(
    envelope: Envelope,
) -> None:
    now = datetime.now(UTC)
    with past(envelope, now - 2 * HOUR):
        client = Client.register(name="Ann Lee")
        done = client.schedule_follow_up(due_at=now - HOUR, assignee_id="maria")
        dropped = client.schedule_follow_up(due_at=now - HOUR, assignee_id="maria")
        client.complete_follow_up(done)
        client.cancel_follow_up(dropped)
    client.mark_follow_up_due(done)
    client.mark_follow_up_due(dropped)
    assert "FollowUpDue" not in names(client)


def registered_hours_ago(
    envelope: Envelope, monkeypatch: pytest.MonkeyPatch, hours: int, **fields: Any
) -> Client:
    """A lead registered, and recorded, ``hours`` ago (not back-dated)."""
    then = datetime.now(UTC) - hours * HOUR
    with monkeypatch.context() as clock:
        clock.setattr(Client.ClientRegistered, "create_timestamp", staticmethod(lambda: then))
        with past(envelope, then):
            return Client.register(name="Lead", **fields)


def test_a_lead_is_flagged_once_when_nobody_answered_in_time(
    envelope: Envelope, monkeypatch: pytest.MonkeyPatch
) -> None:
    lead = registered_hours_ago(envelope, monkeypatch, 3, owner_id="maria")
    lead.flag_unanswered(response_time=4 * HOUR)  # not yet
    lead.flag_unanswered(response_time=2 * HOUR)
    lead.flag_unanswered(response_time=2 * HOUR)
    assert names(lead).count("LeadUnanswered") == 1
    event = lead.pending_events[-1]
    assert isinstance(event, Client.LeadUnanswered)
    assert event.owner_id == "maria"
    assert event.deadline == lead.born_at + 2 * HOUR


@pytest.mark.parametrize(
    "answer",
    [
        lambda c: c.record_contact(channel="call", direction="outbound"),
        lambda c: c.schedule_follow_up(due_at=datetime.now(UTC) - 2 * HOUR, assignee_id="maria"),
        lambda c: c.mark_lost(reason="no_need"),
    ],
    ids=["contacted", "given a follow-up", "lost"],
)
def test_an_answered_or_closed_lead_is_not_flagged(
    envelope: Envelope, monkeypatch: pytest.MonkeyPatch, answer: Any
) -> None:
    lead = registered_hours_ago(envelope, monkeypatch, 3)
    with past(envelope, datetime.now(UTC) - 2 * HOUR):
        answer(lead)
    lead.flag_unanswered(response_time=HOUR)
    assert "LeadUnanswered" not in names(lead)


def test_a_lead_recorded_after_its_deadline_is_history_not_a_lost_request(
    envelope: Envelope,
) -> None:
    with past(envelope, datetime.now(UTC) - 30 * 24 * HOUR):  # an import of old leads
        lead = Client.register(name="Old Lead")
    lead.flag_unanswered(response_time=2 * HOUR)
    assert "LeadUnanswered" not in names(lead)


# ------------------------------------------------------------------ the leads fold


def test_a_merge_answers_the_survivor_when_either_card_was_answered(
    envelope: Envelope,
) -> None:
    start = datetime(2024, 6, 1, 9, tzinfo=UTC)
    with past(envelope, start):
        survivor = Client.register(name="Ann")
    with past(envelope, start - HOUR):
        duplicate = Client.register(name="A. Lee")
    with past(envelope, start + HOUR):
        duplicate.record_contact(channel="call", direction="inbound")
    with past(envelope, start + 2 * HOUR):
        survivor.absorb(duplicate)
    events = sorted(
        [*survivor.collect_events(), *duplicate.collect_events()],
        key=lambda e: e.timestamp,
    )
    rows: dict[Any, leads.Lead] = {}
    for position, event in enumerate(events, start=1):
        rows.update(leads.apply(rows, Recorded(position, event)))
    merged = rows[survivor.id]
    assert merged.registered_at == start - HOUR  # the earlier registration
    assert merged.first_contact_at == start + HOUR
    assert rows[duplicate.id].merged_into == survivor.id
    assert not leads.unanswered_at(merged, start + 5 * HOUR, HOUR)
    assert leads.first_response_minutes(merged, start + 5 * HOUR) == 120
