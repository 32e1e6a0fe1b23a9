"""The client lifecycle (value stage) as a pure function of a client's dated facts.

SPEC rules, evaluated on business time (``occurred_at``):

* ``potential``: showed interest, has never paid.
* ``new``: has paid, is not dead, is not (yet) loyal.
* ``loyal``: at least ``loyal_purchases`` purchases within the last
  ``loyal_window_days``, counting for a returned client only purchases since the
  return. A loyal client stays loyal until dead.
* ``dead``: has not paid for more than ``dormancy_days``, or an explicit loss came
  after the last purchase. A client who never paid and was lost is also dead.
* ``returned``: was dead, then paid again, and is not yet loyal again.

Choices where the rules are silent (documented in the README):

* "more than dormancy_days" is exact to the microsecond: death by inactivity begins
  one microsecond after ``last purchase + dormancy_days``.
* Likewise "within the last loyal_window_days" includes a purchase exactly that old:
  at instant T the window is ``[T - loyal_window_days, T]``.
* A loss dated exactly at the first instant of death by inactivity is a death by
  inactivity (the client was already dead; the loss changes nothing).
* A loss at the very instant of a purchase does not come "after" it and is ignored.
* A lead lost before ever paying who later pays becomes ``new`` (a first purchase),
  not ``returned`` (which needs an earlier purchase to return to).

Intervals are half-open ``[valid_from, valid_to)``; the last one is open-ended and may
begin in the future (a death by inactivity that will happen if nothing else does).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal


class Stage(StrEnum):
    POTENTIAL = "potential"
    NEW = "new"
    LOYAL = "loyal"
    DEAD = "dead"
    RETURNED = "returned"


StageName = Literal["potential", "new", "loyal", "dead", "returned"]
"""A stage by its name, as a request names it: ``Stage``'s values (a test holds them equal)."""


PAYING_STAGES = frozenset({Stage.NEW, Stage.LOYAL, Stage.RETURNED})
INACTIVITY = "inactivity"
_ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class LifecyclePolicy:
    """The three settings of the lifecycle rules."""

    loyal_purchases: int = 3
    loyal_window_days: int = 365
    dormancy_days: int = 90

    def __post_init__(self) -> None:
        if self.loyal_purchases < 1 or self.loyal_window_days < 1 or self.dormancy_days < 1:
            raise ValueError("lifecycle settings must be positive integers")


@dataclass(frozen=True, order=True)
class Loss:
    """An explicit ``ClientLost`` fact."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class ClientFacts:
    """The dated facts the lifecycle depends on, in any order."""

    registered_at: datetime
    purchases: tuple[datetime, ...] = ()
    losses: tuple[Loss, ...] = ()

    def up_to(self, at: datetime) -> ClientFacts:
        """The facts known to have happened at or before ``at``."""
        return ClientFacts(
            registered_at=self.registered_at,
            purchases=tuple(p for p in self.purchases if p <= at),
            losses=tuple(loss for loss in self.losses if loss.at <= at),
        )


@dataclass(frozen=True)
class StageInterval:
    """The client is in ``stage`` from ``valid_from`` (inclusive) to ``valid_to``
    (exclusive, ``None`` = open-ended). ``reason`` says why a ``dead`` stay began."""

    stage: Stage
    valid_from: datetime
    valid_to: datetime | None = None
    reason: str | None = None

    def contains(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_to is None or at < self.valid_to)


class _Timeline:
    """Builds a gap-free, overlap-free sequence of intervals."""

    def __init__(self, start: datetime) -> None:
        self.closed: list[StageInterval] = []
        self.current = StageInterval(Stage.POTENTIAL, start)

    @property
    def stage(self) -> Stage:
        return self.current.stage

    def move(self, stage: Stage, at: datetime, reason: str | None = None) -> None:
        if stage == self.current.stage:
            return
        if at == self.current.valid_from:  # a zero-length stay is no stay: replace it
            previous = self.closed[-1] if self.closed else None
            if previous is not None and previous.stage == stage:
                self.current = StageInterval(stage, previous.valid_from, None, previous.reason)
                self.closed.pop()
            else:
                self.current = StageInterval(stage, at, None, reason)
            return
        self.closed.append(
            StageInterval(self.current.stage, self.current.valid_from, at, self.current.reason)
        )
        self.current = StageInterval(stage, at, None, reason)

    def intervals(self) -> list[StageInterval]:
        return [*self.closed, self.current]


def stage_intervals(facts: ClientFacts, policy: LifecyclePolicy) -> list[StageInterval]:
    """The client's stages over all time, from registration on.

    The first interval starts at registration (or at the earliest fact, should one
    predate it); consecutive intervals touch, and adjacent stages differ.
    """
    window = timedelta(days=policy.loyal_window_days)
    dormancy = timedelta(days=policy.dormancy_days)
    # Purchases sort before losses at the same instant: a loss must come *after*.
    timeline: list[tuple[datetime, int, str]] = sorted(
        [(at, 0, "") for at in facts.purchases]
        + [(loss.at, 1, loss.reason) for loss in facts.losses]
    )
    start = min([facts.registered_at, *(at for at, _, _ in timeline)])
    stages = _Timeline(start)
    last_purchase: datetime | None = None
    ever_paid = False
    counted: deque[datetime] = deque()  # purchases since (re)activation, within the window

    for at, kind, reason in timeline:
        if last_purchase is not None and stages.stage in PAYING_STAGES:
            dies_at = last_purchase + dormancy + _ONE_MICROSECOND
            # A purchase at the very instant of death keeps the client alive; a loss
            # at that instant finds the client already dead.
            if at > dies_at or (at == dies_at and kind == 1):
                stages.move(Stage.DEAD, dies_at, INACTIVITY)
        if kind == 0:
            if stages.stage is Stage.POTENTIAL or stages.stage is Stage.DEAD:
                counted.clear()
                stage = Stage.RETURNED if stages.stage is Stage.DEAD and ever_paid else Stage.NEW
            else:
                stage = stages.stage
            ever_paid = True
            last_purchase = at
            counted.append(at)
            while counted[0] < at - window:
                counted.popleft()
            if stage in (Stage.NEW, Stage.RETURNED) and len(counted) >= policy.loyal_purchases:
                stage = Stage.LOYAL
            stages.move(stage, at)
        elif stages.stage is not Stage.DEAD and last_purchase != at:
            stages.move(Stage.DEAD, at, reason)

    if last_purchase is not None and stages.stage in PAYING_STAGES:
        stages.move(Stage.DEAD, last_purchase + dormancy + _ONE_MICROSECOND, INACTIVITY)
    return stages.intervals()


def interval_at(intervals: Sequence[StageInterval], at: datetime) -> StageInterval | None:
    """The interval containing ``at``; ``None`` before the first one began."""
    index = bisect_right([interval.valid_from for interval in intervals], at) - 1
    return intervals[index] if index >= 0 else None


def stage_at(facts: ClientFacts, policy: LifecyclePolicy, at: datetime) -> Stage | None:
    """The client's stage at instant ``at``; ``None`` if not yet registered."""
    interval = interval_at(stage_intervals(facts, policy), at)
    return interval.stage if interval else None


def deaths(intervals: Iterable[StageInterval]) -> list[StageInterval]:
    """The transitions to ``dead`` (each counts as a loss, with its reason)."""
    return [interval for interval in intervals if interval.stage is Stage.DEAD]
