"""KPIs as folds over events (SPEC §4), and the formulas that define them.

A KPI is a small class — the same interface for the built-in KPIs and for one a
developer tries out with ``crm replay``::

    class AvgCheck:
        key = "avg_check"
        events = (Client.PurchaseMade,)          # only these are decoded and fed
        def initial(self): return (Decimal(0), 0)
        def apply(self, state, recorded): ...    # -> new state (pure)
        def result(self, state, as_of): ...      # -> the value at instant as_of

"As of T" means: fold the events whose business time is at or before T, then ask
for the result at T (time passing matters: a client dies of inactivity without any
event). The read models answer the same questions in SQL for the API
(``adapters/read_models/kpis.py``); both finish with the formulas below, and a
property test holds the two to the same numbers.

Merges are retroactive: a duplicate absorbed into another card is the same person,
so its facts count as the survivor's at every instant and it never counts as a
client of its own. Erasure is not: an erased client still counts in every KPI
except ``clients_total`` from the instant of erasure.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction
from functools import singledispatch
from statistics import fmean
from typing import Any, Protocol, TypeVar
from uuid import UUID

from domain.client import Client
from domain.lifecycle import (
    PAYING_STAGES,
    ClientFacts,
    LifecyclePolicy,
    Loss,
    Stage,
    deaths,
    interval_at,
    stage_intervals,
)
from projections import leads, lifecycle
from projections.base import Ignored, Recorded, handled_by

S = TypeVar("S")

NO_CONTACT_DAYS = (30, 180)
CHURN_PERIOD_DAYS = 365
DAYS_PER_YEAR = 365.25
MONEY_PLACES = Decimal("0.0001")
DAY_SECONDS = 86_400.0
_MICROSECOND = timedelta(microseconds=1)
_YEAR_US = int(DAYS_PER_YEAR * 86_400 * 1_000_000)


class Kpi(Protocol[S]):
    """A KPI: a pure fold over recorded events, then a result at an instant."""

    key: str
    events: tuple[type[Any], ...]

    def initial(self) -> S: ...

    def apply(self, state: S, recorded: Recorded) -> S: ...

    def result(self, state: S, as_of: datetime) -> Any: ...


# --------------------------------------------------------------- the formulas


@dataclass(frozen=True)
class Paying:
    """A paying client's dates at the instant of a KPI."""

    registered_at: datetime
    first_purchase: datetime
    end: datetime
    """The moment they became dead, if dead; otherwise the KPI's instant."""


@dataclass
class KpiInputs:
    """Everything the KPI formulas need at one instant, however it was gathered."""

    as_of: datetime
    clients_total: int = 0
    stage_counts: dict[str, int] = field(default_factory=dict)
    no_contact: dict[int, int] = field(default_factory=dict)
    deaths: list[tuple[datetime, str]] = field(default_factory=list)
    purchases: int = 0
    revenue: Decimal = Decimal(0)
    margin: Decimal = Decimal(0)
    paying: list[Paying] = field(default_factory=list)
    churn_base: int = 0
    churned: int = 0


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN)


def _ratio(numerator: float | Decimal, denominator: float | Decimal) -> float | None:
    return float(numerator) / float(denominator) if denominator else None


def _days(delta: timedelta) -> float:
    return delta.total_seconds() / DAY_SECONDS


def kpi_values(inputs: KpiInputs) -> dict[str, Any]:
    """SPEC §4 from the gathered inputs; ``None`` where a ratio has no denominator."""
    p, n = inputs.purchases, len(inputs.paying)
    avg_check = _money(inputs.revenue / p) if p else None
    margin_ratio = _ratio(inputs.margin, inputs.revenue)
    lifetimes = [_days(c.end - c.first_purchase) for c in inputs.paying]
    lifecycles = [_days(c.end - c.registered_at) for c in inputs.paying]
    avg_lifetime = fmean(lifetimes) if lifetimes else None
    per_year = Counter(at.year for at, _ in inputs.deaths)
    return {
        "clients_total": inputs.clients_total,
        "stage_counts": {stage.value: inputs.stage_counts.get(stage.value, 0) for stage in Stage},
        **{f"no_contact_over_{d}d": inputs.no_contact.get(d, 0) for d in NO_CONTACT_DAYS},
        "dead_clients": inputs.stage_counts.get(Stage.DEAD.value, 0),
        "lost_per_year": {str(year): per_year[year] for year in sorted(per_year)},
        "churn_reasons": dict(sorted(Counter(reason for _, reason in inputs.deaths).items())),
        "avg_purchases_per_client": _ratio(p, n),
        "avg_check": avg_check,
        "avg_margin": _money(inputs.margin / p) if p else None,
        "margin_ratio": margin_ratio,
        "avg_customer_lifetime_days": avg_lifetime,
        "avg_lifecycle_days": fmean(lifecycles) if lifecycles else None,
        "churn_rate": _ratio(inputs.churned, inputs.churn_base),
        "churn_period": {
            "from": inputs.as_of - timedelta(days=CHURN_PERIOD_DAYS),
            "to": inputs.as_of,
        },
        "clv": _clv(inputs),
    }


def _clv(inputs: KpiInputs) -> Decimal | None:
    """clv = avg_check * purchases per client per year * margin_ratio * lifetime in
    years, the yearly frequency measured over the paying clients' own lifetimes.

    Computed exactly (in fractions of microseconds), so the result does not depend
    on the order the clients were gathered in.
    """
    p, n = inputs.purchases, len(inputs.paying)
    customer_years = Fraction(
        sum((c.end - c.first_purchase) // _MICROSECOND for c in inputs.paying), _YEAR_US
    )
    if not (p and n and inputs.revenue and customer_years):
        return None
    avg_check = Fraction(inputs.revenue) / p
    frequency = p / customer_years
    margin_ratio = Fraction(inputs.margin) / Fraction(inputs.revenue)
    lifetime_years = customer_years / n
    exact = avg_check * frequency * margin_ratio * lifetime_years
    return _money(Decimal(exact.numerator) / Decimal(exact.denominator))


# ------------------------------------------------- a fold of client histories


@dataclass
class History:
    """What one client's events say, as needed by the lifecycle KPIs."""

    registered_at: datetime
    purchases: list[tuple[datetime, Decimal, Decimal]] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    contacts: list[datetime] = field(default_factory=list)
    erased_at: datetime | None = None
    merged_into: UUID | None = None


Histories = dict[UUID, History]


def fold_history(state: Histories, recorded: Recorded) -> Histories:
    """Add one event to the client histories (mutating ``state`` in place, which a
    fold may do with a state it created)."""
    event = recorded.event
    if isinstance(event, Client.ClientRegistered):
        state[event.originator_id] = History(event.occurred_at)
    elif (history := state.get(event.originator_id)) is not None:
        _add(event, history, state)
    return state


@singledispatch
def _add(event: Any, history: History, state: Histories) -> None:
    """Add one event of a registered client to its history."""


@_add.register
def _(event: Client.PurchaseMade, history: History, state: Histories) -> None:  # noqa: ARG001
    history.purchases.append((event.occurred_at, event.amount, event.cost))


@_add.register
def _(event: Client.ClientLost, history: History, state: Histories) -> None:  # noqa: ARG001
    history.losses.append(Loss(event.occurred_at, event.reason))


@_add.register
def _(event: Client.ContactMade, history: History, state: Histories) -> None:  # noqa: ARG001
    history.contacts.append(event.occurred_at)


@_add.register
def _(event: Client.PersonalDataErased, history: History, state: Histories) -> None:  # noqa: ARG001
    history.erased_at = event.occurred_at


@_add.register
def _(event: Client.DuplicateAbsorbed, history: History, state: Histories) -> None:
    absorbed = state.get(event.absorbed_id)
    if absorbed is None:
        return
    absorbed.merged_into = event.originator_id
    history.registered_at = min(history.registered_at, absorbed.registered_at)
    history.purchases += absorbed.purchases
    history.losses += absorbed.losses
    history.contacts += absorbed.contacts
    absorbed.purchases, absorbed.losses, absorbed.contacts = [], [], []


HISTORY_EVENTS: tuple[type[Any], ...] = (Client.ClientRegistered, *handled_by(_add))
"""Registration starts a history (``fold_history``); the other events add to it."""
HISTORY_IGNORED: Ignored = lifecycle.IGNORED
"""The KPIs fold the facts the lifecycle read model keeps, which answers them in SQL."""


def inputs_from_histories(
    histories: Mapping[UUID, History], policy: LifecyclePolicy, as_of: datetime
) -> KpiInputs:
    """Gather the KPI inputs at ``as_of`` from client histories (facts after ``as_of``
    are ignored)."""
    inputs = KpiInputs(as_of=as_of)
    stages: Counter[str] = Counter()
    churn_start = as_of - timedelta(days=CHURN_PERIOD_DAYS)
    for history in histories.values():
        if history.merged_into is not None or history.registered_at > as_of:
            continue
        if history.erased_at is None or history.erased_at > as_of:
            inputs.clients_total += 1
        purchases = [p for p in history.purchases if p[0] <= as_of]
        facts = ClientFacts(
            history.registered_at,
            tuple(at for at, _, _ in purchases),
            tuple(loss for loss in history.losses if loss.at <= as_of),
        )
        intervals = stage_intervals(facts, policy)
        current = interval_at(intervals, as_of)
        if current is None:
            continue
        stages[current.stage.value] += 1
        if current.stage is not Stage.DEAD:
            touches = [p[0] for p in purchases] + [c for c in history.contacts if c <= as_of]
            last = max(touches, default=None)
            for days in NO_CONTACT_DAYS:
                limit = as_of - timedelta(days=days)
                if (last if last is not None else history.registered_at) < limit:
                    inputs.no_contact[days] = inputs.no_contact.get(days, 0) + 1
        inputs.deaths += [
            (d.valid_from, d.reason or "") for d in deaths(intervals) if d.valid_from <= as_of
        ]
        if purchases:
            inputs.purchases += len(purchases)
            inputs.revenue += sum((amount for _, amount, _ in purchases), Decimal(0))
            inputs.margin += sum((amount - cost for _, amount, cost in purchases), Decimal(0))
            end = current.valid_from if current.stage is Stage.DEAD else as_of
            inputs.paying.append(Paying(history.registered_at, min(p[0] for p in purchases), end))
        at_start = interval_at(intervals, churn_start)
        if at_start is not None and at_start.stage in PAYING_STAGES:
            inputs.churn_base += 1
            if any(churn_start < d.valid_from <= as_of for d in deaths(intervals)):
                inputs.churned += 1
    inputs.stage_counts = dict(stages)
    return inputs


@dataclass(frozen=True)
class BuiltInKpi:
    """A built-in KPI: folds client histories, then reads its key from the formulas."""

    key: str
    policy: LifecyclePolicy = field(default_factory=LifecyclePolicy)
    events: tuple[type[Any], ...] = HISTORY_EVENTS

    def initial(self) -> Histories:
        return {}

    def apply(self, state: Histories, recorded: Recorded) -> Histories:
        return fold_history(state, recorded)

    def result(self, state: Histories, as_of: datetime) -> Any:
        return kpi_values(inputs_from_histories(state, self.policy, as_of))[self.key]


KEYS = (
    "clients_total",
    "stage_counts",
    "no_contact_over_30d",
    "no_contact_over_180d",
    "dead_clients",
    "lost_per_year",
    "churn_reasons",
    "avg_purchases_per_client",
    "avg_check",
    "avg_margin",
    "margin_ratio",
    "avg_customer_lifetime_days",
    "avg_lifecycle_days",
    "churn_rate",
    "clv",
    "unanswered_leads",
    "median_first_response_minutes",
)
LEAD_KEYS = ("unanswered_leads", "median_first_response_minutes")
DEFAULT_RESPONSE_TIME = timedelta(minutes=120)


def lead_values(
    rows: Iterable[leads.Lead], as_of: datetime, response_time: timedelta
) -> dict[str, Any]:
    """``unanswered_leads`` (open at ``as_of``) and ``median_first_response_minutes``
    (over leads registered in the 30 days before ``as_of``), by the rules of
    ``projections.leads``; the folds and the SQL read model both finish here."""
    unanswered, minutes = 0, []
    for lead in rows:
        if lead.registered_at > as_of:
            continue
        unanswered += leads.unanswered_at(lead, as_of, response_time)
        if (response := leads.first_response_minutes(lead, as_of)) is not None:
            minutes.append(response)
    return {
        "unanswered_leads": unanswered,
        "median_first_response_minutes": leads.median_minutes(minutes),
    }


@dataclass(frozen=True)
class LeadKpi:
    """A built-in KPI about leads: folds the leads read model's rows (the very fold
    of ``projections.leads``), then reads its key from ``lead_values``."""

    key: str
    response_time: timedelta = DEFAULT_RESPONSE_TIME
    events: tuple[type[Any], ...] = leads.HANDLED

    def initial(self) -> dict[UUID, leads.Lead]:
        return {}

    def apply(self, state: dict[UUID, leads.Lead], recorded: Recorded) -> dict[UUID, leads.Lead]:
        state.update(leads.apply(state, recorded))
        return state

    def result(self, state: dict[UUID, leads.Lead], as_of: datetime) -> Any:
        return lead_values(state.values(), as_of, self.response_time)[self.key]


def built_in(
    policy: LifecyclePolicy, response_time: timedelta = DEFAULT_RESPONSE_TIME
) -> dict[str, BuiltInKpi | LeadKpi]:
    """The KPIs of SPEC §4 and the leads' two, by key."""
    return {
        key: LeadKpi(key, response_time) if key in LEAD_KEYS else BuiltInKpi(key, policy)
        for key in KEYS
    }


def fold(kpi: Kpi[Any], events: Iterable[Recorded], as_of: datetime) -> Any:
    """Run ``kpi`` over ``events`` (only its event classes) and read it at ``as_of``."""
    state = kpi.initial()
    wanted = tuple(kpi.events)
    for recorded in events:
        if isinstance(recorded.event, wanted):
            state = kpi.apply(state, recorded)
    return kpi.result(state, as_of)
