"""The funnel fold: which changes each event makes, and the figures the report
derives from the raw counts."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.utils import get_topic

from domain.client import Client
from domain.deal import Deal
from domain.envelope import Envelope, recording
from domain.pipeline import Pipeline
from projections import funnel
from projections.base import Recorded
from projections.funnel import (
    DealOpened,
    Outcome,
    StageFigures,
    StagesDefined,
    StayEntered,
    StayLeft,
)
from tests.conftest import at

STAGES = ("lead", "measurement", "proposal")


def on(envelope: Envelope, when: str) -> Any:
    return recording(replace(envelope, occurred_at=at(when)))


@pytest.fixture
def pipeline(envelope: Envelope) -> Pipeline:
    with on(envelope, "2024-01-01"):
        return Pipeline.define(name="window fitter", stages=STAGES)


@pytest.fixture
def client(envelope: Envelope) -> Client:
    with on(envelope, "2024-01-01"):
        return Client.register(name="Anna Schmidt", owner_id="maria")


@pytest.fixture
def deal(envelope: Envelope, client: Client, pipeline: Pipeline) -> Deal:
    with on(envelope, "2024-01-02T09:30"):
        opened = Deal.open(
            client=client,
            pipeline=pipeline,
            title="Kitchen windows",
            amount=Decimal("1500"),
            currency="EUR",
            books_currency="EUR",
        )
    opened.collect_events()  # tests look at the events that follow
    return opened


def fold(aggregate: Pipeline | Deal | Client, position: int = 42) -> list[funnel.Change]:
    """The changes of the aggregate's one pending event, recorded at ``position``."""
    (event,) = aggregate.collect_events()
    return list(funnel.changes(Recorded(position, event)))  # type: ignore[arg-type]


# ------------------------------------------------------------------- pipelines


def test_a_defined_pipeline_records_its_stages_in_order(envelope: Envelope) -> None:
    with on(envelope, "2024-01-01"):
        pipeline = Pipeline.define(name="window fitter", stages=STAGES)
    assert fold(pipeline) == [StagesDefined(pipeline.id, STAGES)]


def test_a_redefined_pipeline_replaces_the_stage_order(
    envelope: Envelope, pipeline: Pipeline
) -> None:
    pipeline.collect_events()
    with on(envelope, "2024-02-01"):
        pipeline.redefine(("lead", "proposal", "measurement", "installation"))
    assert fold(pipeline) == [
        StagesDefined(pipeline.id, ("lead", "proposal", "measurement", "installation"))
    ]


# ------------------------------------------------------------------------ deals


def test_an_opened_deal_is_recorded_and_enters_its_first_stage(
    envelope: Envelope, client: Client, pipeline: Pipeline
) -> None:
    with on(envelope, "2024-01-02T09:30"):
        deal = Deal.open(
            client=client,
            pipeline=pipeline,
            title="Kitchen windows",
            amount=Decimal("1500"),
            currency="EUR",
            books_currency="EUR",
        )
    assert fold(deal, position=7) == [
        DealOpened(deal.id, pipeline.id, "maria", client.id, at("2024-01-02T09:30")),
        StayEntered(deal.id, 7, "lead", at("2024-01-02T09:30")),
    ]


def test_a_deal_opened_in_a_later_stage_enters_that_stage(
    envelope: Envelope, client: Client, pipeline: Pipeline
) -> None:
    with on(envelope, "2024-01-03"):
        deal = Deal.open(
            client=client,
            pipeline=pipeline,
            title="Door",
            amount=Decimal(0),
            currency="EUR",
            books_currency="EUR",
            owner_id="ivan",
            stage="proposal",
        )
    opened, entered = fold(deal, position=8)
    assert isinstance(opened, DealOpened)
    assert opened.owner_id == "ivan"
    assert entered == StayEntered(deal.id, 8, "proposal", at("2024-01-03"))


def test_a_stage_change_leaves_the_open_stay_and_enters_the_new_stage_at_once(
    envelope: Envelope, deal: Deal, pipeline: Pipeline
) -> None:
    with on(envelope, "2024-01-05T12:00"):
        deal.move_to("proposal", pipeline=pipeline)
    assert fold(deal, position=9) == [
        StayLeft(deal.id, at("2024-01-05T12:00")),
        StayEntered(deal.id, 9, "proposal", at("2024-01-05T12:00")),
    ]


def test_moving_backwards_enters_a_new_stay_in_the_earlier_stage(
    envelope: Envelope, deal: Deal, pipeline: Pipeline
) -> None:
    with on(envelope, "2024-01-05"):
        deal.move_to("proposal", pipeline=pipeline)
    deal.collect_events()
    with on(envelope, "2024-01-08"):
        deal.move_to("lead", pipeline=pipeline)
    assert fold(deal, position=12) == [
        StayLeft(deal.id, at("2024-01-08")),
        StayEntered(deal.id, 12, "lead", at("2024-01-08")),
    ]


def test_a_won_deal_leaves_its_stay_and_records_the_win(envelope: Envelope, deal: Deal) -> None:
    with on(envelope, "2024-01-20"):
        deal.win()
    assert fold(deal, position=15) == [
        StayLeft(deal.id, at("2024-01-20")),
        Outcome(deal.id, 15, "won", at("2024-01-20"), None),
    ]


def test_a_lost_deal_leaves_its_stay_and_records_the_reason(envelope: Envelope, deal: Deal) -> None:
    with on(envelope, "2024-01-21"):
        deal.lose(reason="no_budget", note="maybe next year")
    assert fold(deal, position=16) == [
        StayLeft(deal.id, at("2024-01-21")),
        Outcome(deal.id, 16, "lost", at("2024-01-21"), "no_budget"),
    ]


def test_a_reopened_deal_records_the_reopening_and_enters_the_stage_it_was_closed_from(
    envelope: Envelope, deal: Deal, pipeline: Pipeline
) -> None:
    with on(envelope, "2024-01-04"):
        deal.move_to("measurement", pipeline=pipeline)
    with on(envelope, "2024-01-21"):
        deal.lose(reason="price")
    deal.collect_events()
    with on(envelope, "2024-02-01"):
        deal.reopen()
    assert fold(deal, position=30) == [
        Outcome(deal.id, 30, "reopened", at("2024-02-01"), None),
        StayEntered(deal.id, 30, "measurement", at("2024-02-01")),
    ]


def test_a_change_of_value_changes_nothing(envelope: Envelope, deal: Deal) -> None:
    with on(envelope, "2024-01-06"):
        deal.change_value(amount=Decimal(2000), currency="EUR", books_currency="EUR")
    assert fold(deal) == []


def test_client_events_change_nothing(client: Client) -> None:
    assert fold(client) == []


def test_the_model_reads_exactly_the_pipeline_and_deal_events_it_folds() -> None:
    expected = {
        get_topic(cls)
        for cls in (
            Pipeline.PipelineDefined,
            Pipeline.PipelineRedefined,
            Deal.DealOpened,
            Deal.DealStageChanged,
            Deal.DealWon,
            Deal.DealLost,
            Deal.DealReopened,
        )
    }
    topics = funnel.TOPICS
    assert topics == expected


# ---------------------------------------------------------------- the figures


def test_conversions_divide_by_reached_and_the_last_stage_converts_to_won() -> None:
    report = funnel.report(
        uuid4(),
        at("2024-03-01"),
        stages=STAGES,
        reached={"lead": 8, "measurement": 4, "proposal": 2},
        current={"measurement": 1},
        stays=funnel.stay_figures({"lead": [1.0, 3.0, 8.0], "measurement": [2.0, 5.0]}),
        lost_reasons={"price": 2, "competitor": 1},
        won=1,
        avg_sales_cycle_days=12.5,
    )
    lead, measurement, proposal = report.stages
    # lead: 4/8 go on, all 8 of 8 reached; stays of 1, 3, 8 days: mean 4, median 3
    assert lead == StageFigures("lead", 8, 0, 0.5, 1.0, 4.0, 3.0)
    # measurement: 2/4 go on, 4/8 of the first; stays of 2 and 5: mean = median = 3.5
    assert measurement == StageFigures("measurement", 4, 1, 0.5, 0.5, 3.5, 3.5)
    # proposal: won 1 of the 2 that reached it, 2/8 of the first; no finished stay
    assert proposal == StageFigures("proposal", 2, 0, 0.5, 0.25, None, None)
    assert (report.won, report.lost) == (1, 3)
    assert report.win_rate == pytest.approx(1 / 4)
    assert report.lost_reasons == {"competitor": 1, "price": 2}
    assert report.avg_sales_cycle_days == 12.5


def test_figures_over_nothing_are_none_not_zero() -> None:
    report = funnel.report(
        uuid4(),
        at("2024-03-01"),
        stages=STAGES,
        reached={},
        current={},
        stays={},
        lost_reasons={},
        won=0,
        avg_sales_cycle_days=None,
    )
    assert [s.reached for s in report.stages] == [0, 0, 0]
    assert all(s.conversion_next is None for s in report.stages)
    assert all(s.conversion_cumulative is None for s in report.stages)
    assert all(s.avg_days_in_stage is None for s in report.stages)
    assert (report.won, report.lost, report.win_rate) == (0, 0, None)
    assert report.lost_reasons == {}


# ---------------------------------------------------------------- the moments

DAY = 86_400_000_000
"""Microseconds."""


def moments_of(stages: tuple[str, ...], deal: funnel.DealRows) -> list[tuple[Any, ...]]:
    return sorted((m.at, m.kind, m.label, m.n, m.micros) for m in funnel.moments(stages, deal))


def test_a_deals_moments_step_each_figure_when_it_changes() -> None:
    # opened in lead, skips to proposal, back to measurement, won, reopened, lost
    deal = funnel.DealRows(
        opened_at=at("2024-01-02"),
        stays=[
            (14, "measurement", at("2024-01-12"), at("2024-01-15")),  # rows in any order
            (10, "lead", at("2024-01-02"), at("2024-01-05")),
            (11, "proposal", at("2024-01-05"), at("2024-01-07")),
            (12, "measurement", at("2024-01-07"), at("2024-01-10")),
        ],
        outcomes=[
            (15, "lost", at("2024-01-15"), "price"),
            (13, "won", at("2024-01-10"), None),
            (14, "reopened", at("2024-01-12"), None),
        ],
    )
    assert moments_of(STAGES, deal) == sorted(
        [
            # furthest stage: lead, then proposal (the skip passes measurement); the
            # move back and the win (the last stage) do not go further
            (at("2024-01-02"), "top", "lead", 1, 0),
            (at("2024-01-05"), "top", "lead", -1, 0),
            (at("2024-01-05"), "top", "proposal", 1, 0),
            # in each stage from entering to leaving; each finished stay with its length
            (at("2024-01-02"), "in", "lead", 1, 0),
            (at("2024-01-05"), "in", "lead", -1, 0),
            (at("2024-01-05"), "stay", "lead", 1, 3 * DAY),
            (at("2024-01-05"), "in", "proposal", 1, 0),
            (at("2024-01-07"), "in", "proposal", -1, 0),
            (at("2024-01-07"), "stay", "proposal", 1, 2 * DAY),
            (at("2024-01-07"), "in", "measurement", 1, 0),
            (at("2024-01-10"), "in", "measurement", -1, 0),
            (at("2024-01-10"), "stay", "measurement", 1, 3 * DAY),
            (at("2024-01-12"), "in", "measurement", 1, 0),
            (at("2024-01-15"), "in", "measurement", -1, 0),
            (at("2024-01-15"), "stay", "measurement", 1, 3 * DAY),
            # won after 8 days, undone by the reopening; then lost for the price
            (at("2024-01-10"), "won", "", 1, 8 * DAY),
            (at("2024-01-12"), "won", "", -1, -8 * DAY),
            (at("2024-01-15"), "lost", "price", 1, 0),
        ]
    )


def test_a_win_reaches_the_last_stage_of_the_current_order() -> None:
    deal = funnel.DealRows(
        opened_at=at("2024-01-02"),
        stays=[(10, "lead", at("2024-01-02"), at("2024-01-04"))],
        outcomes=[(11, "won", at("2024-01-04"), None), (12, "reopened", at("2024-01-06"), None)],
    )
    tops = [m for m in moments_of(("lead", "proposal"), deal) if m[1] == "top"]
    # the reopening takes the win back, not the stage it reached
    assert tops == [
        (at("2024-01-02"), "top", "lead", 1, 0),
        (at("2024-01-04"), "top", "lead", -1, 0),
        (at("2024-01-04"), "top", "proposal", 1, 0),
    ]
    # in an order without the deal's stage, only the win reaches a stage
    assert [m for m in moments_of(("survey", "quote"), deal) if m[1] == "top"] == [
        (at("2024-01-04"), "top", "quote", 1, 0)
    ]
    # a pipeline without stages: nothing to reach
    assert [m for m in moments_of((), deal) if m[1] == "top"] == []
