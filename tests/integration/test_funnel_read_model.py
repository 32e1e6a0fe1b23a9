"""The funnel read model on every store: a small scripted history, every figure
worked out by hand.

Default pipeline (attraction -> interest -> evaluation), all in 2024:

    D1 maria  opened 01-01; interest 01-05; evaluation 01-15; won 02-01
    D2 maria  opened 01-03; evaluation 01-10 (skips interest); lost 02-10 price
    D3 ivan   opened 01-10; interest 01-12; attraction 01-20 (backwards);
              interest 02-05; lost 02-20 competitor; reopened 03-01 (interest);
              evaluation 03-05; won 03-10
    D4 ivan   opened 02-01; lost 02-12 price
    D5 maria  opened 03-01; interest 03-15; still open

Window fitter (lead -> measurement -> proposal):

    W1 ivan   opened 01-02; measurement 01-04; won 01-18 (from measurement);
              reopened 02-01 (measurement); proposal 02-20; won again 03-01
    W2 maria  opened 01-05; proposal 01-09 (skips); measurement 01-16 (backwards);
              lost 02-01 no_budget
    W3 ivan   opened 02-03; won 02-10 straight from lead
    W4 maria  opened 02-14; still open

Instants: T1 = 01-20 (D3's move back happens exactly then), T2 = 02-15, T3 = 04-01.
The deals are recorded one after the other, so their events arrive out of
chronological order across deals.
"""

from __future__ import annotations

from dataclasses import astuple, replace
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from adapters.projector import Projector, rebuild
from adapters.read_models.base import REFOLD_CHUNK
from adapters.read_models.funnel import FunnelReadModel
from api.bootstrap import Crm
from application import clients, deals, pipelines
from application.app import CommandResult
from domain.envelope import Envelope
from domain.pipeline import DEFAULT_PIPELINE, pipeline_id
from projections.funnel import FunnelReport
from tests.conftest import at

DEFAULT = pipeline_id(DEFAULT_PIPELINE)
WINDOWS = pipeline_id("window fitter")
T1, T2, T3 = at("2024-01-20"), at("2024-02-15"), at("2024-04-01")


class Script:
    """Commands back-dated to the day they happened."""

    def __init__(self, crm: Crm, envelope: Envelope) -> None:
        self.crm = crm
        self.envelope = envelope

    def run(self, command: Any, when: str) -> CommandResult:
        return self.crm.app.execute(command, replace(self.envelope, occurred_at=at(when)))

    def open(self, pipeline: UUID, owner: str, when: str) -> UUID:
        client = self.run(clients.RegisterClient(name=f"Client of {owner}"), "2023-12-01").id
        command = deals.OpenDeal(
            client_id=client,
            title="Windows",
            amount=Decimal("1200.00"),
            currency="EUR",
            pipeline_id=pipeline,
            owner_id=owner,
        )
        return self.run(command, when).id

    def move(self, deal: UUID, stage: str, when: str) -> None:
        self.run(deals.MoveDealStage(deal_id=deal, stage=stage), when)

    def win(self, deal: UUID, when: str) -> None:
        self.run(deals.WinDeal(deal_id=deal, cost=Decimal("700.00")), when)

    def lose(self, deal: UUID, reason: str, when: str) -> None:
        self.run(deals.LoseDeal(deal_id=deal, reason=reason), when)

    def reopen(self, deal: UUID, when: str) -> None:
        self.run(deals.ReopenDeal(deal_id=deal), when)


def record_history(crm: Crm, envelope: Envelope) -> None:
    crm.users.add("maria", "manager")
    crm.users.add("ivan", "manager")
    s = Script(crm, envelope)
    s.run(
        pipelines.DefinePipeline(name="window fitter", stages=("lead", "measurement", "proposal")),
        "2023-12-01",
    )

    d1 = s.open(DEFAULT, "maria", "2024-01-01")
    s.move(d1, "interest", "2024-01-05")
    s.move(d1, "evaluation", "2024-01-15")
    s.win(d1, "2024-02-01")

    d2 = s.open(DEFAULT, "maria", "2024-01-03")
    s.move(d2, "evaluation", "2024-01-10")
    s.lose(d2, "price", "2024-02-10")

    d3 = s.open(DEFAULT, "ivan", "2024-01-10")
    s.move(d3, "interest", "2024-01-12")
    s.move(d3, "attraction", "2024-01-20")
    s.move(d3, "interest", "2024-02-05")
    s.lose(d3, "competitor", "2024-02-20")
    s.reopen(d3, "2024-03-01")
    s.move(d3, "evaluation", "2024-03-05")
    s.win(d3, "2024-03-10")

    d4 = s.open(DEFAULT, "ivan", "2024-02-01")
    s.lose(d4, "price", "2024-02-12")

    d5 = s.open(DEFAULT, "maria", "2024-03-01")
    s.move(d5, "interest", "2024-03-15")

    w1 = s.open(WINDOWS, "ivan", "2024-01-02")
    s.move(w1, "measurement", "2024-01-04")
    s.win(w1, "2024-01-18")
    s.reopen(w1, "2024-02-01")
    s.move(w1, "proposal", "2024-02-20")
    s.win(w1, "2024-03-01")

    w2 = s.open(WINDOWS, "maria", "2024-01-05")
    s.move(w2, "proposal", "2024-01-09")
    s.move(w2, "measurement", "2024-01-16")
    s.lose(w2, "no_budget", "2024-02-01")

    w3 = s.open(WINDOWS, "ivan", "2024-02-03")
    s.win(w3, "2024-02-10")

    s.open(WINDOWS, "maria", "2024-02-14")


def projected(crm: Crm, *, prefix: str = "", batch_size: int = 2000) -> FunnelReadModel:
    model = FunnelReadModel(crm.db, prefix=prefix)
    projector = Projector(crm.app, crm.db, [model], batch_size=batch_size)
    projector.setup()
    projector.catch_up()
    return model


@pytest.fixture
def funnel(crm: Crm, envelope: Envelope) -> FunnelReadModel:
    record_history(crm, envelope)
    return projected(crm)


Row = tuple[str, int, int, float | None, float | None, float | None, float | None]


def assert_stages(report: FunnelReport, expected: list[Row]) -> None:
    """(stage, reached, current, conversion_next, conversion_cumulative,
    avg_days_in_stage, median_days_in_stage) per stage, in pipeline order."""
    actual = [
        (
            s.stage,
            s.reached,
            s.current,
            s.conversion_next,
            s.conversion_cumulative,
            s.avg_days_in_stage,
            s.median_days_in_stage,
        )
        for s in report.stages
    ]
    assert [row[0] for row in actual] == [row[0] for row in expected]
    for got, want in zip(actual, expected, strict=True):
        assert got == pytest.approx(want), want[0]


def assert_outcomes(
    report: FunnelReport,
    won: int,
    lost: int,
    win_rate: float | None,
    lost_reasons: dict[str, int],
    avg_sales_cycle_days: float | None,
) -> None:
    assert (report.won, report.lost) == (won, lost)
    assert report.win_rate == pytest.approx(win_rate)
    assert dict(report.lost_reasons) == lost_reasons
    assert report.avg_sales_cycle_days == pytest.approx(avg_sales_cycle_days)


def test_the_default_pipeline_at_three_instants(funnel: FunnelReadModel) -> None:
    # T1: D1, D2, D3 opened. Furthest stages: D1 evaluation, D2 evaluation (skipped
    # interest), D3 interest. D3 moved back to attraction exactly at T1, so that stay
    # is current and its interest stay [01-12, 01-20) is finished (8 days).
    # Finished attraction stays: D1 4 d, D2 7 d, D3 2 d -> mean 13/3, median 4.
    # Finished interest stays: D1 10 d, D3 8 d -> mean = median = 9.
    report = funnel.funnel(DEFAULT, T1)
    assert (report.pipeline_id, report.as_of) == (DEFAULT, T1)
    assert_stages(
        report,
        [
            ("attraction", 3, 1, 3 / 3, 3 / 3, 13 / 3, 4.0),
            ("interest", 3, 0, 2 / 3, 3 / 3, 9.0, 9.0),
            ("evaluation", 2, 2, 0 / 2, 2 / 3, None, None),
        ],
    )
    assert_outcomes(report, 0, 0, None, {}, None)

    # T2: D4 opened too. D1 won 02-01 (cycle 31 d), D2 lost 02-10 and D4 lost 02-12
    # for price; D3 is in interest since 02-05 (its loss comes on 02-20).
    # Attraction stays: 4, 7, 2, D3's 01-20..02-05 16, D4's 02-01..02-12 11
    # -> mean 40/5 = 8, median 7. Interest: 10, 8. Evaluation: D1 17, D2 31.
    report = funnel.funnel(DEFAULT, T2)
    assert_stages(
        report,
        [
            ("attraction", 4, 0, 3 / 4, 4 / 4, 8.0, 7.0),
            ("interest", 3, 1, 2 / 3, 3 / 4, 9.0, 9.0),
            ("evaluation", 2, 0, 1 / 2, 2 / 4, 24.0, 24.0),
        ],
    )
    assert_outcomes(report, 1, 2, 1 / 3, {"price": 2}, 31.0)

    # T3: all five. D3 was lost (competitor), reopened and won on 03-10: its latest
    # outcome is the win, so its loss no longer counts; cycle 01-10..03-10 = 60 d.
    # Attraction stays: 2, 4, 7, 11, 14 (D5), 16 -> mean 9, median (7 + 11) / 2 = 9.
    # Interest: 10, 8, D3's 15 and 4 -> mean 37/4, median (8 + 10) / 2 = 9.
    # Evaluation: 17, 31, D3's 5 -> mean 53/3, median 17.
    report = funnel.funnel(DEFAULT, T3)
    assert_stages(
        report,
        [
            ("attraction", 5, 0, 4 / 5, 5 / 5, 9.0, 9.0),
            ("interest", 4, 1, 3 / 4, 4 / 5, 37 / 4, 9.0),
            ("evaluation", 3, 0, 2 / 3, 3 / 5, 53 / 3, 17.0),
        ],
    )
    assert_outcomes(report, 2, 2, 2 / 4, {"price": 2}, (31 + 60) / 2)


def test_a_custom_pipeline_at_three_instants(funnel: FunnelReadModel) -> None:
    # T1: W1 won 01-18 from measurement, so it reached proposal too; W2 reached
    # proposal by skipping and is back in measurement since 01-16.
    # Lead stays: W1 2 d, W2 4 d. Measurement: W1 14 d. Proposal: W2 7 d.
    report = funnel.funnel(WINDOWS, T1)
    assert_stages(
        report,
        [
            ("lead", 2, 0, 2 / 2, 2 / 2, 3.0, 3.0),
            ("measurement", 2, 1, 2 / 2, 2 / 2, 14.0, 14.0),
            ("proposal", 2, 0, 1 / 2, 2 / 2, 7.0, 7.0),
        ],
    )
    assert_outcomes(report, 1, 0, 1.0, {}, 16.0)

    # T2: W1 was reopened 02-01 and is in measurement again: no longer won, but it
    # was won before T2 so it still counts as having reached every stage. W3 won
    # 02-10 straight from lead (cycle 7 d) and reached every stage too. W4 is in
    # lead. Lead stays: 2, 4, 7 -> mean 13/3, median 4. Measurement: 14, W2's 16.
    report = funnel.funnel(WINDOWS, T2)
    assert_stages(
        report,
        [
            ("lead", 4, 1, 3 / 4, 4 / 4, 13 / 3, 4.0),
            ("measurement", 3, 1, 3 / 3, 3 / 4, 15.0, 15.0),
            ("proposal", 3, 0, 1 / 3, 3 / 4, 7.0, 7.0),
        ],
    )
    assert_outcomes(report, 1, 1, 1 / 2, {"no_budget": 1}, 7.0)

    # T3: W1 won again 03-01: its latest win makes the cycle 01-02..03-01 = 59 d.
    # Measurement: 14, 16, W1's second stay 19 -> mean 49/3, median 16.
    # Proposal: W2 7, W1 10 (02-20..03-01 in a leap year) -> mean = median = 8.5.
    report = funnel.funnel(WINDOWS, T3)
    assert_stages(
        report,
        [
            ("lead", 4, 1, 3 / 4, 4 / 4, 13 / 3, 4.0),
            ("measurement", 3, 0, 3 / 3, 3 / 4, 49 / 3, 16.0),
            ("proposal", 3, 0, 2 / 3, 3 / 4, 8.5, 8.5),
        ],
    )
    assert_outcomes(report, 2, 1, 2 / 3, {"no_budget": 1}, (59 + 7) / 2)


def test_the_funnel_of_one_owner(funnel: FunnelReadModel) -> None:
    # maria's deals at T3: D1 (won, cycle 31), D2 (lost, price), D5 (in interest).
    # Attraction stays: 4, 7, 14 -> mean 25/3, median 7. Interest: D1 10.
    # Evaluation: D1 17, D2 31.
    report = funnel.funnel(DEFAULT, T3, owner_id="maria")
    assert_stages(
        report,
        [
            ("attraction", 3, 0, 3 / 3, 3 / 3, 25 / 3, 7.0),
            ("interest", 3, 1, 2 / 3, 3 / 3, 10.0, 10.0),
            ("evaluation", 2, 0, 1 / 2, 2 / 3, 24.0, 24.0),
        ],
    )
    assert_outcomes(report, 1, 1, 1 / 2, {"price": 1}, 31.0)

    # ivan's window deals at T2: W1 (reopened, in measurement) and W3 (won, 7 d)
    # were both won by T2, so both reached every stage. Lead stays: 2, 7.
    report = funnel.funnel(WINDOWS, T2, owner_id="ivan")
    assert_stages(
        report,
        [
            ("lead", 2, 0, 2 / 2, 2 / 2, 4.5, 4.5),
            ("measurement", 2, 1, 2 / 2, 2 / 2, 14.0, 14.0),
            ("proposal", 2, 0, 1 / 2, 2 / 2, None, None),
        ],
    )
    assert_outcomes(report, 1, 0, 1.0, {}, 7.0)

    assert funnel.funnel(DEFAULT, T3, owner_id="nobody").stages[0].reached == 0


def test_the_funnel_of_deals_opened_in_a_period(funnel: FunnelReadModel) -> None:
    # Opened in [01-03, 02-01): D2 (opened on the first day, included) and D3; D1
    # (01-01) and D4 (02-01, the excluded end) are out, D5 too.
    # Attraction stays: D2 7, D3 2 and 16 -> mean 25/3, median 7.
    # Interest: D3 8, 15, 4 -> mean 9, median 8. Evaluation: D2 31, D3 5.
    report = funnel.funnel(DEFAULT, T3, opened_from=at("2024-01-03"), opened_to=at("2024-02-01"))
    assert_stages(
        report,
        [
            ("attraction", 2, 0, 2 / 2, 2 / 2, 25 / 3, 7.0),
            ("interest", 2, 0, 2 / 2, 2 / 2, 9.0, 8.0),
            ("evaluation", 2, 0, 1 / 2, 2 / 2, 18.0, 18.0),
        ],
    )
    assert_outcomes(report, 1, 1, 1 / 2, {"price": 1}, 60.0)

    # Only a lower bound, with an owner: maria's deals opened from 01-02 -> D2, D5.
    report = funnel.funnel(DEFAULT, T3, owner_id="maria", opened_from=at("2024-01-02"))
    assert [s.reached for s in report.stages] == [2, 2, 1]
    assert_outcomes(report, 0, 1, 0.0, {"price": 1}, None)

    # Only an upper bound: deals opened before 01-03 -> D1 alone.
    report = funnel.funnel(DEFAULT, T2, opened_to=at("2024-01-03"))
    assert [s.reached for s in report.stages] == [1, 1, 1]
    assert_outcomes(report, 1, 0, 1.0, {}, 31.0)


def test_before_any_deal_every_stage_is_listed_with_nothing_in_it(
    funnel: FunnelReadModel,
) -> None:
    report = funnel.funnel(WINDOWS, at("2023-12-31"))
    assert_stages(
        report,
        [
            ("lead", 0, 0, None, None, None, None),
            ("measurement", 0, 0, None, None, None, None),
            ("proposal", 0, 0, None, None, None, None),
        ],
    )
    assert_outcomes(report, 0, 0, None, {}, None)


def test_projecting_one_event_at_a_time_gives_the_same_funnel(
    crm: Crm, funnel: FunnelReadModel
) -> None:
    one_by_one = projected(crm, prefix="one_", batch_size=1)
    for pipeline in (DEFAULT, WINDOWS):
        for instant in (T1, T2, T3):
            assert one_by_one.funnel(pipeline, instant) == funnel.funnel(pipeline, instant)


def test_tables_made_before_the_sums_get_them_at_the_next_start(
    crm: Crm, funnel: FunnelReadModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    for dialect in ("postgresql", "sqlite"):  # the nine deals in chunks of two
        monkeypatch.setitem(REFOLD_CHUNK, dialect, 2)
    # an earlier version's tables: the deals, stays and outcomes, no moments or sums
    before = {pipeline: funnel.funnel(pipeline, T2) for pipeline in (DEFAULT, WINDOWS)}
    with crm.db.transaction() as cursor:
        for table in ("moments", "day_sums", "span_sums", "stay_lengths"):
            cursor.execute(f"DROP TABLE {funnel.t[table]}")
    started = projected(crm)  # the projector's setup makes and fills them
    for pipeline in (DEFAULT, WINDOWS):
        assert started.funnel(pipeline, T2) == before[pipeline]
    assert started.funnel(WINDOWS, T3, owner_id="ivan") == funnel.from_rows(
        WINDOWS, T3, owner_id="ivan"
    )


def test_tables_made_before_the_stay_lengths_get_them_at_the_next_start(
    crm: Crm, funnel: FunnelReadModel
) -> None:
    with crm.db.transaction() as cursor:
        cursor.execute(f"DROP TABLE {funnel.t['stay_lengths']}")
    started = projected(crm)  # the projector's setup makes and fills it
    for pipeline in (DEFAULT, WINDOWS):
        for instant in (T1, T2, T3):
            assert started.funnel(pipeline, instant) == funnel.from_rows(pipeline, instant)
    assert started.funnel(WINDOWS, T3, owner_id="ivan") == funnel.from_rows(
        WINDOWS, T3, owner_id="ivan"
    )


def test_a_rebuild_sums_the_days_and_spans_a_deal_at_a_time_would(
    crm: Crm, envelope: Envelope
) -> None:
    # instants on either side of midnight, of a span's first day (day 19,712 =
    # 2023-12-21 = 616 spans of 32 days) and of 1970-01-01 itself; a rebuild sums
    # its moments in SQL at its end, the live model in Python batch by batch
    crm.users.add("maria", "manager")
    s = Script(crm, envelope)
    before_1970 = s.open(DEFAULT, "maria", "1969-12-31T23:59:59.999")
    s.move(before_1970, "interest", "1970-01-01T00:00:00")
    s.lose(before_1970, "price", "1970-01-31T23:59:59.999999")
    late = s.open(DEFAULT, "maria", "2023-12-20T23:59:59.999")
    s.move(late, "evaluation", "2023-12-21T00:00:00")
    s.win(late, "2024-01-21T23:59:59.999999")
    s.reopen(late, "2024-01-22T00:00:00")
    live = projected(crm)
    position = rebuild(crm.app, crm.db, lambda prefix: FunnelReadModel(crm.db, prefix=prefix))
    assert position == crm.projector().head()
    check = projected(crm, prefix="check_", batch_size=1)
    for table in ("day_sums", "span_sums"):
        rows = crm.db.query(f"SELECT * FROM {live.t[table]} ORDER BY 1, 2, 3, 4, 5")
        assert rows == crm.db.query(f"SELECT * FROM {check.t[table]} ORDER BY 1, 2, 3, 4, 5")
        assert rows, table
    for instant in ("1970-01-01", "2023-12-21", "2024-01-22", "2024-02-01"):
        summed, counted = live.funnel(DEFAULT, at(instant)), live.from_rows(DEFAULT, at(instant))
        assert_stages(summed, [astuple(stage) for stage in counted.stages])
        assert_outcomes(
            summed,
            counted.won,
            counted.lost,
            counted.win_rate,
            dict(counted.lost_reasons),
            counted.avg_sales_cycle_days,
        )


def test_a_reordered_pipeline_is_read_in_its_new_order(crm: Crm, envelope: Envelope) -> None:
    crm.users.add("maria", "manager")
    s = Script(crm, envelope)
    roofing = s.run(
        pipelines.DefinePipeline(name="roofing", stages=("survey", "quote", "install")),
        "2024-01-01",
    ).id
    moved = s.open(roofing, "maria", "2024-01-02")
    s.move(moved, "quote", "2024-01-05")
    s.open(roofing, "maria", "2024-01-03")
    model = projected(crm)
    assert [(x.stage, x.reached) for x in model.funnel(roofing, T3).stages] == [
        ("survey", 2),
        ("quote", 1),
        ("install", 0),
    ]

    # "install" now comes before "quote", and a stage is added: the deal in quote
    # has passed install on the way.
    s.run(
        pipelines.DefinePipeline(name="roofing", stages=("survey", "install", "quote", "handover")),
        "2024-02-01",
    )
    model = projected(crm)
    assert [(x.stage, x.reached) for x in model.funnel(roofing, T3).stages] == [
        ("survey", 2),
        ("install", 1),
        ("quote", 1),
        ("handover", 0),
    ]
