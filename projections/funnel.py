"""Funnel read model: pipelines' stage order, deals, their stays in stages, outcomes.

The fold turns each event into changes: a pipeline's stages (re)defined, a deal
opened, a stay in a stage entered or left, an outcome (won, lost, reopened). The
adapter (``adapters/read_models/funnel.py``) stores them and answers the funnel of
SPEC §3 as of any instant in SQL, then finishes the figures with ``report`` below.

Stage indexes are not stored with the stays: a pipeline may be reordered, and the
funnel always follows its current order. A deal's events are chronological (the
domain refuses one dated before the deal's previous event), so a stay's end is
never before its start; different deals' events arrive in any order and change
only their own deal's rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import singledispatch
from statistics import fmean, median
from typing import Any, Literal, get_args
from uuid import UUID

from domain.access import DataAccess
from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from domain.subscription import Subscription
from projections.base import Ignored, Recorded, handled_by, topics_of

OutcomeKind = Literal["won", "lost", "reopened"]


# ------------------------------------------------------------------ the changes


@dataclass(frozen=True, slots=True)
class StagesDefined:
    """The pipeline's stages, in order, from now on (replacing any earlier order)."""

    pipeline_id: UUID
    stages: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DealOpened:
    deal_id: UUID
    pipeline_id: UUID
    owner_id: str | None
    client_id: UUID
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class StayEntered:
    """The deal is in ``stage`` from ``at``; ``position`` (of the event) names the stay."""

    deal_id: UUID
    position: int
    stage: str
    at: datetime


@dataclass(frozen=True, slots=True)
class StayLeft:
    """The deal's open stay (if any) ends at ``at``."""

    deal_id: UUID
    at: datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    deal_id: UUID
    position: int
    kind: OutcomeKind
    at: datetime
    reason: str | None = None


Change = StagesDefined | DealOpened | StayEntered | StayLeft | Outcome


def changes(recorded: Recorded) -> Iterable[Change]:
    """The funnel changes one recorded event makes, in the order they apply."""
    return _changes(recorded.event, recorded.position)


@singledispatch
def _changes(event: Any, position: int) -> Iterable[Change]:  # noqa: ARG001
    return ()


@_changes.register
def _(event: Pipeline.PipelineDefined, position: int) -> Iterable[Change]:  # noqa: ARG001
    return (StagesDefined(event.originator_id, tuple(event.stages)),)


@_changes.register
def _(event: Pipeline.PipelineRedefined, position: int) -> Iterable[Change]:  # noqa: ARG001
    return (StagesDefined(event.originator_id, tuple(event.stages)),)


@_changes.register
def _(event: Deal.DealOpened, position: int) -> Iterable[Change]:
    deal_id = event.originator_id
    return (
        DealOpened(deal_id, event.pipeline_id, event.owner_id, event.client_id, event.occurred_at),
        StayEntered(deal_id, position, event.stage, event.occurred_at),
    )


@_changes.register
def _(event: Deal.DealStageChanged, position: int) -> Iterable[Change]:
    # "moves backwards are recorded as stays": every move opens a new stay
    deal_id = event.originator_id
    return (
        StayLeft(deal_id, event.occurred_at),
        StayEntered(deal_id, position, event.to_stage, event.occurred_at),
    )


@_changes.register
def _(event: Deal.DealWon, position: int) -> Iterable[Change]:
    deal_id = event.originator_id
    return (
        StayLeft(deal_id, event.occurred_at),
        Outcome(deal_id, position, "won", event.occurred_at),
    )


@_changes.register
def _(event: Deal.DealLost, position: int) -> Iterable[Change]:
    deal_id = event.originator_id
    return (
        StayLeft(deal_id, event.occurred_at),
        Outcome(deal_id, position, "lost", event.occurred_at, event.reason),
    )


@_changes.register
def _(event: Deal.DealReopened, position: int) -> Iterable[Change]:
    deal_id = event.originator_id
    return (
        Outcome(deal_id, position, "reopened", event.occurred_at),
        StayEntered(deal_id, position, event.stage, event.occurred_at),
    )


HANDLED: tuple[type[Any], ...] = handled_by(_changes)
TOPICS = topics_of(*HANDLED)
IGNORED: Ignored = {
    Deal.DealValueChanged: "the funnel counts deals and their stays, not their value",
    Client: "the funnel is about deals; a client's purchases outside a deal are not in it",
    DataAccess: "reading data moves no deal",
    Subscription: "webhook subscriptions are no deals",
}


# ------------------------------------------------------------------ the moments


@dataclass(frozen=True, slots=True)
class DealRows:
    """What the tables hold of one deal: its opening, its stays and its outcomes."""

    opened_at: datetime
    stays: Sequence[tuple[int, str, datetime, datetime | None]]
    """(position, stage, entered_at, left_at) of each stay."""
    outcomes: Sequence[tuple[int, str, datetime, str | None]]
    """(position, kind, at, reason) of each outcome."""


MomentKind = Literal["top", "in", "stay", "won", "lost"]
MOMENT_KINDS: tuple[MomentKind, ...] = get_args(MomentKind)


@dataclass(frozen=True, slots=True)
class Moment:
    """A step, at ``at``, of one of a deal's figures: ``n`` more (or fewer) under
    ``kind``/``label``, with ``micros`` more (or less) time.

    Every figure of the funnel as of T but the medians is a sum of the deal's moments
    up to T: ``top``/stage counts the deals whose furthest stage (in the pipeline's
    current order) is that stage, ``in``/stage the deals in the stage, ``stay``/stage
    the finished stays and their length, ``won`` the deals whose latest outcome is a
    win and their sales cycle, ``lost``/reason the deals whose latest outcome is that
    loss. A ``stay`` moment is one stay: the medians are read from them.
    """

    at: datetime
    kind: MomentKind
    label: str
    n: int
    micros: int = 0


MICROSECOND = timedelta(microseconds=1)
DAY_MICROS = 86_400_000_000


def moments(stages: Sequence[str], deal: DealRows) -> list[Moment]:
    """A deal's moments, from its rows (in any order) and its pipeline's current
    stage order; the same rows give the same moments in the same order.

    A deal reaches a stage when it enters it or a later one, or is won (which is
    passing the last stage), and keeps it (a reopening does not undo it); a stay
    in a stage the order no longer has reaches nothing. A reopening undoes the
    outcome before it at its own instant.
    """
    found: list[Moment] = []
    order = {stage: idx for idx, stage in enumerate(stages)}
    last = len(stages) - 1
    steps = sorted(
        [(entered, position, order.get(stage)) for position, stage, entered, _ in deal.stays]
        + [(at, position, last) for position, kind, at, _ in deal.outcomes if kind == "won"],
        key=lambda step: (step[0], step[1]),
    )
    top = -1
    for at, _, idx in steps:
        if idx is not None and idx > top:
            if top >= 0:
                found.append(Moment(at, "top", stages[top], -1))
            found.append(Moment(at, "top", stages[idx], 1))
            top = idx
    for _, stage, entered, left in sorted(deal.stays, key=lambda stay: stay[0]):
        found.append(Moment(entered, "in", stage, 1))
        if left is not None:
            found.append(Moment(left, "in", stage, -1))
            found.append(Moment(left, "stay", stage, 1, (left - entered) // MICROSECOND))
    standing: Moment | None = None
    for _, kind, at, reason in sorted(deal.outcomes, key=lambda o: (o[2], o[0])):
        if kind == "won":
            standing = Moment(at, "won", "", 1, (at - deal.opened_at) // MICROSECOND)
            found.append(standing)
        elif kind == "lost":
            standing = Moment(at, "lost", str(reason), 1)
            found.append(standing)
        elif standing is not None:  # reopened
            found.append(Moment(at, standing.kind, standing.label, -1, -standing.micros))
            standing = None
    return found


# ------------------------------------------------------------- the stays' lengths

# The median stay of a stage as of T is found in two steps: a histogram of the
# lengths of the stays finished by T says which bucket holds the middle one and its
# rank there; a walk over that bucket's stays in length order finds it. Buckets are
# narrow (a bucket's lengths differ by at most 1/16 of its shortest), so the walk
# passes a few hundredths of the stays instead of half of them.

_STEP_BITS = 4
_STEPS = 1 << _STEP_BITS
"""Buckets per doubling of a length, above the first ``2 * _STEPS`` microseconds (twice
as many halved the walks at 1M events; the histograms grow with them). The funnel's
tables store the buckets: after changing it, ``crm project --rebuild funnel``."""
SHORTEST_LENGTH = -(2**63)
"""The floor of bucket -1, which holds every negative length (never met: a stay does
not end before it starts)."""


def length_bucket(micros: int) -> int:
    """The bucket of a length in microseconds: one per microsecond below 32 µs, then
    sixteen per doubling; a longer length is never in a lower bucket."""
    if micros < 0:
        return -1
    if micros < 2 * _STEPS:
        return micros
    shift = micros.bit_length() - _STEP_BITS - 1  # what leaves the top five bits
    return 2 * _STEPS + (shift - 1) * _STEPS + (micros >> shift) - _STEPS


def length_floor(bucket: int) -> int:
    """The shortest length in ``bucket``: bucket ``b`` holds the lengths from
    ``length_floor(b)`` up to, not including, ``length_floor(b + 1)``."""
    if bucket < 0:
        return SHORTEST_LENGTH
    if bucket < 2 * _STEPS:
        return bucket
    shift, step = divmod(bucket - 2 * _STEPS, _STEPS)
    return (_STEPS + step) << (shift + 1)


Histogram = Mapping[int, int]
"""Stays per length bucket."""


def running_histograms(
    before: Histogram,
    stored: Sequence[tuple[int, Histogram]],
    changes: Mapping[int, Mapping[int, int]],
) -> list[tuple[int, dict[int, int]]]:
    """A stage's running histograms once stays are added or taken away: for every
    period (a number: days, weeks, …) that has a stay, from the first one changed
    on, the histogram of all the stays finished by its end (buckets in order, none
    empty). ``stored``: the running histograms until now from the first changed
    period on, in order; ``before``: the one before them; ``changes``: period →
    bucket → stays to add (or, negative, to take away).

    A period's histogram is its stored one (or the latest stored before it) plus
    every change up to it; a period whose histogram is the one before it has no
    stay, and no histogram."""
    old = dict(stored)
    shift: dict[int, int] = {}
    latest: Histogram = before
    previous: Histogram = before
    histograms = []
    for period in sorted(old.keys() | changes.keys()):
        for bucket, n in changes.get(period, {}).items():
            shift[bucket] = shift.get(bucket, 0) + n
        latest = old.get(period, latest)
        histogram = _plus(latest, shift)
        if histogram != previous:
            histograms.append((period, histogram))
            previous = histogram
    return histograms


def _plus(histogram: Histogram, shift: Mapping[int, int]) -> dict[int, int]:
    total = dict(histogram)
    for bucket, n in shift.items():
        total[bucket] = total.get(bucket, 0) + n
    return {bucket: n for bucket, n in sorted(total.items()) if n}


@dataclass(frozen=True, slots=True)
class Middle:
    """Where the middle length (or the two middle ones, for an even count) of a
    histogram's stays lies: skip ``offset`` of the lengths from ``shortest`` up to,
    not including, ``beyond`` in order, and take the next ``take``."""

    shortest: int
    beyond: int
    offset: int
    take: int


def middle(histogram: Histogram) -> Middle | None:
    """The walk to the middle of ``histogram``'s stays; None if it has none."""
    n = sum(histogram.values())
    if n <= 0:
        return None
    buckets = sorted(histogram.items())

    def holding(rank: int) -> tuple[int, int]:
        """The bucket holding the stay of ``rank`` (from 0) and the stays below it."""
        below = 0
        for bucket, count in buckets:
            if below + count > rank:
                return bucket, below
            below += count
        raise ValueError(f"rank {rank} of {n} stays")

    first, below = holding((n - 1) // 2)
    last, _ = holding(n // 2)
    return Middle(length_floor(first), length_floor(last + 1), (n - 1) // 2 - below, 2 - n % 2)


# ------------------------------------------------------------------ the report


@dataclass(frozen=True)
class StageFigures:
    stage: str
    reached: int
    """Deals that were ever in this stage or a later one (or won) by the instant."""
    current: int
    conversion_next: float | None
    conversion_cumulative: float | None
    avg_days_in_stage: float | None
    median_days_in_stage: float | None


@dataclass(frozen=True)
class FunnelReport:
    pipeline_id: UUID
    as_of: datetime
    stages: tuple[StageFigures, ...]
    won: int
    lost: int
    win_rate: float | None
    lost_reasons: Mapping[str, int]
    avg_sales_cycle_days: float | None


@dataclass(frozen=True)
class StayFigures:
    """The finished stays of one stage: their average and median length in days."""

    avg_days: float
    median_days: float


def stay_figures(stay_days: Mapping[str, Sequence[float]]) -> dict[str, StayFigures]:
    """Each stage's figures from the lengths of its finished stays (a stage with
    none has no figures)."""
    return {
        stage: StayFigures(fmean(days), median(days)) for stage, days in stay_days.items() if days
    }


def ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def report(
    pipeline_id: UUID,
    as_of: datetime,
    *,
    stages: Sequence[str],
    reached: Mapping[str, int],
    current: Mapping[str, int],
    stays: Mapping[str, StayFigures],
    lost_reasons: Mapping[str, int],
    won: int,
    avg_sales_cycle_days: float | None,
) -> FunnelReport:
    """The funnel from its raw counts (SPEC §3).

    ``conversion_next`` = reached next ÷ reached this, and for the last stage the
    next step is winning: won ÷ reached last; ``conversion_cumulative`` = reached
    this ÷ reached first; ``win_rate`` = won ÷ (won + lost). None where the
    divisor is zero, and for averages over nothing.
    """
    first = reached.get(stages[0], 0) if stages else 0
    figures = []
    for i, stage in enumerate(stages):
        here = reached.get(stage, 0)
        after = reached.get(stages[i + 1], 0) if i + 1 < len(stages) else won
        finished = stays.get(stage)
        figures.append(
            StageFigures(
                stage=stage,
                reached=here,
                current=current.get(stage, 0),
                conversion_next=ratio(after, here),
                conversion_cumulative=ratio(here, first),
                avg_days_in_stage=finished.avg_days if finished else None,
                median_days_in_stage=finished.median_days if finished else None,
            )
        )
    lost = sum(lost_reasons.values())
    return FunnelReport(
        pipeline_id=pipeline_id,
        as_of=as_of,
        stages=tuple(figures),
        won=won,
        lost=lost,
        win_rate=ratio(won, won + lost),
        lost_reasons=dict(sorted(lost_reasons.items())),
        avg_sales_cycle_days=avg_sales_cycle_days,
    )
