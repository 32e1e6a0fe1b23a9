"""The Client aggregate: every command, the events it records and the rules it keeps."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Context
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest

from domain.client import ERASURE_REASONS, Client
from domain.envelope import Envelope, recording
from domain.errors import InvalidValue, MissingEnvelope, RuleViolation
from tests.conftest import at

pytestmark = pytest.mark.usefixtures("attributed")

EUR = "EUR"


def register(**overrides: Any) -> Client:
    fields: dict[str, Any] = {
        "name": "Anna Schmidt",
        "phones": ["+49301234567"],
        "emails": ["anna@example.com"],
        "owner_id": "bob",
    }
    fields.update(overrides)
    return Client.register(**fields)


def names(client: Client) -> list[str]:
    return [type(event).__name__ for event in client.pending_events]


def last_event(client: Client) -> Any:
    return client.pending_events[-1]


def buy(client: Client, amount: str = "100") -> None:
    client.record_purchase(amount=Decimal(amount), currency=EUR, books_currency=EUR)


def back_dated(envelope: Envelope, when: str) -> Any:
    return recording(replace(envelope, occurred_at=at(when)))


def in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


# ---------------------------------------------------------------------- register


def test_registration_records_the_normalised_details_in_state_and_event() -> None:
    client = Client.register(
        name="  Anna   Schmidt ",
        kind="company",
        company=" Schmidt GmbH ",
        phones=["+49301234567", "+442079460958", "+49301234567"],
        emails=[" Anna@Example.COM "],
        address=" Hauptstr. 1, Berlin ",
        channel="website",
        attributes={"vip": " yes "},
        owner_id="bob",
    )

    assert names(client) == ["ClientRegistered"]
    event = last_event(client)
    expected = {
        "name": "Anna Schmidt",
        "kind": "company",
        "company": "Schmidt GmbH",
        "phones": ("+49301234567", "+442079460958"),
        "emails": ("anna@example.com",),
        "address": "Hauptstr. 1, Berlin",
        "channel": "website",
        "attributes": {"vip": "yes"},
        "owner_id": "bob",
    }
    for field, value in expected.items():
        assert getattr(event, field) == value, field
        assert getattr(client, field) == value, field
    assert event.originator_id == client.id
    assert client.version == 1


def test_a_registered_client_starts_with_no_history() -> None:
    client = register()

    assert client.purchases_count == 0
    assert client.contacts_count == 0
    assert client.last_purchase_at is None
    assert client.lost_at is None
    assert not client.is_lost
    assert client.follow_ups == {}
    assert client.consents == set()
    assert not client.restricted
    assert client.is_live


def test_a_client_is_a_person_unless_registered_as_a_company() -> None:
    assert register().kind == "person"


def test_blank_optional_details_are_recorded_as_absent() -> None:
    client = register(company="   ", address="", channel=None)

    assert (client.company, client.address, client.channel) == (None, None, None)


def test_registration_with_an_unknown_kind_is_refused() -> None:
    with pytest.raises(InvalidValue, match="kind") as caught:
        register(kind="robot")
    assert caught.value.field == "kind"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "   "}, "name"),
        ({"phones": ["030 1234567"]}, "phones"),
        ({"emails": ["anna-at-example.com"]}, "emails"),
        ({"attributes": {"Shoe Size": "42"}}, "attributes.Shoe Size"),
        ({"attributes": {"note": "a\x00b"}}, "attributes.note"),
        ({"attributes": {f"key_{n}": "x" for n in range(101)}}, "attributes"),
        ({"company": "x" * 501}, "company"),
    ],
)
def test_registration_with_an_invalid_detail_is_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        register(**overrides)
    assert caught.value.field == field


def test_a_client_may_have_100_attributes() -> None:
    attributes = {f"key_{n}": str(n) for n in range(100)}

    assert register(attributes=attributes).attributes == attributes


def test_commands_outside_a_recording_are_a_programming_error() -> None:
    with pytest.raises(MissingEnvelope):
        Context().run(register)


# ---------------------------------------------------------------- change_details


def test_only_changed_fields_are_recorded_with_old_and_new_values() -> None:
    client = register(company="Old GmbH")

    client.change_details({"name": " Anna  Schmidt ", "company": "New GmbH", "address": "Berlin"})

    assert names(client)[1:] == ["ClientDetailsChanged"]
    event = last_event(client)
    assert event.fields == ("company", "address")
    assert event.old == {"company": "Old GmbH", "address": None}
    assert event.new == {"company": "New GmbH", "address": "Berlin"}
    assert (client.name, client.company, client.address) == ("Anna Schmidt", "New GmbH", "Berlin")


def test_a_patch_that_changes_nothing_records_nothing() -> None:
    client = register()

    client.change_details(
        {
            "name": "Anna Schmidt ",
            "phones": ["+49301234567"],
            "emails": ["ANNA@example.com"],
            "attributes.missing": None,
        }
    )
    client.change_details({})

    assert names(client) == ["ClientRegistered"]
    assert client.version == 1


def test_changed_phones_and_emails_are_normalised() -> None:
    client = register()

    client.change_details({"phones": ["+442079460958"], "emails": ["Bob@Example.org"]})

    event = last_event(client)
    assert event.new == {"phones": ("+442079460958",), "emails": ("bob@example.org",)}
    assert event.old == {"phones": ("+49301234567",), "emails": ("anna@example.com",)}
    assert client.phones == ("+442079460958",)
    assert client.emails == ("bob@example.org",)


def test_an_attribute_can_be_set_changed_and_removed() -> None:
    client = register(attributes={"size": "M"})

    client.change_details({"attributes.vip": "yes", "attributes.size": "L"})
    assert client.attributes == {"size": "L", "vip": "yes"}
    assert last_event(client).old == {"attributes": {"vip": None, "size": "M"}}

    client.change_details({"attributes.vip": None})
    assert client.attributes == {"size": "L"}
    assert last_event(client).new == {"attributes": {"vip": None}}


def test_changed_attributes_are_one_field_whose_keys_are_kept_only_with_the_values() -> None:
    client = register(attributes={"size": "M"})

    client.change_details(
        {"name": "Anna Weber", "attributes.vip": "yes", "company": "X", "attributes.size": "L"}
    )

    event = last_event(client)
    assert event.fields == ("name", "attributes", "company")  # no key in clear
    assert event.old == {
        "name": "Anna Schmidt",
        "attributes": {"vip": None, "size": "M"},
        "company": None,
    }
    assert event.new == {
        "name": "Anna Weber",
        "attributes": {"vip": "yes", "size": "L"},
        "company": "X",
    }


def test_a_details_change_of_the_first_version_reads_as_the_second() -> None:
    """Version 1 named each attribute as a field (``attributes.vip``), in clear."""
    state = {
        "fields": ["attributes.vip", "name", "attributes.size"],
        "old": {"attributes.vip": None, "name": "Ann", "attributes.size": "M"},
        "new": {"attributes.vip": "yes", "name": "Bo", "attributes.size": None},
    }

    Client.ClientDetailsChanged.upcast_v1_v2(state)

    assert state == {
        "fields": ["attributes", "name"],
        "old": {"name": "Ann", "attributes": {"vip": None, "size": "M"}},
        "new": {"name": "Bo", "attributes": {"vip": "yes", "size": None}},
    }


@pytest.mark.parametrize("field", ["birthday", "owner_id", "id", "erased"])
def test_a_field_that_is_not_a_profile_field_cannot_be_changed(field: str) -> None:
    client = register()

    with pytest.raises(InvalidValue, match="not a client field") as caught:
        client.change_details({field: "x"})
    assert caught.value.field == field
    assert client.version == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"kind": "robot"}, "kind"),
        ({"phones": "+49301234567"}, "phones"),
        ({"phones": ["030 123"]}, "phones"),
        ({"phones": ["+44 20 7946 0958"]}, "phones"),  # read into E.164 by the application
        ({"emails": [42]}, "emails"),
        ({"attributes.Bad-Key": "x"}, "attributes.Bad-Key"),
        ({"attributes.vip": 1}, "attributes.vip"),
        ({"company": 7}, "company"),
    ],
)
def test_an_invalid_change_is_refused_naming_the_field(patch: dict[str, Any], field: str) -> None:
    client = register()

    with pytest.raises(InvalidValue) as caught:
        client.change_details(patch)
    assert caught.value.field == field


def test_a_patch_with_one_invalid_field_changes_nothing() -> None:
    client = register()

    with pytest.raises(InvalidValue):
        client.change_details({"company": "Acme", "emails": ["not an email"]})

    assert client.company is None
    assert names(client) == ["ClientRegistered"]


def test_a_change_beyond_100_attributes_is_refused() -> None:
    client = register(attributes={f"key_{n}": "x" for n in range(100)})

    with pytest.raises(InvalidValue, match="at most 100") as caught:
        client.change_details({"attributes.one_more": "x"})
    assert caught.value.field == "attributes"

    client.change_details({"attributes.key_0": None, "attributes.one_more": "x"})
    assert len(client.attributes) == 100
    assert "one_more" in client.attributes


# ---------------------------------------------------------------- record_contact


def test_a_contact_is_recorded_with_its_channel_direction_purpose_and_texts() -> None:
    client = register()

    client.record_contact(
        channel="call", direction="outbound", summary="  Asked about prices ", outcome="callback"
    )

    event = last_event(client)
    assert type(event).__name__ == "ContactMade"
    assert (event.channel, event.direction, event.purpose) == ("call", "outbound", "sales")
    assert (event.summary, event.outcome) == ("Asked about prices", "callback")
    assert client.contacts_count == 1


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"channel": "fax", "direction": "inbound"}, "channel"),
        ({"channel": "call", "direction": "sideways"}, "direction"),
        ({"channel": "call", "direction": "inbound", "purpose": "spam"}, "purpose"),
        ({"channel": "call", "direction": "inbound", "outcome": "x" * 501}, "outcome"),
        ({"channel": "call", "direction": "inbound", "summary": "bell\x07"}, "summary"),
    ],
)
def test_a_contact_with_an_unknown_choice_or_bad_text_is_refused(
    kwargs: dict[str, str], field: str
) -> None:
    client = register()

    with pytest.raises(InvalidValue) as caught:
        client.record_contact(**kwargs)
    assert caught.value.field == field
    assert client.contacts_count == 0


def test_marketing_contacts_are_refused_while_processing_is_restricted() -> None:
    client = register()
    client.restrict_processing(reason="subject objected")

    with pytest.raises(RuleViolation, match="restricted") as caught:
        client.record_contact(channel="email", direction="outbound", purpose="marketing")
    assert caught.value.field == "purpose"

    client.record_contact(channel="call", direction="inbound", purpose="service")
    assert names(client)[-1] == "ContactMade"


def test_marketing_contacts_resume_when_the_restriction_is_lifted() -> None:
    client = register()
    client.restrict_processing(reason="subject objected")
    client.lift_restriction(reason="objection withdrawn")

    client.record_contact(channel="email", direction="outbound", purpose="marketing")

    assert last_event(client).purpose == "marketing"


# --------------------------------------------------------------- record_purchase


def test_a_purchase_records_amount_cost_currency_and_deal() -> None:
    client = register()
    deal_id = uuid4()

    client.record_purchase(
        amount=Decimal("120.50"),
        cost=Decimal("80"),
        currency=EUR,
        books_currency=EUR,
        deal_id=deal_id,
    )

    event = last_event(client)
    assert type(event).__name__ == "PurchaseMade"
    assert (event.amount, event.cost, event.currency, event.deal_id) == (
        Decimal("120.50"),
        Decimal("80"),
        EUR,
        deal_id,
    )
    assert client.purchases_count == 1
    assert client.last_purchase_at == event.occurred_at


def test_a_purchase_without_cost_or_deal_has_zero_cost_and_no_deal() -> None:
    client = register()

    buy(client)

    assert (last_event(client).cost, last_event(client).deal_id) == (Decimal(0), None)


def test_a_purchase_may_cost_more_than_it_brought_in() -> None:
    client = register()

    client.record_purchase(amount=Decimal(10), cost=Decimal(15), currency=EUR, books_currency=EUR)

    assert last_event(client).amount - last_event(client).cost == Decimal(-5)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"amount": Decimal(0)}, "amount"),
        ({"amount": Decimal(-5)}, "amount"),
        ({"amount": Decimal("1.00001")}, "amount"),
        ({"cost": Decimal(-1)}, "cost"),
        ({"currency": "USD"}, "currency"),
        ({"currency": "eur"}, "currency"),
    ],
)
def test_an_invalid_purchase_is_refused_naming_the_field(
    kwargs: dict[str, Any], field: str
) -> None:
    client = register()
    purchase: dict[str, Any] = {"amount": Decimal(10), "currency": EUR, "books_currency": EUR}
    purchase.update(kwargs)

    with pytest.raises(InvalidValue) as caught:
        client.record_purchase(**purchase)
    assert caught.value.field == field
    assert client.purchases_count == 0


def test_the_last_purchase_is_the_latest_by_business_time_not_by_arrival(
    envelope: Envelope,
) -> None:
    with back_dated(envelope, "2024-01-01T09:00"):
        client = register()
    with back_dated(envelope, "2024-03-01T10:00"):
        buy(client)
    with back_dated(envelope, "2024-02-01T10:00"):
        buy(client)

    assert client.purchases_count == 2
    assert client.last_purchase_at == at("2024-03-01T10:00")


# --------------------------------------------------------------------- mark_lost


def test_a_lost_client_is_recorded_with_reason_and_note() -> None:
    client = register()

    client.mark_lost(reason="competitor", note=" went to Acme ")

    event = last_event(client)
    assert type(event).__name__ == "ClientLost"
    assert (event.reason, event.note) == ("competitor", "went to Acme")
    assert client.lost_at == event.occurred_at
    assert client.is_lost


def test_a_client_cannot_be_lost_for_an_unknown_reason() -> None:
    client = register()

    with pytest.raises(InvalidValue) as caught:
        client.mark_lost(reason="bored")
    assert caught.value.field == "reason"
    assert not client.is_lost


def test_a_lost_client_cannot_be_lost_again_before_buying() -> None:
    client = register()
    client.mark_lost(reason="price")

    with pytest.raises(RuleViolation, match="already lost"):
        client.mark_lost(reason="service")
    assert names(client).count("ClientLost") == 1


def test_a_never_paying_client_can_be_lost() -> None:
    client = register()

    client.mark_lost(reason="no_need")

    assert client.is_lost
    assert client.purchases_count == 0


def test_a_lost_client_who_buys_again_is_no_longer_lost_and_can_be_lost_again(
    envelope: Envelope,
) -> None:
    with back_dated(envelope, "2024-01-01T09:00"):
        client = register()
    with back_dated(envelope, "2024-02-01T09:00"):
        client.mark_lost(reason="price")
    with back_dated(envelope, "2024-03-01T09:00"):
        buy(client)

    assert not client.is_lost
    with back_dated(envelope, "2024-04-01T09:00"):
        client.mark_lost(reason="moved")
    assert client.is_lost
    assert client.lost_at == at("2024-04-01T09:00")
    assert names(client).count("ClientLost") == 2


def test_a_purchase_back_dated_before_the_loss_does_not_make_the_client_a_client_again(
    envelope: Envelope,
) -> None:
    with back_dated(envelope, "2024-01-01T09:00"):
        client = register()
    with back_dated(envelope, "2024-02-01T09:00"):
        client.mark_lost(reason="price")
    with back_dated(envelope, "2024-01-15T09:00"):
        buy(client)

    assert client.is_lost
    with pytest.raises(RuleViolation, match="already lost"):
        client.mark_lost(reason="price")


# ------------------------------------------------------------------ assign_owner


def test_a_new_owner_is_recorded_with_the_previous_one() -> None:
    client = register(owner_id="bob")

    client.assign_owner("carol", reason="departure")

    event = last_event(client)
    assert type(event).__name__ == "OwnerAssigned"
    assert (event.owner_id, event.previous_owner_id, event.reason) == ("carol", "bob", "departure")
    assert client.owner_id == "carol"


def test_a_first_owner_has_no_previous_owner() -> None:
    client = register(owner_id=None)

    client.assign_owner("carol", reason="round_robin")

    assert last_event(client).previous_owner_id is None
    assert client.owner_id == "carol"


def test_assigning_the_current_owner_records_nothing() -> None:
    client = register(owner_id="bob")

    client.assign_owner("bob")

    assert names(client) == ["ClientRegistered"]


@pytest.mark.parametrize(
    ("owner_id", "reason", "field"),
    [("  ", "manual", "owner_id"), ("carol", "whim", "reason")],
)
def test_an_owner_must_be_named_and_the_reason_known(
    owner_id: str, reason: str, field: str
) -> None:
    client = register(owner_id="bob")

    with pytest.raises(InvalidValue) as caught:
        client.assign_owner(owner_id, reason=reason)
    assert caught.value.field == field
    assert client.owner_id == "bob"


# --------------------------------------------------------------------- follow-ups


def test_scheduling_a_follow_up_returns_its_task_id_and_opens_the_task() -> None:
    client = register()
    due = in_an_hour()

    task_id = client.schedule_follow_up(due_at=due, assignee_id="bob", note=" call back ")

    event = last_event(client)
    assert type(event).__name__ == "FollowUpScheduled"
    assert (event.task_id, event.due_at, event.assignee_id, event.note) == (
        task_id,
        due,
        "bob",
        "call back",
    )
    assert client.follow_ups[task_id].due_at == due
    assert client.follow_ups[task_id].assignee_id == "bob"


def test_each_follow_up_gets_its_own_task_id() -> None:
    client = register()

    first = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    second = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")

    assert first != second
    assert set(client.follow_ups) == {first, second}


def test_a_follow_up_due_keeps_the_assignees_offset() -> None:
    client = register()
    kyiv = timezone(timedelta(hours=2))
    due = (datetime.now(UTC) + timedelta(days=2)).astimezone(kyiv)

    task_id = client.schedule_follow_up(due_at=due, assignee_id="bob")

    assert client.follow_ups[task_id].due_at == due
    assert client.follow_ups[task_id].due_at.utcoffset() == timedelta(hours=2)


def test_a_follow_up_cannot_be_due_before_it_is_scheduled() -> None:
    client = register()

    with pytest.raises(InvalidValue, match="due before") as caught:
        client.schedule_follow_up(due_at=datetime.now(UTC) - timedelta(minutes=1), assignee_id="b")
    assert caught.value.field == "due_at"
    assert client.follow_ups == {}


def test_a_back_dated_follow_up_is_measured_against_its_own_business_time(
    envelope: Envelope,
) -> None:
    with back_dated(envelope, "2024-03-01T10:00"):
        client = register()
        task_id = client.schedule_follow_up(due_at=at("2024-03-03T14:39"), assignee_id="bob")
        with pytest.raises(InvalidValue) as caught:
            client.schedule_follow_up(due_at=at("2024-03-01T09:59"), assignee_id="bob")

    assert caught.value.field == "due_at"
    assert set(client.follow_ups) == {task_id}


def test_a_follow_up_due_without_a_timezone_is_refused() -> None:
    client = register()

    with pytest.raises(InvalidValue, match="timezone") as caught:
        client.schedule_follow_up(due_at=datetime(2099, 1, 1, 10, 0), assignee_id="bob")
    assert caught.value.field == "due_at"


def test_a_follow_up_needs_an_assignee() -> None:
    client = register()

    with pytest.raises(InvalidValue) as caught:
        client.schedule_follow_up(due_at=in_an_hour(), assignee_id=" ")
    assert caught.value.field == "assignee_id"


def test_completing_a_follow_up_closes_it() -> None:
    client = register()
    task_id = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")

    client.complete_follow_up(task_id, note="reached her")

    event = last_event(client)
    assert type(event).__name__ == "FollowUpCompleted"
    assert (event.task_id, event.note) == (task_id, "reached her")
    assert task_id not in client.follow_ups


def test_cancelling_a_follow_up_closes_it() -> None:
    client = register()
    task_id = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")

    client.cancel_follow_up(task_id, reason="not needed")

    event = last_event(client)
    assert type(event).__name__ == "FollowUpCancelled"
    assert (event.task_id, event.reason) == (task_id, "not needed")
    assert client.follow_ups == {}


def test_a_completed_follow_up_cannot_be_completed_or_cancelled_again() -> None:
    client = register()
    task_id = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    client.complete_follow_up(task_id)

    with pytest.raises(RuleViolation, match="no open follow-up") as caught:
        client.complete_follow_up(task_id)
    assert caught.value.field == "task_id"
    with pytest.raises(RuleViolation, match="no open follow-up"):
        client.cancel_follow_up(task_id)
    assert names(client).count("FollowUpCompleted") == 1
    assert "FollowUpCancelled" not in names(client)


def test_a_cancelled_follow_up_cannot_be_completed() -> None:
    client = register()
    task_id = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    client.cancel_follow_up(task_id)

    with pytest.raises(RuleViolation) as caught:
        client.complete_follow_up(task_id)
    assert caught.value.field == "task_id"


def test_an_unknown_follow_up_cannot_be_completed_or_cancelled() -> None:
    client = register()
    other = register(phones=[], emails=[])
    foreign_task = other.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")

    for command in (client.complete_follow_up, client.cancel_follow_up):
        with pytest.raises(RuleViolation):
            command(uuid4())
        with pytest.raises(RuleViolation):
            command(foreign_task)
    assert client.version == 1


# ----------------------------------------------------------------------- consents


def test_giving_consent_records_it_once() -> None:
    client = register()

    client.give_consent("newsletter")
    client.give_consent("newsletter")

    assert names(client).count("ConsentGiven") == 1
    assert last_event(client).purpose == "newsletter"
    assert client.consents == {"newsletter"}


def test_a_given_consent_can_be_withdrawn_and_given_again() -> None:
    client = register()
    client.give_consent("newsletter")

    client.withdraw_consent("newsletter")
    assert client.consents == set()
    assert last_event(client).purpose == "newsletter"
    assert names(client)[-1] == "ConsentWithdrawn"

    client.give_consent("newsletter")
    assert client.consents == {"newsletter"}
    assert names(client).count("ConsentGiven") == 2


def test_only_a_given_consent_can_be_withdrawn() -> None:
    client = register()
    client.give_consent("newsletter")

    with pytest.raises(RuleViolation, match="no consent") as caught:
        client.withdraw_consent("profiling")
    assert caught.value.field == "purpose"
    assert client.consents == {"newsletter"}


@pytest.mark.parametrize("purpose", ["News Letter", "calls_from_anna_on_tuesdays", ""])
def test_consent_is_for_a_declared_purpose_as_purposes_stay_in_clear(purpose: str) -> None:
    client = register()

    with pytest.raises(InvalidValue, match="not one of the declared purposes") as caught:
        client.give_consent(purpose)
    assert caught.value.field == "purpose"
    with pytest.raises(InvalidValue, match="not one of the declared purposes"):
        client.withdraw_consent(purpose)
    assert names(client) == ["ClientRegistered"]


def test_the_business_declares_its_own_purposes() -> None:
    client = register()

    client.give_consent("loyalty_club", declared=("loyalty_club",))
    with pytest.raises(InvalidValue, match="declared purposes: loyalty_club"):
        client.give_consent("newsletter", declared=("loyalty_club",))

    assert client.consents == {"loyalty_club"}


def test_a_consent_stays_withdrawable_after_its_purpose_is_no_longer_declared() -> None:
    client = register()
    client.give_consent("newsletter")

    client.withdraw_consent("newsletter", declared=("profiling",))

    assert client.consents == set()


# -------------------------------------------------------------------- restriction


def test_restricting_processing_is_recorded_with_its_reason() -> None:
    client = register()

    client.restrict_processing(reason=" subject objected ")

    assert names(client)[-1] == "ProcessingRestricted"
    assert last_event(client).reason == "subject objected"
    assert client.restricted


def test_processing_cannot_be_restricted_twice() -> None:
    client = register()
    client.restrict_processing(reason="objection")

    with pytest.raises(RuleViolation, match="already restricted"):
        client.restrict_processing(reason="objection again")
    assert names(client).count("ProcessingRestricted") == 1


def test_a_restriction_needs_a_reason() -> None:
    client = register()

    with pytest.raises(InvalidValue) as caught:
        client.restrict_processing(reason="  ")
    assert caught.value.field == "reason"
    assert not client.restricted


def test_a_restriction_can_be_lifted_only_while_restricted() -> None:
    client = register()

    with pytest.raises(RuleViolation, match="not restricted"):
        client.lift_restriction(reason="never was")

    client.restrict_processing(reason="objection")
    client.lift_restriction(reason="resolved")
    assert not client.restricted
    assert names(client)[-1] == "RestrictionLifted"
    assert last_event(client).reason == "resolved"

    with pytest.raises(RuleViolation, match="not restricted"):
        client.lift_restriction(reason="again")


def test_a_restricted_client_accepts_no_new_deals_until_lifted() -> None:
    client = register()
    client.check_accepts_new_deal()
    client.restrict_processing(reason="objection")

    with pytest.raises(RuleViolation, match="no new deals") as caught:
        client.check_accepts_new_deal()
    assert caught.value.field == "client_id"

    client.lift_restriction(reason="resolved")
    client.check_accepts_new_deal()


# ------------------------------------------------------------------------ erasure


def erased_client() -> Client:
    client = register(
        company="Schmidt GmbH",
        address="Berlin",
        channel="fair in Leipzig, met by Anna's brother",
        attributes={"vip": "yes"},
        kind="company",
    )
    client.erase_personal_data(reason="subject_request")
    return client


def test_erasure_is_recorded_and_clears_personal_state() -> None:
    client = erased_client()

    event = last_event(client)
    assert type(event).__name__ == "PersonalDataErased"
    assert event.reason == "subject_request"
    assert client.erased
    assert not client.is_live
    assert client.name == ""
    assert (client.company, client.address, client.channel) == (None, None, None)
    assert (client.phones, client.emails) == ((), ())
    assert client.attributes == {}
    assert client.contact_points == frozenset()


def test_erasure_keeps_the_non_personal_facts() -> None:
    client = register(owner_id="bob")
    buy(client)

    client.erase_personal_data(reason="subject_request")

    assert client.purchases_count == 1
    assert client.owner_id == "bob"


def test_erasure_closes_the_open_follow_ups_so_nobody_calls_an_erased_client() -> None:
    client = register()
    client.schedule_follow_up(due_at=datetime.now(UTC) + timedelta(days=1), assignee_id="bob")

    client.erase_personal_data(reason="subject_request")

    assert client.follow_ups == {}


@pytest.mark.parametrize("reason", ["", "asked by Anna Schmidt on the phone", "Subject_Request"])
def test_erasure_needs_a_reason_from_the_closed_set_as_it_stays_in_clear(reason: str) -> None:
    client = register()

    with pytest.raises(InvalidValue, match="not one of: subject_request, ") as caught:
        client.erase_personal_data(reason=reason)
    assert caught.value.field == "reason"
    assert not client.erased


@pytest.mark.parametrize("reason", ERASURE_REASONS)
def test_each_reason_of_the_closed_set_erases(reason: str) -> None:
    client = register()

    client.erase_personal_data(reason=reason)

    assert (client.erased, last_event(client).reason) == (True, reason)


def test_personal_data_cannot_be_erased_twice() -> None:
    client = erased_client()

    with pytest.raises(RuleViolation, match="already erased"):
        client.erase_personal_data(reason="objection")
    assert names(client).count("PersonalDataErased") == 1


def _commands_on(client: Client, task_id: Any) -> dict[str, Callable[[], object]]:
    """Every command of a client, with arguments that would succeed on a live card."""
    other = register(phones=[], emails=[])
    return {
        "change_details": lambda: client.change_details({"name": "Someone Else"}),
        "record_contact": lambda: client.record_contact(channel="call", direction="inbound"),
        "record_purchase": lambda: buy(client),
        "mark_lost": lambda: client.mark_lost(reason="price"),
        "assign_owner": lambda: client.assign_owner("zoe"),
        "schedule_follow_up": lambda: client.schedule_follow_up(
            due_at=in_an_hour(), assignee_id="bob"
        ),
        "complete_follow_up": lambda: client.complete_follow_up(task_id),
        "cancel_follow_up": lambda: client.cancel_follow_up(task_id),
        "give_consent": lambda: client.give_consent("newsletter"),
        "withdraw_consent": lambda: client.withdraw_consent("marketing_calls"),
        "restrict_processing": lambda: client.restrict_processing(reason="objection"),
        "lift_restriction": lambda: client.lift_restriction(reason="resolved"),
        "absorb_a_duplicate": lambda: client.absorb(other),
        "be_absorbed": lambda: other.absorb(client),
        "check_accepts_new_deal": client.check_accepts_new_deal,
    }


COMMANDS = [
    "change_details",
    "record_contact",
    "record_purchase",
    "mark_lost",
    "assign_owner",
    "schedule_follow_up",
    "complete_follow_up",
    "cancel_follow_up",
    "give_consent",
    "withdraw_consent",
    "restrict_processing",
    "lift_restriction",
    "absorb_a_duplicate",
    "be_absorbed",
    "check_accepts_new_deal",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_after_erasure_every_command_is_refused(command: str) -> None:
    client = register()
    task_id = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    client.give_consent("marketing_calls")
    client.erase_personal_data(reason="subject_request")
    version = client.version

    with pytest.raises(RuleViolation, match="erased"):
        _commands_on(client, task_id)[command]()
    assert client.version == version
    assert names(client)[-1] == "PersonalDataErased"


# -------------------------------------------------------------------------- merge


def test_a_duplicates_phones_and_emails_join_the_survivor_once() -> None:
    survivor = register(phones=["+49301234567"], emails=["anna@example.com"])
    duplicate = register(
        phones=["+49301234567", "+442079460958"],
        emails=["anna.s@example.org", "anna@example.com"],
    )

    survivor.absorb(duplicate)

    event = last_event(survivor)
    assert type(event).__name__ == "DuplicateAbsorbed"
    assert event.absorbed_id == duplicate.id
    assert event.phones == ("+442079460958",)
    assert event.emails == ("anna.s@example.org",)
    assert survivor.phones == ("+49301234567", "+442079460958")
    assert survivor.emails == ("anna@example.com", "anna.s@example.org")
    assert survivor.absorbed_ids == [duplicate.id]


def test_a_merged_duplicate_is_closed_into_the_survivor() -> None:
    survivor = register()
    duplicate = register(phones=["+442079460958"], emails=[])

    survivor.absorb(duplicate)

    assert names(duplicate)[-1] == "ClientMerged"
    assert last_event(duplicate).into_id == survivor.id
    assert duplicate.merged_into == survivor.id
    assert not duplicate.is_live
    assert duplicate.contact_points == frozenset()
    assert survivor.contact_points >= {("phone", "+442079460958")}


def test_a_duplicates_open_follow_ups_are_cancelled_by_the_merge() -> None:
    survivor = register()
    duplicate = register(phones=[], emails=[])
    done = duplicate.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    duplicate.complete_follow_up(done)
    first = duplicate.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    second = duplicate.schedule_follow_up(due_at=in_an_hour(), assignee_id="carol")
    before = len(duplicate.pending_events)

    survivor.absorb(duplicate)

    added = duplicate.pending_events[before:]
    assert [type(e).__name__ for e in added] == [
        "FollowUpCancelled",
        "FollowUpCancelled",
        "ClientMerged",
    ]
    assert {e.task_id for e in added[:2]} == {first, second}
    assert duplicate.follow_ups == {}
    assert survivor.follow_ups == {}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_merged_duplicate_refuses_every_further_command(command: str) -> None:
    survivor = register()
    duplicate = register(phones=[], emails=[])
    duplicate.give_consent("marketing_calls")
    survivor.absorb(duplicate)
    version = duplicate.version

    with pytest.raises(RuleViolation, match="merged into"):
        _commands_on(duplicate, uuid4())[command]()
    assert duplicate.version == version


def test_a_client_cannot_be_merged_into_itself() -> None:
    client = register()
    client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    version = client.version

    with pytest.raises(RuleViolation, match="into itself"):
        client.absorb(client)
    assert client.version == version
    assert client.is_live
    assert len(client.follow_ups) == 1


def test_a_merge_refused_for_the_survivor_leaves_the_duplicate_untouched(
    envelope: Envelope,
) -> None:
    with back_dated(envelope, "2024-01-01T09:00"):
        duplicate = register(phones=[], emails=[])
        task_id = duplicate.schedule_follow_up(due_at=at("2024-06-01T09:00"), assignee_id="bob")
    with back_dated(envelope, "2024-03-01T09:00"):
        survivor = register()
    version, pending = duplicate.version, list(duplicate.pending_events)

    # The merge is dated before the survivor existed, so the survivor must refuse it.
    with back_dated(envelope, "2024-02-01T09:00"), pytest.raises(InvalidValue) as caught:
        survivor.absorb(duplicate)

    assert caught.value.field == "occurred_at"
    assert survivor.absorbed_ids == []
    assert duplicate.version == version
    assert duplicate.pending_events == pending
    assert duplicate.is_live
    assert set(duplicate.follow_ups) == {task_id}


# ---------------------------------------------------------------- contact points


def test_contact_points_are_the_clients_phones_and_emails() -> None:
    client = register(phones=["+49301234567", "+442079460958"], emails=["Anna@Example.com"])

    assert client.contact_points == frozenset(
        {
            ("phone", "+49301234567"),
            ("phone", "+442079460958"),
            ("email", "anna@example.com"),
        }
    )


def test_contact_points_follow_changed_details() -> None:
    client = register()

    client.change_details({"phones": [], "emails": ["new@example.com"]})

    assert client.contact_points == frozenset({("email", "new@example.com")})


# ------------------------------------------------------------------- envelope


def run_every_kind_of_command(client: Client) -> None:
    client.change_details({"company": "Acme"})
    client.record_contact(channel="call", direction="inbound")
    buy(client)
    client.mark_lost(reason="price")
    client.assign_owner("carol")
    task_id = client.schedule_follow_up(due_at=in_an_hour(), assignee_id="bob")
    client.complete_follow_up(task_id)
    client.give_consent("newsletter")
    client.restrict_processing(reason="objection")
    client.erase_personal_data(reason="subject_request")


def test_every_event_carries_the_envelope_of_its_command() -> None:
    envelope = Envelope(
        actor_id="carol",
        actor_role="manager",
        source="import",
        correlation_id="corr-7",
        causation_id="cause-3",
    )
    with recording(envelope):
        client = register()
        run_every_kind_of_command(client)

    assert len(client.pending_events) == 11
    for event in client.pending_events:
        name = type(event).__name__
        assert event.actor_id == "carol", name
        assert event.actor_role == "manager", name
        assert event.source == "import", name
        assert event.correlation_id == "corr-7", name
        assert event.causation_id == "cause-3", name


def test_an_events_business_time_defaults_to_its_record_time() -> None:
    before = datetime.now(UTC)
    client = register()
    run_every_kind_of_command(client)
    after = datetime.now(UTC)

    for event in client.pending_events:
        assert event.occurred_at == event.timestamp, type(event).__name__
        assert before <= event.occurred_at <= after


def test_a_back_dated_business_time_is_kept(envelope: Envelope) -> None:
    with back_dated(envelope, "2019-05-04T12:00"):
        client = register()
        buy(client)

    registered, purchase = client.pending_events
    assert registered.occurred_at == at("2019-05-04T12:00")
    assert purchase.occurred_at == at("2019-05-04T12:00")
    assert purchase.timestamp > at("2019-05-04T12:00")
    assert client.born_at == at("2019-05-04T12:00")


def test_a_business_time_in_another_timezone_is_kept_as_the_same_instant_in_utc(
    envelope: Envelope,
) -> None:
    local = datetime.fromisoformat("2024-03-01T12:00+02:00")
    with recording(replace(envelope, occurred_at=local)):
        client = register()

    assert last_event(client).occurred_at == at("2024-03-01T10:00")
    assert last_event(client).occurred_at.utcoffset() == timedelta(0)


def test_a_registration_dated_in_the_future_is_refused(envelope: Envelope) -> None:
    with (
        recording(replace(envelope, occurred_at=in_an_hour())),
        pytest.raises(InvalidValue, match="future") as caught,
    ):
        register()
    assert caught.value.field == "occurred_at"


def test_an_event_dated_in_the_future_is_refused(envelope: Envelope) -> None:
    client = register()

    with (
        recording(replace(envelope, occurred_at=in_an_hour())),
        pytest.raises(InvalidValue, match="future") as caught,
    ):
        buy(client)
    assert caught.value.field == "occurred_at"
    assert client.purchases_count == 0
    assert client.version == 1


def test_an_event_dated_before_the_clients_registration_is_refused(envelope: Envelope) -> None:
    with back_dated(envelope, "2024-03-01T10:00"):
        client = register()

    with back_dated(envelope, "2024-02-29T23:59"), pytest.raises(InvalidValue) as caught:
        buy(client)
    assert caught.value.field == "occurred_at"
    assert client.purchases_count == 0

    with back_dated(envelope, "2024-03-01T10:00"):
        buy(client)
    assert client.purchases_count == 1


# ------------------------------------------------------------- refused commands


REFUSED: dict[str, Callable[[Client], object]] = {
    "unknown field": lambda c: c.change_details({"birthday": "1990-01-01"}),
    "bad phone": lambda c: c.change_details({"company": "Acme", "phones": ["12"]}),
    "bad channel": lambda c: c.record_contact(channel="fax", direction="inbound"),
    "zero purchase": lambda c: c.record_purchase(
        amount=Decimal(0), currency=EUR, books_currency=EUR
    ),
    "foreign currency": lambda c: c.record_purchase(
        amount=Decimal(1), currency="USD", books_currency=EUR
    ),
    "bad loss reason": lambda c: c.mark_lost(reason="bored"),
    "empty owner": lambda c: c.assign_owner(""),
    "past follow-up": lambda c: c.schedule_follow_up(
        due_at=datetime(2000, 1, 1, tzinfo=UTC), assignee_id="bob"
    ),
    "unknown follow-up": lambda c: c.complete_follow_up(uuid4()),
    "consent never given": lambda c: c.withdraw_consent("newsletter"),
    "lift without restriction": lambda c: c.lift_restriction(reason="x"),
    "self merge": lambda c: c.absorb(c),
}


@pytest.mark.parametrize("refusal", REFUSED)
def test_a_refused_command_leaves_version_and_pending_events_unchanged(refusal: str) -> None:
    client = register()
    client.record_contact(channel="call", direction="inbound")
    version, pending = client.version, list(client.pending_events)

    with pytest.raises((InvalidValue, RuleViolation)):
        REFUSED[refusal](client)

    assert client.version == version
    assert client.pending_events == pending


def test_a_business_time_before_1900_is_a_typo_and_is_refused(envelope: Envelope) -> None:
    with (
        recording(replace(envelope, occurred_at=datetime(201, 5, 1, tzinfo=UTC))),
        pytest.raises(InvalidValue, match="before 1900") as caught,
    ):
        Client.register(name="Ann")
    assert caught.value.field == "occurred_at"


def test_a_follow_up_is_due_within_fifty_years(attributed: Envelope) -> None:
    client = register()
    with pytest.raises(InvalidValue, match="within 50 years"):
        client.schedule_follow_up(
            due_at=datetime.now(UTC) + timedelta(days=51 * 365), assignee_id="bob"
        )


def test_an_attribute_key_may_be_a_word_of_the_firms_own_language() -> None:
    client = register(attributes={"місто": "Київ"})
    client.change_details({"attributes.город": "Киев"})
    assert client.attributes == {"місто": "Київ", "город": "Киев"}
