"""The audit fold: which entries each event becomes, field by field."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pytest

from domain.base import CrmAggregate
from domain.client import Client
from domain.deal import Deal
from domain.envelope import Envelope, recording, utc_now
from domain.pipeline import Pipeline
from projections.audit import AuditEntry, as_text, entries, redacted
from projections.base import Recorded
from tests.conftest import at

pytestmark = pytest.mark.usefixtures("attributed")

EUR = "EUR"
STAGES = ("attraction", "interest", "evaluation")


def register(**overrides: Any) -> Client:
    fields: dict[str, Any] = {"name": "Anna Schmidt", "owner_id": "bob"}
    fields.update(overrides)
    return Client.register(**fields)


def fold(aggregate: CrmAggregate, position: int = 7) -> list[AuditEntry]:
    """The entries of the aggregate's latest pending event, recorded at ``position``."""
    return entries(Recorded(position, aggregate.pending_events[-1]))  # type: ignore[arg-type]


def changes(found: list[AuditEntry]) -> list[tuple[int, str | None, str | None, str | None]]:
    return [(e.seq, e.field, e.old_value, e.new_value) for e in found]


def open_deal(client: Client, **overrides: Any) -> Deal:
    fields: dict[str, Any] = {
        "client": client,
        "pipeline": Pipeline.define(name="default", stages=STAGES),
        "title": "Kitchen windows",
        "amount": Decimal("1500.50"),
        "currency": EUR,
        "books_currency": EUR,
    }
    fields.update(overrides)
    return Deal.open(**fields)


# ------------------------------------------------------------------ client fields


def test_registration_is_one_entry_per_field_given_a_value() -> None:
    client = register(
        phones=["+49301234567", "+442079460958"],
        channel="website",
        attributes={"vip": "yes", "tier": "gold"},
    )

    found = fold(client)

    assert changes(found) == [
        (0, "name", None, "Anna Schmidt"),
        (1, "kind", None, "person"),
        (2, "phones", None, '["+49301234567","+442079460958"]'),
        (3, "channel", None, "website"),
        (4, "owner_id", None, "bob"),
        (5, "attributes", None, '{"tier":"gold","vip":"yes"}'),
    ]
    assert {(e.client_id, e.deal_id, e.details) for e in found} == {(client.id, None, None)}
    assert {(e.position, e.event_type) for e in found} == {(7, "ClientRegistered")}


def test_each_entry_carries_the_events_envelope_and_business_time(envelope: Envelope) -> None:
    with recording(replace(envelope, occurred_at=at("2024-01-10T09:00"))):
        client = register()
    before = utc_now()
    imported = replace(
        envelope,
        actor_id="bob",
        actor_role="manager",
        source="import",
        correlation_id="batch-9",
        causation_id="job@3",
        occurred_at=at("2024-02-01T10:00"),
    )
    with recording(imported):
        client.change_details({"name": "Anna Weber"})

    (entry,) = fold(client, position=12)

    assert (entry.actor_id, entry.actor_role, entry.source) == ("bob", "manager", "import")
    assert (entry.correlation_id, entry.causation_id) == ("batch-9", "job@3")
    assert entry.occurred_at == at("2024-02-01T10:00")
    assert before <= entry.recorded_at <= utc_now()
    assert entry.event_id == f"{client.id}@2"
    assert (entry.position, entry.seq) == (12, 0)


def test_a_details_change_is_one_entry_per_changed_field_with_old_and_new_values() -> None:
    client = register(phones=["+49301234567"], attributes={"vip": "yes"})

    client.change_details(
        {
            "name": "Anna Weber",
            "phones": ["+49301234567", "+4930555666"],
            "attributes.vip": None,
            "company": "Weber GmbH",
            "kind": "person",  # unchanged: no entry
        }
    )

    assert changes(fold(client)) == [
        (0, "name", "Anna Schmidt", "Anna Weber"),
        (1, "phones", '["+49301234567"]', '["+49301234567","+4930555666"]'),
        (2, "attributes", '{"vip":"yes"}', '{"vip":null}'),
        (3, "company", None, "Weber GmbH"),
    ]


def test_an_owner_assignment_is_the_owner_field_from_previous_to_new_with_its_reason() -> None:
    client = register(owner_id=None)
    client.assign_owner("maria", reason="round_robin")
    client.assign_owner("ivan", reason="departure")

    (entry,) = fold(client)
    assert changes([entry]) == [(0, "owner_id", "maria", "ivan")]
    assert entry.details == '{"reason":"departure"}'  # why the owner changed


# ------------------------------------------------------------------ non-field events


def test_a_contact_is_one_entry_with_its_payload_as_details_and_no_envelope() -> None:
    client = register()
    client.record_contact(
        channel="call", direction="outbound", summary="asked for prices", outcome="call back"
    )

    (entry,) = fold(client)

    assert (entry.seq, entry.field, entry.old_value, entry.new_value) == (0, None, None, None)
    assert entry.event_type == "ContactMade"
    assert entry.details == (
        '{"channel":"call","direction":"outbound","outcome":"call back",'
        '"purpose":"sales","summary":"asked for prices"}'
    )


def test_a_purchase_keeps_its_decimals_exact_as_strings() -> None:
    client = register()
    client.record_purchase(
        amount=Decimal("120.50"), cost=Decimal("70"), currency=EUR, books_currency=EUR
    )

    (entry,) = fold(client)

    assert entry.details == '{"amount":"120.50","cost":"70","currency":"EUR","deal_id":null}'


def test_a_follow_up_shows_its_due_instant_with_its_offset_and_task_id(envelope: Envelope) -> None:
    with recording(replace(envelope, occurred_at=at("2024-04-01T09:00"))):
        client = register()
    with recording(replace(envelope, occurred_at=at("2024-05-01T09:00"))):
        task = client.schedule_follow_up(
            due_at=at("2024-05-03T14:39+02:00"), assignee_id="bob", note="call back"
        )

    (entry,) = fold(client)

    assert orjson.loads(entry.details or "") == {
        "assignee_id": "bob",
        "due_at": "2024-05-03T14:39:00+02:00",
        "note": "call back",
        "task_id": str(task),
    }


def test_every_other_client_and_deal_event_is_one_entry_of_its_payload() -> None:
    survivor = register(phones=["+49301234567"])
    duplicate = register(name="A. Schmidt", emails=["anna@example.com"])
    recorded: list[AuditEntry] = []

    def keep(aggregate: CrmAggregate) -> None:
        recorded.extend(fold(aggregate))

    survivor.mark_lost(reason="price", note="too expensive")
    keep(survivor)
    task = survivor.schedule_follow_up(due_at=utc_now() + timedelta(days=1), assignee_id="bob")
    survivor.complete_follow_up(task, note="done")
    keep(survivor)
    task = survivor.schedule_follow_up(due_at=utc_now() + timedelta(days=1), assignee_id="bob")
    survivor.cancel_follow_up(task, reason="not needed")
    keep(survivor)
    survivor.give_consent("newsletter")
    keep(survivor)
    survivor.withdraw_consent("newsletter")
    keep(survivor)
    survivor.restrict_processing(reason="disputes accuracy")
    keep(survivor)
    survivor.lift_restriction(reason="corrected")
    keep(survivor)
    survivor.absorb(duplicate)
    keep(duplicate)
    keep(survivor)
    won = open_deal(survivor, title="Won deal")
    won.win(cost=Decimal("100"))
    keep(won)
    lost = open_deal(survivor, title="Lost deal")
    lost.lose(reason="timing", note="next year")
    keep(lost)
    survivor.erase_personal_data(reason="subject_request")
    keep(survivor)

    payload_keys = {e.event_type: set(orjson.loads(e.details or "{}")) for e in recorded}
    assert payload_keys == {
        "ClientLost": {"reason", "note"},
        "FollowUpCompleted": {"task_id", "note"},
        "FollowUpCancelled": {"task_id", "reason"},
        "ConsentGiven": {"purpose"},
        "ConsentWithdrawn": {"purpose"},
        "ProcessingRestricted": {"reason"},
        "RestrictionLifted": {"reason"},
        "ClientMerged": {"into_id"},
        "DuplicateAbsorbed": {"absorbed_id", "phones", "emails"},
        "DealWon": {"client_id", "amount", "cost", "currency", "stage"},
        "DealLost": {"client_id", "reason", "note", "stage"},
        "PersonalDataErased": {"reason"},
    }
    assert all((e.seq, e.field) == (0, None) for e in recorded)
    absorbed = next(e for e in recorded if e.event_type == "DuplicateAbsorbed")
    assert orjson.loads(absorbed.details or "") == {
        "absorbed_id": str(duplicate.id),
        "phones": [],
        "emails": ["anna@example.com"],
    }
    won_entry = next(e for e in recorded if e.event_type == "DealWon")
    assert (won_entry.client_id, won_entry.deal_id) == (None, won.id)
    assert orjson.loads(won_entry.details or "") == {
        "client_id": str(won.client_id),
        "amount": "1500.50",
        "cost": "100",
        "currency": "EUR",
        "stage": "attraction",
    }


# ------------------------------------------------------------------ deals and pipelines


def test_opening_a_deal_records_its_fields_and_links_it_to_its_client() -> None:
    client = register(owner_id="maria")
    deal = open_deal(client, stage="interest")

    found = fold(deal)

    assert changes(found) == [
        (0, "title", None, "Kitchen windows"),
        (1, "amount", None, "1500.50"),
        (2, "currency", None, "EUR"),
        (3, "stage", None, "interest"),
        (4, "owner_id", None, "maria"),
        (5, "pipeline_id", None, str(deal.pipeline_id)),
    ]
    assert {(e.client_id, e.deal_id) for e in found} == {(client.id, deal.id)}


def test_a_deal_opened_without_an_owner_has_no_owner_entry() -> None:
    deal = open_deal(register(owner_id=None))

    assert [e.field for e in fold(deal)] == ["title", "amount", "currency", "stage", "pipeline_id"]


def test_later_deal_events_name_the_deal_and_leave_the_client_to_the_adapter() -> None:
    pipeline = Pipeline.define(name="default", stages=STAGES)
    deal = open_deal(register(), pipeline=pipeline)

    deal.move_to("evaluation", pipeline=pipeline)
    moved = fold(deal)
    deal.change_value(amount=Decimal("1800"), currency=EUR, books_currency=EUR)
    valued = fold(deal)

    assert changes(moved) == [(0, "stage", "attraction", "evaluation")]
    assert changes(valued) == [(0, "amount", "1500.50", "1800")]
    assert {(e.client_id, e.deal_id) for e in moved + valued} == {(None, deal.id)}
    assert [e.details for e in moved + valued] == [None, '{"currency":"EUR"}']


def test_reopening_a_deal_changes_its_status_and_brings_back_its_stage() -> None:
    pipeline = Pipeline.define(name="default", stages=STAGES)
    deal = open_deal(register(), pipeline=pipeline)
    deal.move_to("interest", pipeline=pipeline)
    deal.lose(reason="price")
    deal.reopen()

    assert changes(fold(deal)) == [
        (0, "status", "lost", "open"),
        (1, "stage", "lost", "interest"),
    ]


def test_pipeline_definitions_record_name_and_stages_without_client_or_deal() -> None:
    pipeline = Pipeline.define(name="Windows", stages=("lead", "measurement"))
    defined = fold(pipeline)
    pipeline.redefine(("lead", "measurement", "proposal"))
    redefined = fold(pipeline)

    assert changes(defined) == [
        (0, "name", None, "Windows"),
        (1, "stages", None, '["lead","measurement"]'),
    ]
    assert changes(redefined) == [
        (0, "stages", '["lead","measurement"]', '["lead","measurement","proposal"]')
    ]
    assert {(e.client_id, e.deal_id) for e in defined + redefined} == {(None, None)}


# ------------------------------------------------------------------ values


def test_values_are_text_lists_are_json_decimals_are_exact_and_none_is_absent() -> None:
    assert as_text("Robert'); DROP TABLE x;--") == "Robert'); DROP TABLE x;--"
    assert as_text(("+49301234567", 'a "quoted" one')) == '["+49301234567","a \\"quoted\\" one"]'
    assert as_text(()) == "[]"
    assert as_text(Decimal("0.0100")) == "0.0100"
    assert as_text(UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert as_text(None) is None


# ------------------------------------------------------------------ erasure


def test_erasure_purges_personal_field_values_and_keeps_who_when_and_which_field() -> None:
    client = register(phones=["+49301234567"], channel="website", attributes={"vip": "yes"})

    purged = [redacted(e) for e in fold(client)]

    assert changes(purged) == [
        (0, "name", None, None),
        (1, "kind", None, "person"),
        (2, "phones", None, None),
        (3, "channel", None, None),
        (4, "owner_id", None, "bob"),
        (5, "attributes", None, None),
    ]
    assert [e.redacted for e in purged] == [True, False, True, True, False, True]
    assert {(e.actor_id, e.event_type) for e in purged} == {("alice", "ClientRegistered")}


def test_erasure_nulls_the_personal_keys_of_details_and_keeps_the_rest() -> None:
    client = register()
    client.record_contact(channel="visit", direction="inbound", summary="lives at Hauptstr. 1")

    (entry,) = [redacted(e) for e in fold(client)]

    assert entry.redacted
    assert orjson.loads(entry.details or "") == {
        "channel": "visit",
        "direction": "inbound",
        "purpose": "sales",
        "summary": None,
        "outcome": None,
    }


def test_erasure_purges_every_value_of_a_details_change_as_a_rebuild_reads_none() -> None:
    client = register()
    client.change_details({"kind": "company", "attributes.vip": "yes"})

    purged = [redacted(e) for e in fold(client)]

    assert changes(purged) == [(0, "kind", None, None), (1, "attributes", None, None)]


def test_erasure_purges_the_key_from_an_attribute_entry_of_the_first_version() -> None:
    """Entries folded before attribute keys were sealed named them: ``attributes.vip``."""
    client = register()
    client.change_details({"attributes.vip": "yes"})
    (entry,) = fold(client)
    old_style = replace(entry, field="attributes.vip", old_value=None, new_value="yes")

    purged = redacted(old_style)

    assert (purged.field, purged.old_value, purged.new_value) == ("attributes", None, None)
    assert purged.redacted


def test_an_entry_without_personal_values_is_left_as_it_is() -> None:
    client = register()
    client.record_purchase(amount=Decimal("10"), currency=EUR, books_currency=EUR)
    pipeline = Pipeline.define(name="Windows", stages=("lead",))

    for entry in fold(client) + fold(pipeline):
        assert redacted(entry) is entry
    title = fold(open_deal(client))[0]
    assert (redacted(title).field, redacted(title).new_value) == ("title", None)
