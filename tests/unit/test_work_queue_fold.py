"""The work queue fold (``projections/work_queue.py``), on events the domain records.
Every expected value was worked out by hand from the history in the test."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from projections import work_queue
from projections.work_queue import Activity, FollowUp
from tests.unit.test_directory_fold import History, day, register


def schedule(client: Client, due: str, assignee: str = "maria") -> Callable[[], UUID]:
    return lambda: client.schedule_follow_up(due_at=day(due), assignee_id=assignee)


def kinds_by_actor(activity: list[Activity]) -> list[tuple[str, str]]:
    return [(a.actor_id, a.kind) for a in activity]


def test_a_scheduled_follow_up_is_open_for_its_assignee_from_the_day_it_was_scheduled() -> None:
    history = History()
    ann = history.at("2024-06-01", register("Ann Lee"))
    task: UUID = history.at("2024-06-02T10:00", schedule(ann, "2024-06-05T14:39", "ivan"))

    queue = work_queue.fold(history.recorded)

    assert queue.follow_ups == {
        task: FollowUp(
            task_id=task,
            client_id=ann.id,
            assignee_id="ivan",
            due_at=day("2024-06-05T14:39"),
            scheduled_at=day("2024-06-02T10:00"),
        )
    }
    assert queue.activity == []


def test_a_follow_up_done_at_its_due_instant_is_on_time_and_a_minute_later_is_late() -> None:
    history = History()
    ann = history.at("2024-06-01", register("Ann Lee"))
    exact: UUID = history.at("2024-06-01", schedule(ann, "2024-06-05T14:39"))
    late: UUID = history.at("2024-06-01", schedule(ann, "2024-06-05T14:39"))
    history.at("2024-06-05T14:39", lambda: ann.complete_follow_up(exact), actor="maria")
    history.at("2024-06-05T14:40", lambda: ann.complete_follow_up(late), actor="ivan")

    queue = work_queue.fold(history.recorded)

    assert kinds_by_actor(queue.activity) == [
        ("maria", "follow_up_on_time"),
        ("ivan", "follow_up_late"),  # credited to who completed it, not the assignee
    ]
    done = queue.follow_ups[late]
    assert (done.status, done.closed_at, done.closed_by) == (
        "completed",
        day("2024-06-05T14:40"),
        "ivan",
    )
    assert queue.open == {}


def test_the_on_time_rule_compares_business_times() -> None:
    due = day("2024-06-05T14:39")
    assert work_queue.on_time(due, due)
    assert work_queue.on_time(due - timedelta(days=3), due)
    assert not work_queue.on_time(due + timedelta(microseconds=1), due)


def test_a_cancelled_follow_up_is_closed_without_counting_as_activity() -> None:
    history = History()
    ann = history.at("2024-06-01", register("Ann Lee"))
    task: UUID = history.at("2024-06-01", schedule(ann, "2024-06-05"))
    history.at("2024-06-03", lambda: ann.cancel_follow_up(task), actor="maria")

    queue = work_queue.fold(history.recorded)

    assert (queue.follow_ups[task].status, queue.follow_ups[task].closed_at) == (
        "cancelled",
        day("2024-06-03"),
    )
    assert queue.activity == []


def test_erasure_cancels_the_open_follow_ups_of_that_client_only() -> None:
    history = History()
    ann = history.at("2024-06-01", register("Ann Lee"))
    bob = history.at("2024-06-01", register("Bob Roe"))
    done: UUID = history.at("2024-06-01", schedule(ann, "2024-06-05"))
    open_: UUID = history.at("2024-06-01", schedule(ann, "2024-06-20"))
    bobs: UUID = history.at("2024-06-01", schedule(bob, "2024-06-20"))
    history.at("2024-06-04", lambda: ann.complete_follow_up(done))
    history.at("2024-06-10", lambda: ann.erase_personal_data(reason="subject_request"))

    queue = work_queue.fold(history.recorded)

    assert queue.follow_ups[done].status == "completed"
    assert (queue.follow_ups[open_].status, queue.follow_ups[open_].closed_at) == (
        "cancelled",
        day("2024-06-10"),
    )
    assert set(queue.open) == {bobs}


def test_a_merge_closes_the_duplicates_follow_ups_through_its_cancellations() -> None:
    history = History()
    ann = history.at("2024-06-01", register("Ann Lee"))
    dup = history.at("2024-06-01", register("A. Lee"))
    task: UUID = history.at("2024-06-01", schedule(dup, "2024-06-20"))
    history.at("2024-06-02", lambda: ann.absorb(dup))

    queue = work_queue.fold(history.recorded)

    assert queue.follow_ups[task].status == "cancelled"
    assert queue.open == {}


def test_contacts_deal_moves_and_wins_are_credited_to_whoever_did_them() -> None:
    history = History()
    ann = history.at("2024-06-01", register("Ann Lee"))
    pipeline = history.at(
        "2024-06-01", lambda: Pipeline.define(name="default", stages=("a", "b", "c"))
    )
    deal = history.at(
        "2024-06-02",
        lambda: Deal.open(
            client=ann,
            pipeline=pipeline,
            title="Windows",
            amount=Decimal(900),
            currency="EUR",
            books_currency="EUR",
        ),
        actor="maria",
    )
    history.at(
        "2024-06-03",
        lambda: ann.record_contact(channel="call", direction="inbound"),
        actor="maria",
    )
    history.at("2024-06-04", lambda: deal.move_to("b", pipeline=pipeline), actor="maria")
    history.at("2024-06-05", lambda: deal.move_to("c", pipeline=pipeline), actor="ivan")
    history.at("2024-06-06", deal.win, actor="ivan")

    queue = work_queue.fold(history.recorded)

    assert kinds_by_actor(queue.activity) == [
        ("maria", "contact"),
        ("maria", "deal_moved"),
        ("ivan", "deal_moved"),
        ("ivan", "deal_won"),
    ]
    assert [a.at for a in queue.activity] == [
        day("2024-06-03"),
        day("2024-06-04"),
        day("2024-06-05"),
        day("2024-06-06"),
    ]


def test_closing_a_follow_up_that_is_not_open_changes_nothing() -> None:
    history = History()
    ann = history.at("2024-06-01", register("Ann Lee"))
    task: UUID = history.at("2024-06-01", schedule(ann, "2024-06-05"))
    history.at("2024-06-02", lambda: ann.complete_follow_up(task))
    completion = history.recorded[-1]

    assert work_queue.apply({}, completion) == work_queue.Changes()
    assert work_queue.needs(completion) == ann.id
    assert work_queue.needs(history.recorded[0]) is None
