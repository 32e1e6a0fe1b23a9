"""The work queue read model on every store, every figure worked out by hand.

"Now" is 2024-06-10 12:00 UTC. Follow-ups (scheduled by alice, an admin):

    t1  Ann  maria  due 06-09 09:00   open            overdue
    t2  Ann  maria  due 06-11 08:00   open            due within a day
    t3  Bob  ivan   due 06-10 12:00   open            due exactly now: not overdue
    t4  Bob  ivan   due 06-12 09:00   open            due within three days only
    t5  Ann  maria  due 06-05 10:00   done 06-05 09:30 by maria: on time
    t6  Bob  ivan   due 06-03 10:00   done 06-04 08:00 by ivan: late
    t7  Ann  maria  due 06-08 00:00   cancelled 06-07

Activity in June (business time [06-01, 07-01)):

    maria  contacts at 06-01 00:00 (the first instant: counted) and 06-03; opens a
           deal for Ann 06-02 (not activity), moves it 06-04, wins it 06-15
    ivan   contact 05-31 (May: not counted), 06-02, 07-01 00:00 (the end: not
           counted); opens a deal for Bob 06-02, moves it 06-06
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from uuid import UUID

import pytest

from adapters.projector import Projector
from adapters.read_models.work_queue import FollowUpRow, ManagerActivity, WorkQueueReadModel
from api.bootstrap import Crm
from application import clients, deals
from domain.envelope import Envelope
from tests.story import Story, day

NOW = day("2024-06-10T12:00")


class Office:
    """Who does what, each under their own name."""

    def __init__(self, crm: Crm, envelope: Envelope) -> None:
        self.crm = crm
        self.alice = Story(crm, envelope)
        self.maria = Story(crm, replace(envelope, actor_id="maria", actor_role="manager"))
        self.ivan = Story(crm, replace(envelope, actor_id="ivan", actor_role="manager"))

    def schedule(self, client_id: UUID, due: str, when: str = "2024-06-01") -> UUID:
        result = self.alice.run(
            clients.ScheduleFollowUp(client_id=client_id, due_at=day(due)), when
        )
        return UUID(result.extra["task_id"])


def complete(story: Story, client_id: UUID, task_id: UUID, when: str) -> None:
    story.run(clients.CompleteFollowUp(client_id=client_id, task_id=task_id), when)


def project(crm: Crm) -> WorkQueueReadModel:
    queue = WorkQueueReadModel(crm.db)
    projector = Projector(crm.app, crm.db, [queue], batch_size=3)
    projector.setup()
    projector.catch_up()
    return queue


@pytest.fixture
def office(crm: Crm, envelope: Envelope) -> Office:
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    return Office(crm, envelope)


@pytest.fixture
def tasks(office: Office) -> dict[str, UUID]:
    ann = office.alice.register("Ann Lee", "2024-05-01", owner_id="maria")
    bob = office.alice.register("Bob Roe", "2024-05-01", owner_id="ivan")
    ids = {
        "ann": ann,
        "bob": bob,
        "t1": office.schedule(ann, "2024-06-09T09:00"),
        "t2": office.schedule(ann, "2024-06-11T08:00"),
        "t3": office.schedule(bob, "2024-06-10T12:00"),
        "t4": office.schedule(bob, "2024-06-12T09:00"),
        "t5": office.schedule(ann, "2024-06-05T10:00"),
        "t6": office.schedule(bob, "2024-06-03T10:00"),
        "t7": office.schedule(ann, "2024-06-08"),
    }
    complete(office.maria, ann, ids["t5"], "2024-06-05T09:30")
    complete(office.ivan, bob, ids["t6"], "2024-06-04T08:00")
    office.maria.run(clients.CancelFollowUp(client_id=ann, task_id=ids["t7"]), "2024-06-07")
    return ids


def row(tasks: dict[str, UUID], name: str, due: str, *, overdue: bool = False) -> FollowUpRow:
    client = "ann" if name in ("t1", "t2", "t5", "t7") else "bob"
    return FollowUpRow(
        task_id=tasks[name],
        client_id=tasks[client],
        assignee_id="maria" if client == "ann" else "ivan",
        due_at=day(due),
        scheduled_at=day("2024-06-01"),
        overdue=overdue,
    )


def test_open_follow_ups_due_within_a_day_are_listed_by_due_instant_overdue_flagged(
    crm: Crm, tasks: dict[str, UUID]
) -> None:
    queue = project(crm)

    assert queue.due(now=NOW) == [
        row(tasks, "t1", "2024-06-09T09:00", overdue=True),
        row(tasks, "t3", "2024-06-10T12:00"),
        row(tasks, "t2", "2024-06-11T08:00"),
    ]


def test_the_horizon_and_the_assignee_narrow_or_widen_the_list(
    crm: Crm, tasks: dict[str, UUID]
) -> None:
    queue = project(crm)

    assert [r.task_id for r in queue.due(now=NOW, within=timedelta(days=3))] == [
        tasks["t1"],
        tasks["t3"],
        tasks["t2"],
        tasks["t4"],
    ]
    assert [r.task_id for r in queue.due(now=NOW, assignee_id="maria")] == [
        tasks["t1"],
        tasks["t2"],
    ]
    assert [r.task_id for r in queue.due(now=NOW, within=timedelta(0), assignee_id="ivan")] == [
        tasks["t3"]
    ]
    assert queue.due(now=NOW, assignee_id="nobody") == []


def test_an_erased_or_merged_away_clients_follow_ups_leave_the_queue(
    crm: Crm, office: Office, tasks: dict[str, UUID]
) -> None:
    queue = project(crm)
    office.alice.erase(tasks["bob"], "2024-06-09")
    dup = office.alice.register("A. Lee", "2024-05-02", owner_id="maria")
    office.schedule(dup, "2024-06-10T08:00")
    office.alice.run(clients.MergeClients(survivor_id=tasks["ann"], duplicate_id=dup), "2024-06-09")
    project(crm)

    assert [r.task_id for r in queue.due(now=NOW, within=timedelta(days=3))] == [
        tasks["t1"],
        tasks["t2"],
    ]


@pytest.fixture
def june(office: Office, tasks: dict[str, UUID]) -> None:
    ann, bob = tasks["ann"], tasks["bob"]
    office.maria.contact(ann, "2024-06-01T00:00")
    office.maria.contact(ann, "2024-06-03")
    office.ivan.contact(bob, "2024-05-31")
    office.ivan.contact(bob, "2024-06-02")
    office.ivan.contact(bob, "2024-07-01T00:00")
    deal = office.maria.run(
        deals.OpenDeal(client_id=ann, title="Windows", amount=Decimal(900), currency="EUR"),
        "2024-06-02",
    ).id
    office.maria.run(deals.MoveDealStage(deal_id=deal, stage="interest"), "2024-06-04")
    bobs = office.ivan.run(
        deals.OpenDeal(client_id=bob, title="Doors", amount=Decimal(400), currency="EUR"),
        "2024-06-02",
    ).id
    office.ivan.run(deals.MoveDealStage(deal_id=bobs, stage="evaluation"), "2024-06-06")
    office.maria.run(deals.WinDeal(deal_id=deal), "2024-06-15")


@pytest.mark.usefixtures("june")
def test_activity_per_manager_counts_contacts_follow_ups_on_time_and_late_and_deals(
    crm: Crm,
) -> None:
    queue = project(crm)

    assert queue.activity(since=day("2024-06-01"), until=day("2024-07-01")) == [
        ManagerActivity("ivan", contacts=1, follow_ups_late=1, deals_moved=1),
        ManagerActivity("maria", contacts=2, follow_ups_on_time=1, deals_moved=1, deals_won=1),
    ]


@pytest.mark.usefixtures("june")
def test_activity_of_one_manager_and_of_an_idle_one(crm: Crm) -> None:
    queue = project(crm)

    assert queue.activity(since=day("2024-05-01"), until=day("2024-08-01"), actor_id="ivan") == [
        ManagerActivity("ivan", contacts=3, follow_ups_late=1, deals_moved=1)
    ]
    assert queue.activity(since=day("2024-06-05"), until=day("2024-06-06"), actor_id="maria") == [
        ManagerActivity("maria", follow_ups_on_time=1)
    ]
    assert queue.activity(since=day("2024-06-01"), until=day("2024-07-01"), actor_id="olga") == [
        ManagerActivity("olga")
    ]


def test_the_due_list_comes_a_page_at_a_time_after_a_key(crm: Crm, tasks: dict[str, UUID]) -> None:
    crm.projector().catch_up()  # the due list reads the directory's cards too
    queue = crm.model(WorkQueueReadModel)
    everything = queue.items(now=NOW, within=timedelta(days=3))
    walked, after = [], None
    while True:
        page = queue.items(now=NOW, within=timedelta(days=3), after=after, limit=2)
        walked.append(page)
        if len(page) < 2:
            break
        after = (page[-1].due_at, page[-1].task_id or page[-1].client_id)
    assert [item for page in walked for item in page] == everything
    assert [len(page) for page in walked] == [2, 2, 0]
