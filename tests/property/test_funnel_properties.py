"""Properties of the funnel read model, on SQLite and PostgreSQL.

* projecting in small batches while commands run == one projection of everything
  from position zero;
* the funnel as of T == the funnel of a model that received only the events that
  happened by T;
* the order in which different deals' events arrive changes nothing.

Hypothesis runs every example on the test's one store: each example works in a
pipeline (and, where it needs them, read-model tables) of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.projector import Projector
from adapters.read_models.funnel import FunnelReadModel
from api.bootstrap import Crm
from application import clients, deals, pipelines
from domain.envelope import Envelope
from projections.base import Recorded
from projections.funnel import FunnelReport

EPOCH = datetime(2023, 1, 1, tzinfo=UTC)
BEFORE = EPOCH - timedelta(days=1)
ENVELOPE = Envelope(actor_id="alice", actor_role="admin", source="import", correlation_id="p")
STAGES = ("lead", "measurement", "proposal")
OWNERS = ("maria", "ivan")
REASONS = ("price", "competitor", "no_budget")

PROPERTY = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
BACKENDS = pytest.mark.parametrize("store", ["sqlite", "postgresql"])


@dataclass(frozen=True)
class Step:
    deal: int
    action: str  # open | move | win | lose | reopen
    hour: int
    """Hours after EPOCH."""
    stage: str | None = None
    owner: str | None = None
    reason: str | None = None


@st.composite
def deal_history(draw: st.DrawFn, deal: int) -> list[Step]:
    """One deal's chronological history: moves (forwards, backwards, skipping, at the
    same instant as the previous event too), wins, losses and reopenings."""
    hour = draw(st.integers(min_value=0, max_value=60 * 24))
    stage = draw(st.sampled_from(STAGES))
    steps = [Step(deal, "open", hour, stage=stage, owner=draw(st.sampled_from(OWNERS)))]
    status = "open"
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        hour += draw(st.integers(min_value=0, max_value=20 * 24))
        if status != "open":
            steps.append(Step(deal, "reopen", hour))
            status = "open"
            continue
        action = draw(st.sampled_from(("move", "move", "win", "lose")))
        if action == "move":
            stage = draw(st.sampled_from([s for s in STAGES if s != stage]))
            steps.append(Step(deal, "move", hour, stage=stage))
        elif action == "win":
            steps.append(Step(deal, "win", hour))
            status = "won"
        else:
            steps.append(Step(deal, "lose", hour, reason=draw(st.sampled_from(REASONS))))
            status = "lost"
    return steps


@st.composite
def interleaved(draw: st.DrawFn, per_deal: list[list[Step]]) -> list[Step]:
    """The deals' histories merged in some order, each deal's own order kept."""
    turns = draw(st.permutations([n for n, steps in enumerate(per_deal) for _ in steps]))
    queues = [iter(steps) for steps in per_deal]
    return [next(queues[n]) for n in turns]


histories = st.integers(min_value=1, max_value=4).flatmap(
    lambda n: st.tuples(*(deal_history(deal) for deal in range(n))).map(list)
)


def at(hour: float) -> datetime:
    return EPOCH + timedelta(hours=hour)


def record(
    crm: Crm, steps: list[Step], *, projector: Projector | None = None, every: int = 0
) -> UUID:
    """Record ``steps`` in a new pipeline; returns its id. With a projector, catch up
    after every ``every`` commands."""

    def run(command: Any, when: datetime) -> UUID:
        return crm.app.execute(command, replace(ENVELOPE, occurred_at=when)).id

    pipeline = run(pipelines.DefinePipeline(name=f"p {uuid4().hex}", stages=STAGES), BEFORE)
    ids: dict[int, UUID] = {}
    for n, step in enumerate(steps, start=1):
        when = at(step.hour)
        if step.action == "open":
            client = run(clients.RegisterClient(name=f"client {step.deal}"), BEFORE)
            command: Any = deals.OpenDeal(
                client_id=client,
                title="Windows",
                amount=Decimal("100.00"),
                currency="EUR",
                pipeline_id=pipeline,
                owner_id=step.owner,
                stage=step.stage,
            )
            ids[step.deal] = run(command, when)
        elif step.action == "move":
            run(deals.MoveDealStage(deal_id=ids[step.deal], stage=str(step.stage)), when)
        elif step.action == "win":
            run(deals.WinDeal(deal_id=ids[step.deal]), when)
        elif step.action == "lose":
            run(deals.LoseDeal(deal_id=ids[step.deal], reason=str(step.reason)), when)
        else:
            run(deals.ReopenDeal(deal_id=ids[step.deal]), when)
        if projector is not None and every and n % every == 0:
            projector.catch_up()
    return pipeline


def instants(steps: list[Step]) -> list[datetime]:
    """Some event instants exactly (stays start and end there), instants between
    events, and long after the last."""
    hours = sorted({step.hour for step in steps})
    picked = hours[:: max(1, len(hours) // 4)]
    return [at(h) for h in picked] + [at(h + 0.5) for h in picked[:2]] + [at(24 * 400)]


FILTERS: list[dict[str, Any]] = [
    {},
    {"owner_id": "maria"},
    {"opened_from": EPOCH + timedelta(days=10), "opened_to": EPOCH + timedelta(days=40)},
]


def figures(report: FunnelReport) -> list[Any]:
    """Every figure but the pipeline's id, flat (for ``pytest.approx``: the averages
    may be summed in another order)."""
    flat: list[Any] = [report.won, report.lost, report.win_rate, report.avg_sales_cycle_days]
    for s in report.stages:
        flat += [
            s.stage,
            s.reached,
            s.current,
            s.conversion_next,
            s.conversion_cumulative,
            s.avg_days_in_stage,
            s.median_days_in_stage,
        ]
    return flat


def assert_same_funnel(one: FunnelReport, other: FunnelReport, context: object) -> None:
    assert one.as_of == other.as_of
    assert figures(one) == pytest.approx(figures(other)), context
    assert one.lost_reasons == other.lost_reasons, context


def fresh_model(crm: Crm) -> FunnelReadModel:
    """A funnel model in tables of its own, created empty."""
    model = FunnelReadModel(crm.db, prefix=f"x{uuid4().hex[:10]}_")
    with crm.db.transaction() as cursor:
        for statement in model.create_statements():
            cursor.execute(statement)
    return model


def drop(crm: Crm, model: FunnelReadModel) -> None:
    with crm.db.transaction() as cursor:
        for statement in model.drop_statements():
            cursor.execute(statement)


def table_rows(crm: Crm, table: str) -> list[tuple[str, ...]]:
    rows = crm.db.query(f"SELECT * FROM {table}")
    return sorted(tuple(str(value) for value in row) for row in rows)


@pytest.fixture
def staffed(crm: Crm) -> Crm:
    for owner in OWNERS:
        crm.users.add(owner, "manager")
    return crm


@BACKENDS
@PROPERTY
@given(data=st.data(), per_deal=histories, every=st.integers(min_value=1, max_value=4))
def test_projecting_in_small_batches_as_commands_run_equals_a_rebuild(
    staffed: Crm, data: st.DataObject, per_deal: list[list[Step]], every: int
) -> None:
    crm = staffed
    steps = data.draw(interleaved(per_deal))
    live = FunnelReadModel(crm.db)
    incremental = Projector(crm.app, crm.db, [live], batch_size=data.draw(st.integers(1, 3)))
    incremental.setup()
    pipeline = record(crm, steps, projector=incremental, every=every)
    incremental.catch_up()

    check = FunnelReadModel(crm.db, prefix=f"c{uuid4().hex[:10]}_")
    rebuilt = Projector(crm.app, crm.db, [check])
    rebuilt.setup()
    rebuilt.catch_up()
    try:
        for table in FunnelReadModel.tables:
            assert table_rows(crm, live.t[table.logical]) == table_rows(
                crm, check.t[table.logical]
            ), table.logical
        for instant in instants(steps):
            for query in FILTERS:
                assert_same_funnel(
                    live.funnel(pipeline, instant, **query),
                    check.funnel(pipeline, instant, **query),
                    (instant, query),
                )
    finally:
        drop(crm, check)


@BACKENDS
@PROPERTY
@given(data=st.data(), per_deal=histories)
def test_the_funnel_as_of_t_equals_a_model_that_received_only_the_events_up_to_t(
    staffed: Crm, data: st.DataObject, per_deal: list[list[Step]]
) -> None:
    crm = staffed
    steps = data.draw(interleaved(per_deal))
    projector = Projector(crm.app, crm.db, [FunnelReadModel(crm.db)])
    projector.setup()
    pipeline = record(crm, steps)
    projector.catch_up()
    live = FunnelReadModel(crm.db)
    events = [
        Recorded(n.id, crm.app.mapper.to_domain_event(n))  # type: ignore[arg-type]
        for n in crm.app.recorder.select_notifications(
            start=1, limit=1_000_000, topics=sorted(FunnelReadModel.topics)
        )
    ]
    upto = fresh_model(crm)
    try:
        for instant in instants(steps):
            with crm.db.transaction() as cursor:  # empty, then only the events up to T
                for table in upto.t.values():
                    cursor.execute(f"DELETE FROM {table}")
                upto.apply(cursor, [e for e in events if e.occurred_at <= instant])
            for query in FILTERS:
                assert_same_funnel(
                    live.funnel(pipeline, instant, **query),
                    upto.funnel(pipeline, instant, **query),
                    (instant, query),
                )
    finally:
        drop(crm, upto)


@BACKENDS
@PROPERTY
@given(data=st.data(), per_deal=histories)
def test_the_arrival_order_of_different_deals_events_changes_nothing(
    staffed: Crm, data: st.DataObject, per_deal: list[list[Step]]
) -> None:
    crm = staffed
    first = data.draw(interleaved(per_deal))
    second = data.draw(interleaved(per_deal))
    projector = Projector(crm.app, crm.db, [FunnelReadModel(crm.db)], batch_size=4)
    projector.setup()
    # the same histories, recorded in two pipelines, each in its own arrival order
    one = record(crm, first, projector=projector, every=3)
    other = record(crm, second, projector=projector, every=2)
    projector.catch_up()
    model = FunnelReadModel(crm.db)
    for instant in instants(first):
        for query in FILTERS:
            assert_same_funnel(
                model.funnel(one, instant, **query),
                model.funnel(other, instant, **query),
                (instant, query),
            )


@BACKENDS
@PROPERTY
@given(
    data=st.data(),
    per_deal=histories,
    order=st.none() | st.permutations(STAGES) | st.permutations((*STAGES, "handover")),
)
def test_the_sums_give_the_funnel_counted_from_the_rows_even_after_a_reorder(
    staffed: Crm, data: st.DataObject, per_deal: list[list[Step]], order: tuple[str, ...] | None
) -> None:
    """``from_sums`` (the day and span sums, the moments of T's day, the stays'
    histograms and the walk to the middle stays) == ``from_rows`` (every deal, stay
    and outcome read): for every deal, one owner's, at instants on and between
    events; also once the pipeline's stages were reordered (and one perhaps added)
    after the deals, which makes every deal's moments again — as a rebuild would
    make them."""
    crm = staffed
    steps = data.draw(interleaved(per_deal))
    model = FunnelReadModel(crm.db)
    projector = Projector(crm.app, crm.db, [model], batch_size=data.draw(st.integers(1, 5)))
    projector.setup()
    pipeline = record(crm, steps, projector=projector, every=2)
    if order is not None:
        name = crm.app.repository.get(pipeline).name
        crm.app.execute(
            pipelines.DefinePipeline(name=name, stages=tuple(order)),
            replace(ENVELOPE, occurred_at=at(24 * 100)),
        )
    projector.catch_up()
    for instant in instants(steps):
        for owner in (None, *OWNERS):
            assert_same_funnel(
                model.from_sums(pipeline, instant, owner_id=owner),
                model.from_rows(pipeline, instant, owner_id=owner),
                (instant, owner, order),
            )
    check = FunnelReadModel(crm.db, prefix=f"c{uuid4().hex[:10]}_")
    rebuilt = Projector(crm.app, crm.db, [check])
    rebuilt.setup()
    rebuilt.catch_up()
    try:
        for table in ("moments", "day_sums", "span_sums", "stay_lengths"):
            assert table_rows(crm, model.t[table]) == table_rows(crm, check.t[table]), table
    finally:
        drop(crm, check)
