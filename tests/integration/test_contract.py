"""The application's contract, run on the in-memory, SQLite and PostgreSQL stores."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from api.bootstrap import Crm
from application import clients, deals, pipelines
from application.app import CommandResult
from application.errors import (
    DuplicateContact,
    IdempotencyKeyReused,
    NotFound,
    UnknownUser,
    VersionMismatch,
)
from domain.client import Client
from domain.deal import Deal
from domain.envelope import Envelope, utc_now
from domain.errors import InvalidValue, RuleViolation
from domain.pipeline import DEFAULT_STAGES, Pipeline, pipeline_id


def event_count(crm: Crm) -> int:
    return crm.app.recorder.max_notification_id() or 0


def register(crm: Crm, envelope: Envelope, **fields: object) -> CommandResult:
    command = clients.RegisterClient(**{"name": "Ann Lee", **fields})  # type: ignore[arg-type]
    return crm.app.execute(command, envelope)


def test_the_default_pipeline_exists_after_first_start(crm: Crm) -> None:
    pipeline = crm.app.repository.get(pipeline_id("default"))
    assert isinstance(pipeline, Pipeline)
    assert pipeline.stages == DEFAULT_STAGES


def test_a_registered_client_is_stored_with_its_envelope_and_read_back(
    crm: Crm, envelope: Envelope
) -> None:
    result = register(crm, envelope, phones=("+49 30 1234567",), emails=("Ann@Example.com",))
    client = crm.app.repository.get(result.id)
    assert isinstance(client, Client)
    assert (client.name, client.phones, client.emails) == (
        "Ann Lee",
        ("+49301234567",),
        ("ann@example.com",),
    )
    (registered,) = crm.app.repository.event_store.get(result.id)
    assert (registered.actor_id, registered.actor_role, registered.source) == (  # type: ignore[attr-defined]
        "alice",
        "admin",
        "api",
    )
    assert registered.correlation_id == "test-correlation"  # type: ignore[attr-defined]
    assert result.version == 1
    assert result.position == event_count(crm)


def test_a_back_dated_fact_keeps_its_business_time_apart_from_its_record_time(
    crm: Crm, envelope: Envelope
) -> None:
    long_ago = utc_now() - timedelta(days=800)
    result = register(crm, replace(envelope, occurred_at=long_ago))
    (event,) = crm.app.repository.event_store.get(result.id)
    assert event.occurred_at == long_ago  # type: ignore[attr-defined]
    assert event.timestamp - long_ago > timedelta(days=799)  # type: ignore[attr-defined]


def test_a_second_client_with_the_same_phone_is_a_conflict_naming_the_first(
    crm: Crm, envelope: Envelope
) -> None:
    first = register(crm, envelope, phones=("+4930111222",))
    before = event_count(crm)
    with pytest.raises(DuplicateContact) as conflict:
        register(crm, envelope, name="Other", phones=("+49 (30) 111-222",))
    assert conflict.value.existing_client_id == first.id
    assert event_count(crm) == before


def test_an_email_is_unique_case_insensitively(crm: Crm, envelope: Envelope) -> None:
    first = register(crm, envelope, emails=("ann@example.com",))
    with pytest.raises(DuplicateContact) as conflict:
        register(crm, envelope, name="Other", emails=("ANN@example.com",))
    assert conflict.value.existing_client_id == first.id


def test_a_phone_freed_by_a_change_can_be_taken_by_another_client(
    crm: Crm, envelope: Envelope
) -> None:
    first = register(crm, envelope, phones=("+4930111222",))
    crm.app.execute(
        clients.ChangeClientDetails(client_id=first.id, changes={"phones": ["+4930999888"]}),
        envelope,
    )
    second = register(crm, envelope, name="Other", phones=("+4930111222",))
    with pytest.raises(DuplicateContact) as conflict:
        register(crm, envelope, name="Third", phones=("+4930999888",))
    assert conflict.value.existing_client_id == first.id
    assert second.id != first.id


def test_changing_details_to_another_clients_email_is_refused(crm: Crm, envelope: Envelope) -> None:
    first = register(crm, envelope, emails=("a@example.com",))
    second = register(crm, envelope, name="Bo", emails=("b@example.com",))
    with pytest.raises(DuplicateContact) as conflict:
        crm.app.execute(
            clients.ChangeClientDetails(
                client_id=second.id, changes={"emails": ["b@example.com", "a@example.com"]}
            ),
            envelope,
        )
    assert conflict.value.existing_client_id == first.id
    unchanged = crm.app.repository.get(second.id)
    assert unchanged.emails == ("b@example.com",)


def test_erasure_frees_the_clients_contact_points(crm: Crm, envelope: Envelope) -> None:
    first = register(crm, envelope, phones=("+4930111222",))
    crm.app.execute(
        clients.ErasePersonalData(client_id=first.id, reason="subject_request"), envelope
    )
    assert register(crm, envelope, name="New owner", phones=("+4930111222",)).id != first.id


def test_merging_moves_the_duplicates_contact_points_to_the_survivor(
    crm: Crm, envelope: Envelope
) -> None:
    survivor = register(crm, envelope, phones=("+4930111222",))
    duplicate = register(crm, envelope, name="A. Lee", emails=("ann@example.com",))
    crm.app.execute(
        clients.MergeClients(survivor_id=survivor.id, duplicate_id=duplicate.id), envelope
    )
    merged = crm.app.repository.get(survivor.id)
    assert merged.emails == ("ann@example.com",)
    with pytest.raises(DuplicateContact) as conflict:
        register(crm, envelope, name="Someone", emails=("ann@example.com",))
    assert conflict.value.existing_client_id == survivor.id


def test_a_retried_command_with_the_same_idempotency_key_records_nothing_new(
    crm: Crm, envelope: Envelope
) -> None:
    command = clients.RegisterClient(name="Ann", phones=("+4930111222",))
    first = crm.app.execute(command, envelope, idempotency_key="req-1")
    count = event_count(crm)
    again = crm.app.execute(command, envelope, idempotency_key="req-1")
    assert (again.id, again.version, again.position) == (first.id, first.version, first.position)
    assert again.replayed
    assert not first.replayed
    assert event_count(crm) == count


def test_an_idempotency_key_reused_for_another_command_is_refused(
    crm: Crm, envelope: Envelope
) -> None:
    crm.app.execute(clients.RegisterClient(name="Ann"), envelope, idempotency_key="req-1")
    count = event_count(crm)
    with pytest.raises(IdempotencyKeyReused):
        crm.app.execute(clients.RegisterClient(name="Bob"), envelope, idempotency_key="req-1")
    assert event_count(crm) == count


def test_idempotency_keys_belong_to_the_actor_who_sent_them(crm: Crm, envelope: Envelope) -> None:
    other = replace(envelope, actor_id="bob")
    first = crm.app.execute(clients.RegisterClient(name="Ann"), envelope, idempotency_key="k")
    second = crm.app.execute(clients.RegisterClient(name="Ann"), other, idempotency_key="k")
    assert first.id != second.id


def test_keys_and_actors_of_any_text_are_stored_as_sent(crm: Crm, envelope: Envelope) -> None:
    """The PostgreSQL store writes values quoted into its statements' text: quotes,
    backslashes, semicolons and comment marks must arrive as they were sent."""
    nasty = "k'; DROP TABLE events; --\\ \"\u00e9\u2603 $$ E'\\x00'"
    actor = replace(envelope, actor_id="o'brien; --")
    first = crm.app.execute(clients.RegisterClient(name="Ann"), actor, idempotency_key=nasty)
    again = crm.app.execute(clients.RegisterClient(name="Ann"), actor, idempotency_key=nasty)
    assert (again.id, again.replayed) == (first.id, True)
    record = crm.app.recorder.idempotency_record(actor.actor_id, nasty)
    assert record is not None
    assert (record.scope, record.key, record.aggregate_id) == (actor.actor_id, nasty, first.id)
    assert event_count(crm) == first.position


def test_a_no_op_command_with_a_key_is_remembered_too(crm: Crm, envelope: Envelope) -> None:
    client = register(crm, envelope)
    command = clients.ChangeClientDetails(client_id=client.id, changes={"name": "Ann Lee"})
    first = crm.app.execute(command, envelope, idempotency_key="noop")
    assert (first.version, first.position) == (client.version, client.position)
    assert crm.app.execute(command, envelope, idempotency_key="noop").replayed


def test_a_stale_expected_version_is_refused_and_records_nothing(
    crm: Crm, envelope: Envelope
) -> None:
    client = register(crm, envelope)
    crm.app.execute(
        clients.RecordContact(client_id=client.id, channel="call", direction="outbound"), envelope
    )
    count = event_count(crm)
    with pytest.raises(VersionMismatch) as mismatch:
        crm.app.execute(
            clients.RecordContact(
                client_id=client.id, channel="sms", direction="outbound", expected_version=1
            ),
            envelope,
        )
    assert (mismatch.value.expected, mismatch.value.actual) == (1, 2)
    assert event_count(crm) == count


def test_a_command_for_an_unknown_client_is_not_found(crm: Crm, envelope: Envelope) -> None:
    with pytest.raises(NotFound):
        crm.app.execute(
            clients.RecordContact(client_id=uuid4(), channel="call", direction="inbound"), envelope
        )


def test_a_deal_id_is_not_a_client_id(crm: Crm, envelope: Envelope) -> None:
    client = register(crm, envelope)
    deal = crm.app.execute(
        deals.OpenDeal(client_id=client.id, title="Windows", amount=Decimal(100), currency="EUR"),
        envelope,
    )
    with pytest.raises(NotFound):
        crm.app.execute(
            clients.RecordContact(client_id=deal.id, channel="call", direction="inbound"), envelope
        )


def test_new_leads_are_assigned_to_active_managers_in_turn(crm: Crm, envelope: Envelope) -> None:
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    crm.users.add("root", "admin")
    owners = [crm.app.repository.get(register(crm, envelope).id).owner_id for _ in range(4)]
    assert owners == ["maria", "ivan", "maria", "ivan"]
    crm.users.revoke("maria")
    assert crm.app.repository.get(register(crm, envelope).id).owner_id == "ivan"


def test_a_lead_stays_unassigned_when_there_is_no_manager(crm: Crm, envelope: Envelope) -> None:
    result = register(crm, envelope)
    assert crm.app.repository.get(result.id).owner_id is None
    assert result.version == 1


def test_only_active_managers_and_admins_can_own_clients(crm: Crm, envelope: Envelope) -> None:
    crm.users.add("audrey", "auditor")
    crm.users.add("maria", "manager")
    with pytest.raises(UnknownUser):
        register(crm, envelope, owner_id="audrey")
    with pytest.raises(UnknownUser):
        register(crm, envelope, owner_id="nobody")
    assert crm.app.repository.get(register(crm, envelope, owner_id="maria").id).owner_id == "maria"


def test_winning_a_deal_records_the_clients_purchase_in_the_same_command(
    crm: Crm, envelope: Envelope
) -> None:
    client = register(crm, envelope)
    opened = crm.app.execute(
        deals.OpenDeal(
            client_id=client.id, title="Windows", amount=Decimal("1500"), currency="EUR"
        ),
        envelope,
    )
    won = crm.app.execute(deals.WinDeal(deal_id=opened.id, cost=Decimal("900")), envelope)
    deal = crm.app.repository.get(opened.id)
    buyer = crm.app.repository.get(client.id)
    assert isinstance(deal, Deal)
    assert deal.status == "won"
    assert buyer.purchases_count == 1
    purchase = list(crm.app.repository.event_store.get(client.id))[-1]
    assert isinstance(purchase, Client.PurchaseMade)
    assert (purchase.amount, purchase.cost, purchase.deal_id) == (
        Decimal("1500"),
        Decimal("900"),
        opened.id,
    )
    assert purchase.causation_id == f"{opened.id}@{won.version}"
    assert won.position == event_count(crm)  # the purchase is the command's last event


def test_a_refused_win_records_neither_the_win_nor_the_purchase(
    crm: Crm, envelope: Envelope
) -> None:
    client = register(crm, envelope)
    opened = crm.app.execute(
        deals.OpenDeal(client_id=client.id, title="Windows", amount=Decimal("10"), currency="EUR"),
        envelope,
    )
    crm.app.execute(
        clients.ErasePersonalData(client_id=client.id, reason="subject_request"), envelope
    )
    count = event_count(crm)
    with pytest.raises(RuleViolation):
        crm.app.execute(deals.WinDeal(deal_id=opened.id), envelope)
    assert event_count(crm) == count
    assert crm.app.repository.get(opened.id).status == "open"


def test_a_purchase_in_another_currency_is_refused(crm: Crm, envelope: Envelope) -> None:
    client = register(crm, envelope)
    with pytest.raises(InvalidValue, match="books amounts in EUR"):
        crm.app.execute(
            clients.RecordPurchase(client_id=client.id, amount=Decimal(5), currency="USD"),
            envelope,
        )


def test_a_follow_up_is_assigned_to_the_owner_and_reported_by_id(
    crm: Crm, envelope: Envelope
) -> None:
    crm.users.add("maria", "manager")
    client = register(crm, envelope)
    scheduled = crm.app.execute(
        clients.ScheduleFollowUp(client_id=client.id, due_at=utc_now() + timedelta(days=2)),
        envelope,
    )
    task_id = scheduled.extra["task_id"]
    card = crm.app.repository.get(client.id)
    (task,) = card.follow_ups.values()
    assert (str(task.task_id), task.assignee_id) == (task_id, "maria")


def test_pipelines_are_defined_and_redefined_by_name(crm: Crm, envelope: Envelope) -> None:
    first = crm.app.execute(
        pipelines.DefinePipeline(name="Windows", stages=("lead", "measurement", "proposal")),
        envelope,
    )
    again = crm.app.execute(
        pipelines.DefinePipeline(
            name="windows", stages=("lead", "measurement", "proposal", "contract")
        ),
        envelope,
    )
    assert again.id == first.id
    assert crm.app.repository.get(first.id).stages[-1] == "contract"


def test_a_deal_moves_only_through_its_pipelines_stages(crm: Crm, envelope: Envelope) -> None:
    client = register(crm, envelope)
    opened = crm.app.execute(
        deals.OpenDeal(client_id=client.id, title="Roof", amount=Decimal(10), currency="EUR"),
        envelope,
    )
    with pytest.raises(InvalidValue, match="not in pipeline"):
        crm.app.execute(deals.MoveDealStage(deal_id=opened.id, stage="measurement"), envelope)
    moved = crm.app.execute(deals.MoveDealStage(deal_id=opened.id, stage="evaluation"), envelope)
    assert moved.version == 2


def test_the_deals_of_an_erased_client_change_no_more(crm: Crm, envelope: Envelope) -> None:
    client = register(crm, envelope)
    opened = crm.app.execute(
        deals.OpenDeal(client_id=client.id, title="Roof", amount=Decimal(10), currency="EUR"),
        envelope,
    )
    crm.app.execute(
        clients.ErasePersonalData(client_id=client.id, reason="subject_request"), envelope
    )
    count = event_count(crm)
    for command in (
        deals.MoveDealStage(deal_id=opened.id, stage="interest"),
        deals.ChangeDealValue(deal_id=opened.id, amount=Decimal(20), currency="EUR"),
        deals.LoseDeal(deal_id=opened.id, reason="timing", note="new personal text"),
        deals.WinDeal(deal_id=opened.id),
    ):
        with pytest.raises(RuleViolation, match="erased"):
            crm.app.execute(command, envelope)
    assert event_count(crm) == count


def test_the_deals_of_an_erased_duplicate_change_no_more_on_a_live_card(
    crm: Crm, envelope: Envelope
) -> None:
    """A deal's events are personal data of its own client: once that client (a
    duplicate merged into a live card, then erased on its own) has no key, they
    could not even be written."""
    survivor = register(crm, envelope, name="Ann Lee")
    duplicate = register(crm, envelope, name="Ann Lee (old card)")
    opened = crm.app.execute(
        deals.OpenDeal(client_id=duplicate.id, title="Roof", amount=Decimal(10), currency="EUR"),
        envelope,
    )
    crm.app.execute(
        clients.MergeClients(survivor_id=survivor.id, duplicate_id=duplicate.id), envelope
    )
    crm.app.execute(
        clients.ErasePersonalData(client_id=duplicate.id, reason="subject_request"), envelope
    )
    count = event_count(crm)
    with pytest.raises(RuleViolation, match="erased"):
        crm.app.execute(deals.LoseDeal(deal_id=opened.id, reason="timing"), envelope)
    assert event_count(crm) == count


def test_an_erased_client_whose_emails_changed_still_loads_and_refuses_changes(
    crm: Crm, envelope: Envelope
) -> None:
    """After erasure a details change reads as changing nothing: replaying it must not
    set the emails to None (the duplicate's absorbed emails were added to that)."""
    survivor = register(crm, envelope, emails=("ann@example.com",))
    crm.app.execute(
        clients.ChangeClientDetails(client_id=survivor.id, changes={"emails": ["lee@example.com"]}),
        envelope,
    )
    duplicate = register(crm, envelope, name="Ann Lee (old card)", emails=("a@example.com",))
    crm.app.execute(
        clients.MergeClients(survivor_id=survivor.id, duplicate_id=duplicate.id), envelope
    )
    crm.app.execute(
        clients.ErasePersonalData(client_id=survivor.id, reason="subject_request"), envelope
    )
    replayed = crm.app.repository.get(survivor.id)
    assert (replayed.erased, replayed.emails, replayed.phones) == (True, (), ())
    with pytest.raises(RuleViolation, match="erased"):
        crm.app.execute(
            clients.ChangeClientDetails(client_id=survivor.id, changes={"name": "X"}), envelope
        )


def test_several_commands_are_recorded_all_together(crm: Crm, envelope: Envelope) -> None:
    first, second = crm.app.execute_many(
        [
            (clients.RegisterClient(name="Ann", phones=("+4930111222",)), envelope),
            (clients.RegisterClient(name="Bob", phones=("+4930333444",)), envelope),
        ]
    )
    assert first.id != second.id
    assert first.position == second.position == event_count(crm)


def test_one_refused_command_records_none_of_its_batch(crm: Crm, envelope: Envelope) -> None:
    before = event_count(crm)
    with pytest.raises(InvalidValue):
        crm.app.execute_many(
            [
                (clients.RegisterClient(name="Ann"), envelope),
                (clients.RegisterClient(name="   "), envelope),
            ]
        )
    assert event_count(crm) == before


def test_two_new_clients_with_one_phone_in_a_batch_are_a_conflict(
    crm: Crm, envelope: Envelope
) -> None:
    before = event_count(crm)
    with pytest.raises(DuplicateContact):
        crm.app.execute_many(
            [
                (clients.RegisterClient(name="Ann", phones=("+4930111222",)), envelope),
                (clients.RegisterClient(name="Bob", phones=("+49 30 111 222",)), envelope),
            ]
        )
    assert event_count(crm) == before


def test_a_retried_batch_with_its_idempotency_key_returns_the_first_answers(
    crm: Crm, envelope: Envelope
) -> None:
    batch = [
        (clients.RegisterClient(name="Ann"), envelope),
        (clients.RegisterClient(name="Bob"), envelope),
    ]
    first = crm.app.execute_many(batch, idempotency_key="file-sha")
    count = event_count(crm)
    again = crm.app.execute_many(batch, idempotency_key="file-sha")
    assert [(r.id, r.version, r.position) for r in again] == [
        (r.id, r.version, r.position) for r in first
    ]
    assert all(r.replayed for r in again)
    assert event_count(crm) == count


def test_a_manager_cannot_touch_another_managers_client(crm: Crm, envelope: Envelope) -> None:
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    marias = register(crm, envelope, owner_id="maria").id
    unassigned = register(crm, envelope).id  # round-robin gives it to one of them
    ivan = replace(envelope, actor_id="ivan", actor_role="manager")
    count = event_count(crm)
    with pytest.raises(NotFound):
        crm.app.execute(
            clients.RecordContact(client_id=marias, channel="call", direction="outbound"), ivan
        )
    assert event_count(crm) == count
    maria = replace(envelope, actor_id="maria", actor_role="manager")
    crm.app.execute(
        clients.RecordContact(client_id=marias, channel="call", direction="outbound"), maria
    )
    owner_of_the_lead = crm.app.repository.get(unassigned).owner_id
    other = ivan if owner_of_the_lead == "maria" else maria
    with pytest.raises(NotFound):
        crm.app.execute(clients.MarkClientLost(client_id=unassigned, reason="price"), other)


def test_a_manager_may_work_an_unassigned_lead(crm: Crm, envelope: Envelope) -> None:
    lead = register(crm, envelope).id  # no manager yet: the lead stays unassigned
    crm.users.add("maria", "manager")
    maria = replace(envelope, actor_id="maria", actor_role="manager")
    crm.app.execute(clients.AssignOwner(client_id=lead, owner_id="maria"), maria)
    assert crm.app.repository.get(lead).owner_id == "maria"


def test_an_export_is_recorded_with_what_it_held(crm: Crm, envelope: Envelope) -> None:
    from application.exports import RecordExport
    from domain.access import DataAccess

    client = register(crm, envelope).id
    recorded = crm.app.execute(
        RecordExport(kind="subject", format="json", up_to_position=2, client_id=client),
        replace(envelope, actor_role="auditor", actor_id="audrey"),
    )
    (event,) = crm.app.repository.event_store.get(recorded.id)
    assert isinstance(event, DataAccess.DataExported)
    assert (event.kind, event.client_id, event.up_to_position, event.actor_id) == (
        "subject",
        client,
        2,
        "audrey",
    )
    with pytest.raises(InvalidValue):
        crm.app.execute(RecordExport(kind="subject", format="json", up_to_position=2), envelope)
