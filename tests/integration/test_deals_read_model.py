"""Deal cards and pipelines, as read models."""

from __future__ import annotations

from decimal import Decimal

from api.bootstrap import Crm
from application import deals, pipelines
from domain.envelope import Envelope
from domain.pipeline import pipeline_id
from tests.story import Story, day


def test_a_deal_card_follows_the_deal_through_its_life(crm: Crm, envelope: Envelope) -> None:
    story = Story(crm, envelope)
    client = story.register("Ann", "2024-01-01")
    deal = story.run(
        deals.OpenDeal(client_id=client, title="Roof", amount=Decimal("900.50"), currency="EUR"),
        "2024-01-02",
    ).id
    story.run(deals.MoveDealStage(deal_id=deal, stage="evaluation"), "2024-01-05")
    story.run(
        deals.ChangeDealValue(deal_id=deal, amount=Decimal(1000), currency="EUR"), "2024-01-06"
    )
    story.run(deals.WinDeal(deal_id=deal, amount=Decimal(950)), "2024-01-07")
    crm.projector(["deals"]).catch_up()
    card = crm.read_model("deals").card(deal)  # type: ignore[attr-defined]
    assert (card.client_id, card.title, card.stage, card.status) == (
        client,
        "Roof",
        "evaluation",
        "won",
    )
    assert card.amount == Decimal(950)  # the amount it was won for
    assert (card.opened_at, card.updated_at, card.version) == (
        day("2024-01-02"),
        day("2024-01-07"),
        4,
    )
    story.run(deals.ReopenDeal(deal_id=deal), "2024-01-08")
    crm.projector(["deals"]).catch_up()
    reopened = crm.read_model("deals").card(deal)  # type: ignore[attr-defined]
    assert (reopened.status, reopened.stage, reopened.version) == ("open", "evaluation", 5)


def test_pipelines_are_listed_with_their_current_stages(crm: Crm, envelope: Envelope) -> None:
    crm.app.execute(pipelines.DefinePipeline(name="Windows", stages=("lead", "proposal")), envelope)
    crm.app.execute(
        pipelines.DefinePipeline(name="windows", stages=("lead", "measurement", "proposal")),
        envelope,
    )
    crm.projector(["deals"]).catch_up()
    listed = {p.name: p for p in crm.read_model("deals").pipelines()}  # type: ignore[attr-defined]
    assert listed["default"].stages == ("attraction", "interest", "evaluation")
    assert listed["Windows"].stages == ("lead", "measurement", "proposal")
    assert (listed["Windows"].pipeline_id, listed["Windows"].version) == (pipeline_id("windows"), 2)


def test_an_unknown_deal_has_no_card(crm: Crm) -> None:
    from uuid import uuid4

    crm.projector(["deals"]).catch_up()
    assert crm.read_model("deals").card(uuid4()) is None  # type: ignore[attr-defined]


def test_erasing_a_client_blanks_their_deals_titles(crm: Crm, envelope: Envelope) -> None:
    from application import clients

    story = Story(crm, envelope)
    client = story.register("Ann", "2024-01-01")
    deal = story.run(
        deals.OpenDeal(client_id=client, title="Ann's roof", amount=Decimal(9), currency="EUR"),
        "2024-01-02",
    ).id
    crm.app.execute(clients.ErasePersonalData(client_id=client, reason="subject_request"), envelope)
    crm.projector(["deals"]).catch_up()
    card = crm.read_model("deals").card(deal)  # type: ignore[attr-defined]
    assert (card.title, card.amount, card.stage) == ("", Decimal(9), "attraction")
