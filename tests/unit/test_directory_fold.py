"""The client directory fold (``projections/directory.py``), on events the domain
records. Every expected figure was worked out by hand from the history in the test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from domain.base import CrmAggregate
from domain.client import Client
from domain.envelope import Envelope, recording
from projections import directory
from projections.base import Recorded

T = TypeVar("T")
ENVELOPE = Envelope(actor_id="alice", actor_role="admin", source="import", correlation_id="c")


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class History:
    """Runs domain commands back-dated to a day and numbers their events as the store
    would (events of the aggregates in the order they were first seen)."""

    def __init__(self) -> None:
        self.recorded: list[Recorded] = []
        self._aggregates: list[CrmAggregate] = []

    def at(self, when: str, action: Callable[[], T], *, actor: str = "alice") -> T:
        with recording(replace(ENVELOPE, occurred_at=day(when), actor_id=actor)):
            result = action()
        if isinstance(result, CrmAggregate) and all(result is not a for a in self._aggregates):
            self._aggregates.append(result)
        for aggregate in self._aggregates:
            for event in aggregate.collect_events():
                assert isinstance(event, CrmAggregate.Event)
                self.recorded.append(Recorded(len(self.recorded) + 1, event))
        return result

    def cards(self) -> dict[Any, directory.ClientCard]:
        return directory.fold(self.recorded)


def register(name: str, **fields: Any) -> Callable[[], Client]:
    return lambda: Client.register(name=name, **fields)


def buy(client: Client, amount: str, cost: str = "0") -> Callable[[], None]:
    return lambda: client.record_purchase(
        amount=Decimal(amount), cost=Decimal(cost), currency="EUR", books_currency="EUR"
    )


def contact(client: Client) -> Callable[[], None]:
    return lambda: client.record_contact(channel="call", direction="outbound")


def test_a_registration_opens_a_card_with_the_registered_details() -> None:
    history = History()
    ann = history.at(
        "2024-01-10",
        register(
            "Ann Lee",
            company="Lee Bakery",
            phones=["+49301234567"],
            emails=["Ann.Lee@Example.com"],
            channel="web",
            attributes={"city": "Berlin"},
            owner_id="maria",
        ),
    )

    card = history.cards()[ann.id]

    assert card == directory.ClientCard(
        client_id=ann.id,
        name="Ann Lee",
        kind="person",
        company="Lee Bakery",
        address=None,
        channel="web",
        phones=("+49301234567",),
        emails=("ann.lee@example.com",),
        owner_id="maria",
        registered_at=day("2024-01-10"),
        version=1,
        attributes={"city": "Berlin"},
    )
    assert card.search_text == "ann lee lee bakery ann.lee@example.com +49301234567"
    assert card.contact_points == {("phone", "+49301234567"), ("email", "ann.lee@example.com")}


def test_revenue_and_margin_are_exact_sums_and_the_latest_purchase_is_by_business_time() -> None:
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee"))
    history.at("2024-02-01", buy(ann, "100.10", "60.05"))  # margin 40.05
    history.at("2024-03-15", buy(ann, "49.90"))  # margin 49.90
    history.at("2024-01-20", buy(ann, "25.25", "30.00"))  # recorded last; margin -4.75

    card = history.cards()[ann.id]

    assert card.purchases_count == 3
    assert card.revenue == Decimal("175.25")
    assert card.margin == Decimal("85.20")
    assert card.last_purchase_at == day("2024-03-15")
    assert card.version == 4


def test_the_last_contact_is_the_latest_by_business_time_not_the_latest_recorded() -> None:
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee"))
    history.at("2024-03-01", contact(ann))
    history.at("2024-02-01", contact(ann))

    card = history.cards()[ann.id]

    assert card.last_contact_at == day("2024-03-01")
    assert card.last_purchase_at is None


def test_a_details_change_applies_each_new_value_and_attributes_by_key() -> None:
    history = History()
    ann = history.at(
        "2024-01-10",
        register("Ann Lee", phones=["+49301234567"], attributes={"city": "Berlin"}),
    )
    history.at(
        "2024-02-01",
        lambda: ann.change_details(
            {
                "name": "Ann Lee-Smith",
                "company": "Smith & Co",
                "phones": ["+49307654321", "+442079460000"],
                "emails": ["ANN@smith.example"],
                "attributes.city": None,
                "attributes.tier": "gold",
            }
        ),
    )

    card = history.cards()[ann.id]

    assert (card.name, card.company) == ("Ann Lee-Smith", "Smith & Co")
    assert card.phones == ("+49307654321", "+442079460000")
    assert card.emails == ("ann@smith.example",)
    assert card.attributes == {"tier": "gold"}
    assert (
        card.search_text == "ann lee-smith smith & co ann@smith.example +49307654321 +442079460000"
    )
    assert card.version == 2


def test_a_details_change_read_after_the_erasure_changes_no_field_of_the_rebuilt_card() -> None:
    """Once the key is destroyed a details change reads with empty old and new values
    (``adapters.mapper``): a rebuild must not take them for a change to nothing."""
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee", attributes={"city": "Berlin"}))
    history.at(
        "2024-02-01", lambda: ann.change_details({"kind": "company", "attributes.tier": "gold"})
    )
    history.at("2024-06-01", lambda: ann.erase_personal_data(reason="subject_request"))
    as_read = [
        replace(r, event=replace(r.event, old={}, new={}))
        if isinstance(r.event, Client.ClientDetailsChanged)
        else r
        for r in history.recorded
    ]

    card = directory.fold(as_read)[ann.id]

    assert (card.kind, card.attributes, card.erased, card.version) == ("person", {}, True, 3)


def test_open_follow_ups_are_those_scheduled_and_neither_completed_nor_cancelled() -> None:
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee"))

    def schedule() -> Any:
        return ann.schedule_follow_up(due_at=day("2024-03-01"), assignee_id="maria")

    first = history.at("2024-02-01", schedule)
    second = history.at("2024-02-02", schedule)
    history.at("2024-02-03", schedule)
    history.at("2024-02-04", lambda: ann.complete_follow_up(first))
    history.at("2024-02-05", lambda: ann.cancel_follow_up(second))

    assert history.cards()[ann.id].open_follow_ups == 1


def test_owner_restriction_and_consent_change_the_card_and_its_version() -> None:
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee", owner_id="maria"))
    history.at("2024-01-11", lambda: ann.assign_owner("ivan"))
    history.at("2024-01-12", lambda: ann.give_consent("newsletter"))
    history.at("2024-01-13", lambda: ann.restrict_processing(reason="asked"))
    restricted = history.cards()[ann.id]
    history.at("2024-01-14", lambda: ann.lift_restriction(reason="asked again"))
    lifted = history.cards()[ann.id]

    assert (restricted.owner_id, restricted.restricted, restricted.version) == ("ivan", True, 4)
    assert (lifted.restricted, lifted.version) == (False, 5)


def test_a_merge_adds_the_duplicates_figures_and_contact_points_to_the_survivor() -> None:
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee", phones=["+49301234567"]))
    dup = history.at(
        "2024-01-05", register("A. Lee", phones=["+491705550101"], emails=["a@lee.example"])
    )
    history.at("2024-02-01", buy(ann, "100", "60"))
    history.at("2024-03-15", buy(ann, "50"))
    history.at("2024-02-20", buy(dup, "10", "4"))
    history.at("2024-03-01", contact(ann))
    history.at("2024-04-01", contact(dup))
    history.at(
        "2024-02-10", lambda: dup.schedule_follow_up(due_at=day("2024-05-01"), assignee_id="x")
    )
    history.at("2024-04-10", lambda: ann.absorb(dup))

    cards = history.cards()
    survivor, duplicate = cards[ann.id], cards[dup.id]

    assert survivor.purchases_count == 3
    assert (survivor.revenue, survivor.margin) == (Decimal(160), Decimal(96))
    assert survivor.last_purchase_at == day("2024-03-15")  # its own, later than the duplicate's
    assert survivor.last_contact_at == day("2024-04-01")  # the duplicate's, later than its own
    assert survivor.registered_at == day("2024-01-05")  # the duplicate registered first
    assert survivor.phones == ("+49301234567", "+491705550101")
    assert survivor.emails == ("a@lee.example",)
    assert survivor.open_follow_ups == 0
    assert survivor.version == 5
    assert duplicate.merged_into == ann.id
    assert duplicate.contact_points == frozenset()
    assert duplicate.open_follow_ups == 0  # the merge cancelled it


def test_a_merge_reads_the_duplicates_card_and_other_events_only_their_own() -> None:
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee"))
    dup = history.at("2024-01-11", register("A. Lee"))
    history.at("2024-01-12", lambda: ann.absorb(dup))
    absorbed = next(r for r in history.recorded if r.event_type == "DuplicateAbsorbed")
    merged = next(r for r in history.recorded if r.event_type == "ClientMerged")

    assert directory.needs(absorbed) == (ann.id, dup.id)
    assert directory.needs(merged) == (dup.id,)


def test_erasure_blanks_every_personal_value_and_keeps_the_figures() -> None:
    history = History()
    ann = history.at(
        "2024-01-10",
        register(
            "Ann Lee",
            company="Lee Bakery",
            address="Main St 1",
            phones=["+49301234567"],
            emails=["ann@lee.example"],
            channel="met her at the Lee family's party",
            attributes={"city": "Berlin"},
            owner_id="maria",
        ),
    )
    history.at("2024-02-01", buy(ann, "120", "70"))
    history.at("2024-02-02", contact(ann))
    history.at(
        "2024-02-03", lambda: ann.schedule_follow_up(due_at=day("2024-07-01"), assignee_id="m")
    )
    history.at("2024-06-01", lambda: ann.erase_personal_data(reason="subject_request"))

    card = history.cards()[ann.id]

    assert card.erased
    assert (card.name, card.company, card.address, card.channel) == ("", None, None, None)
    assert (card.phones, card.emails, card.attributes) == ((), (), {})
    assert card.search_text == ""
    assert card.contact_points == frozenset()
    assert (card.purchases_count, card.revenue, card.margin) == (1, Decimal(120), Decimal(50))
    assert card.last_purchase_at == day("2024-02-01")
    assert card.last_contact_at == day("2024-02-02")
    assert card.owner_id == "maria"
    assert card.open_follow_ups == 0


def test_an_event_of_a_client_without_a_card_changes_nothing() -> None:
    history = History()
    ann = history.at("2024-01-10", register("Ann Lee"))
    history.at("2024-02-01", buy(ann, "10"))
    purchase = history.recorded[-1]

    assert directory.apply({}, purchase) == {}
