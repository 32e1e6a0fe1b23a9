"""The Deal aggregate: one opportunity moving through a pipeline to won or lost."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from domain.client import Client
from domain.deal import Deal
from domain.envelope import Envelope, recording
from domain.errors import InvalidValue, RuleViolation
from domain.pipeline import Pipeline
from tests.conftest import at

pytestmark = pytest.mark.usefixtures("attributed")

EUR = "EUR"
STAGES = ("attraction", "interest", "evaluation")


@pytest.fixture
def client() -> Client:
    return Client.register(name="Anna Schmidt", owner_id="bob")


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline.define(name="default", stages=STAGES)


def open_deal(client: Client, pipeline: Pipeline, **overrides: Any) -> Deal:
    fields: dict[str, Any] = {
        "client": client,
        "pipeline": pipeline,
        "title": "Kitchen windows",
        "amount": Decimal("1500"),
        "currency": EUR,
        "books_currency": EUR,
    }
    fields.update(overrides)
    return Deal.open(**fields)


def names(deal: Deal) -> list[str]:
    return [type(event).__name__ for event in deal.pending_events]


def last_event(deal: Deal) -> Any:
    return deal.pending_events[-1]


def back_dated(envelope: Envelope, when: str) -> Any:
    return recording(replace(envelope, occurred_at=at(when)))


# -------------------------------------------------------------------------- open


def test_a_deal_opens_in_the_first_stage_owned_by_the_clients_owner(
    client: Client, pipeline: Pipeline
) -> None:
    deal = open_deal(client, pipeline, title="  Kitchen   windows ")

    assert names(deal) == ["DealOpened"]
    event = last_event(deal)
    expected = {
        "client_id": client.id,
        "pipeline_id": pipeline.id,
        "title": "Kitchen windows",
        "amount": Decimal("1500"),
        "currency": EUR,
        "owner_id": "bob",
        "stage": "attraction",
    }
    for field, value in expected.items():
        assert getattr(event, field) == value, field
        assert getattr(deal, field) == value, field
    assert deal.status == "open"


def test_a_deal_can_open_in_a_named_stage_with_a_named_owner(
    client: Client, pipeline: Pipeline
) -> None:
    deal = open_deal(client, pipeline, stage="evaluation", owner_id="carol")

    assert (deal.stage, deal.owner_id) == ("evaluation", "carol")


def test_a_deal_of_an_unowned_client_has_no_owner_unless_named(pipeline: Pipeline) -> None:
    client = Client.register(name="Nobody's")

    assert open_deal(client, pipeline).owner_id is None


@pytest.mark.parametrize("stage", ["proposal", "won", "lost"])
def test_a_deal_cannot_open_in_a_stage_its_pipeline_does_not_have(
    client: Client, pipeline: Pipeline, stage: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        open_deal(client, pipeline, stage=stage)
    assert caught.value.field == "stage"


def test_a_deal_may_open_without_a_value(client: Client, pipeline: Pipeline) -> None:
    assert open_deal(client, pipeline, amount=Decimal(0)).amount == Decimal(0)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"title": "  "}, "title"),
        ({"amount": Decimal(-1)}, "amount"),
        ({"amount": Decimal("0.00001")}, "amount"),
        ({"currency": "USD"}, "currency"),
    ],
)
def test_a_deal_with_an_invalid_detail_is_refused_naming_the_field(
    client: Client, pipeline: Pipeline, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        open_deal(client, pipeline, **overrides)
    assert caught.value.field == field


def test_no_deal_opens_for_a_client_with_restricted_processing(
    client: Client, pipeline: Pipeline
) -> None:
    client.restrict_processing(reason="objection")

    with pytest.raises(RuleViolation, match="restricted") as caught:
        open_deal(client, pipeline)
    assert caught.value.field == "client_id"


def test_no_deal_opens_for_an_erased_client(client: Client, pipeline: Pipeline) -> None:
    client.erase_personal_data(reason="subject_request")

    with pytest.raises(RuleViolation, match="erased"):
        open_deal(client, pipeline)


def test_no_deal_opens_for_a_merged_duplicate(client: Client, pipeline: Pipeline) -> None:
    survivor = Client.register(name="Anna Schmidt")
    survivor.absorb(client)

    with pytest.raises(RuleViolation, match="merged"):
        open_deal(client, pipeline)
    assert open_deal(survivor, pipeline).client_id == survivor.id


# ----------------------------------------------------------------------- move_to


def test_a_move_records_the_stage_it_left_and_the_stage_it_entered(
    client: Client, pipeline: Pipeline
) -> None:
    deal = open_deal(client, pipeline)

    deal.move_to("interest", pipeline=pipeline)

    event = last_event(deal)
    assert type(event).__name__ == "DealStageChanged"
    assert (event.from_stage, event.to_stage) == ("attraction", "interest")
    assert deal.stage == "interest"


def test_a_deal_may_skip_stages_and_move_backwards(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline)

    deal.move_to("evaluation", pipeline=pipeline)
    deal.move_to("attraction", pipeline=pipeline)

    moves = [(e.from_stage, e.to_stage) for e in deal.pending_events[1:]]
    assert moves == [("attraction", "evaluation"), ("evaluation", "attraction")]
    assert deal.stage == "attraction"


def test_moving_to_the_current_stage_records_nothing(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline, stage="interest")

    deal.move_to("interest", pipeline=pipeline)

    assert names(deal) == ["DealOpened"]


@pytest.mark.parametrize("stage", ["proposal", "won", "lost"])
def test_a_deal_cannot_move_to_a_stage_its_pipeline_does_not_have(
    client: Client, pipeline: Pipeline, stage: str
) -> None:
    deal = open_deal(client, pipeline)

    with pytest.raises(InvalidValue) as caught:
        deal.move_to(stage, pipeline=pipeline)
    assert caught.value.field == "stage"
    assert (deal.stage, deal.version) == ("attraction", 1)


def test_a_deal_cannot_move_through_another_pipeline(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline)
    other = Pipeline.define(name="windows", stages=("lead", "interest"))

    with pytest.raises(RuleViolation, match="another pipeline") as caught:
        deal.move_to("interest", pipeline=other)
    assert caught.value.field == "pipeline_id"
    assert deal.stage == "attraction"


def test_a_deal_can_move_to_a_stage_added_to_its_pipeline(
    client: Client, pipeline: Pipeline
) -> None:
    deal = open_deal(client, pipeline)
    pipeline.redefine([*STAGES, "negotiation"])

    deal.move_to("negotiation", pipeline=pipeline)

    assert deal.stage == "negotiation"


# ------------------------------------------------------------------ change_value


def test_a_value_change_records_old_and_new_amounts(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline, amount=Decimal("1500"))

    deal.change_value(amount=Decimal("1750.25"), currency=EUR, books_currency=EUR)

    event = last_event(deal)
    assert type(event).__name__ == "DealValueChanged"
    assert (event.old_amount, event.new_amount, event.currency) == (
        Decimal("1500"),
        Decimal("1750.25"),
        EUR,
    )
    assert deal.amount == Decimal("1750.25")


def test_the_same_value_again_records_nothing(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline, amount=Decimal("1500"))

    deal.change_value(amount=Decimal("1500.00"), currency=EUR, books_currency=EUR)

    assert names(deal) == ["DealOpened"]


@pytest.mark.parametrize(
    ("amount", "currency", "field"),
    [
        (Decimal(-1), EUR, "amount"),
        (Decimal("NaN"), EUR, "amount"),
        (Decimal(10), "USD", "currency"),
    ],
)
def test_an_invalid_value_change_is_refused(
    client: Client, pipeline: Pipeline, amount: Decimal, currency: str, field: str
) -> None:
    deal = open_deal(client, pipeline)

    with pytest.raises(InvalidValue) as caught:
        deal.change_value(amount=amount, currency=currency, books_currency=EUR)
    assert caught.value.field == field
    assert deal.amount == Decimal("1500")


# --------------------------------------------------------------------------- win


def test_a_deal_is_won_for_its_value_by_default(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline, amount=Decimal("1500"), stage="evaluation")
    deal.change_value(amount=Decimal("1800"), currency=EUR, books_currency=EUR)

    deal.win()

    event = last_event(deal)
    assert type(event).__name__ == "DealWon"
    assert (event.amount, event.cost, event.currency, event.stage) == (
        Decimal("1800"),
        Decimal(0),
        EUR,
        "evaluation",
    )
    assert deal.status == "won"
    assert deal.won_amount == Decimal("1800")


def test_a_deal_can_be_won_for_another_amount_and_with_a_cost(
    client: Client, pipeline: Pipeline
) -> None:
    deal = open_deal(client, pipeline, amount=Decimal("1500"))

    deal.win(amount=Decimal("1400"), cost=Decimal("900"))

    assert (last_event(deal).amount, last_event(deal).cost) == (Decimal("1400"), Decimal("900"))
    assert deal.won_amount == Decimal("1400")


def test_a_deal_without_a_value_must_be_won_for_a_positive_amount(
    client: Client, pipeline: Pipeline
) -> None:
    deal = open_deal(client, pipeline, amount=Decimal(0))

    with pytest.raises(InvalidValue) as caught:
        deal.win()
    assert caught.value.field == "amount"
    assert deal.status == "open"

    deal.win(amount=Decimal(50))
    assert deal.won_amount == Decimal(50)


def test_a_win_with_a_negative_cost_is_refused(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline)

    with pytest.raises(InvalidValue) as caught:
        deal.win(cost=Decimal(-1))
    assert caught.value.field == "cost"
    assert deal.status == "open"


def _closing_commands(deal: Deal, pipeline: Pipeline) -> dict[str, Callable[[], object]]:
    return {
        "move": lambda: deal.move_to("evaluation", pipeline=pipeline),
        "change value": lambda: deal.change_value(
            amount=Decimal(99), currency=EUR, books_currency=EUR
        ),
        "win": deal.win,
        "lose": lambda: deal.lose(reason="price"),
    }


CLOSING = ["move", "change value", "win", "lose"]


@pytest.mark.parametrize("command", CLOSING)
def test_a_won_deal_is_terminal_until_reopened(
    client: Client, pipeline: Pipeline, command: str
) -> None:
    deal = open_deal(client, pipeline)
    deal.win()

    with pytest.raises(RuleViolation, match="won"):
        _closing_commands(deal, pipeline)[command]()
    assert names(deal) == ["DealOpened", "DealWon"]
    assert (deal.status, deal.stage, deal.amount) == ("won", "attraction", Decimal("1500"))


@pytest.mark.parametrize("command", CLOSING)
def test_a_lost_deal_is_terminal_until_reopened(
    client: Client, pipeline: Pipeline, command: str
) -> None:
    deal = open_deal(client, pipeline)
    deal.lose(reason="price")

    with pytest.raises(RuleViolation, match="lost"):
        _closing_commands(deal, pipeline)[command]()
    assert names(deal) == ["DealOpened", "DealLost"]
    assert deal.status == "lost"


# -------------------------------------------------------------------------- lose


def test_a_lost_deal_records_reason_note_and_the_stage_it_was_lost_in(
    client: Client, pipeline: Pipeline
) -> None:
    deal = open_deal(client, pipeline, stage="interest")

    deal.lose(reason="no_budget", note="  next year maybe ")

    event = last_event(deal)
    assert type(event).__name__ == "DealLost"
    assert (event.reason, event.note, event.stage) == ("no_budget", "next year maybe", "interest")
    assert deal.status == "lost"


@pytest.mark.parametrize("reason", ["bored", "inactivity", "", "Price"])
def test_a_deal_cannot_be_lost_for_an_unknown_reason(
    client: Client, pipeline: Pipeline, reason: str
) -> None:
    deal = open_deal(client, pipeline)

    with pytest.raises(InvalidValue) as caught:
        deal.lose(reason=reason)
    assert caught.value.field == "reason"
    assert deal.status == "open"


def test_a_loss_note_is_limited_to_500_characters(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline)

    with pytest.raises(InvalidValue) as caught:
        deal.lose(reason="other", note="x" * 501)
    assert caught.value.field == "note"
    assert deal.status == "open"


# ------------------------------------------------------------------------ reopen


@pytest.mark.parametrize("close", ["win", "lose"])
def test_a_reopened_deal_returns_to_the_stage_it_was_closed_from(
    client: Client, pipeline: Pipeline, close: str
) -> None:
    deal = open_deal(client, pipeline)
    deal.move_to("interest", pipeline=pipeline)
    closed_status = {"win": "won", "lose": "lost"}[close]
    _closing_commands(deal, pipeline)[close]()

    deal.reopen()

    event = last_event(deal)
    assert type(event).__name__ == "DealReopened"
    assert (event.stage, event.previous_status) == ("interest", closed_status)
    assert (deal.status, deal.stage) == ("open", "interest")


def test_a_reopened_deal_can_move_and_be_closed_again(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline)
    deal.lose(reason="timing")
    deal.reopen()

    deal.move_to("evaluation", pipeline=pipeline)
    deal.win(amount=Decimal(1200))

    assert names(deal)[-2:] == ["DealStageChanged", "DealWon"]
    assert (deal.status, deal.won_amount) == ("won", Decimal(1200))


def test_an_open_deal_cannot_be_reopened(client: Client, pipeline: Pipeline) -> None:
    deal = open_deal(client, pipeline)

    with pytest.raises(RuleViolation, match="open"):
        deal.reopen()
    assert names(deal) == ["DealOpened"]


# -------------------------------------------------------------------- chronology


@pytest.mark.parametrize("command", CLOSING)
def test_an_event_back_dated_before_the_deals_previous_event_is_refused(
    client: Client, pipeline: Pipeline, envelope: Envelope, command: str
) -> None:
    with back_dated(envelope, "2024-03-01T10:00"):
        deal = open_deal(client, pipeline)
    with back_dated(envelope, "2024-03-10T10:00"):
        deal.move_to("interest", pipeline=pipeline)
    version, pending = deal.version, list(deal.pending_events)

    with back_dated(envelope, "2024-03-05T10:00"), pytest.raises(InvalidValue) as caught:
        _closing_commands(deal, pipeline)[command]()

    assert caught.value.field == "occurred_at"
    assert deal.version == version
    assert deal.pending_events == pending
    assert (deal.status, deal.stage) == ("open", "interest")


def test_a_reopening_back_dated_before_the_close_is_refused(
    client: Client, pipeline: Pipeline, envelope: Envelope
) -> None:
    with back_dated(envelope, "2024-03-01T10:00"):
        deal = open_deal(client, pipeline)
    with back_dated(envelope, "2024-03-10T10:00"):
        deal.lose(reason="price")

    with back_dated(envelope, "2024-03-09T10:00"), pytest.raises(InvalidValue) as caught:
        deal.reopen()
    assert caught.value.field == "occurred_at"
    assert deal.status == "lost"


def test_events_at_the_same_business_time_as_the_previous_one_are_allowed(
    client: Client, pipeline: Pipeline, envelope: Envelope
) -> None:
    with back_dated(envelope, "2024-03-01T10:00"):
        deal = open_deal(client, pipeline)
        deal.move_to("interest", pipeline=pipeline)
        deal.win()

    assert [e.occurred_at for e in deal.pending_events] == [at("2024-03-01T10:00")] * 3
    assert deal.status == "won"


def test_a_back_dated_history_in_order_is_kept(
    client: Client, pipeline: Pipeline, envelope: Envelope
) -> None:
    with back_dated(envelope, "2024-03-01T10:00"):
        deal = open_deal(client, pipeline)
    with back_dated(envelope, "2024-03-04T10:00"):
        deal.move_to("interest", pipeline=pipeline)
    with back_dated(envelope, "2024-03-08T10:00"):
        deal.win()

    assert [e.occurred_at for e in deal.pending_events] == [
        at("2024-03-01T10:00"),
        at("2024-03-04T10:00"),
        at("2024-03-08T10:00"),
    ]
    assert deal.last_occurred_at == at("2024-03-08T10:00")


def test_deal_events_carry_the_envelope_of_their_command(
    client: Client, pipeline: Pipeline
) -> None:
    envelope = Envelope(
        actor_id="carol",
        actor_role="manager",
        source="api",
        correlation_id="corr-9",
        causation_id="cause-1",
    )
    with recording(envelope):
        deal = open_deal(client, pipeline)
        deal.move_to("interest", pipeline=pipeline)
        deal.win()

    for event in deal.pending_events:
        assert (event.actor_id, event.actor_role, event.source) == ("carol", "manager", "api")
        assert (event.correlation_id, event.causation_id) == ("corr-9", "cause-1")
