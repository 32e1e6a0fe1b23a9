"""Example KPIs to try with ``crm replay`` (see the README, "Trying a new KPI").

crm replay examples.kpis:RepeatPurchaseRate
crm replay examples.kpis:AvgCheck --until 2025-12-31
crm replay examples.kpis:UnansweredLeads --until 2025-12-31T12:00
crm replay examples.kpis:MedianFirstResponse
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from application.settings import Settings
from domain.client import Client
from projections.base import Recorded
from projections.kpis import LeadKpi


class RepeatPurchaseRate:
    """Share of paying clients who bought at least twice (a new KPI)."""

    key = "repeat_purchase_rate"
    events = (Client.PurchaseMade,)

    def initial(self) -> Counter[UUID]:
        return Counter()

    def apply(self, state: Counter[UUID], recorded: Recorded) -> Counter[UUID]:
        state[recorded.event.originator_id] += 1
        return state

    def result(self, state: Counter[UUID], as_of: datetime) -> float | None:
        if not state:
            return None
        return sum(1 for n in state.values() if n >= 2) / len(state)


class AvgCheck:
    """Revenue ÷ purchases — the built-in ``avg_check``, written again from scratch,
    so the replay prints both side by side. Constant memory: two numbers."""

    key = "avg_check"
    events = (Client.PurchaseMade,)

    def initial(self) -> tuple[Decimal, int]:
        return Decimal(0), 0

    def apply(self, state: tuple[Decimal, int], recorded: Recorded) -> tuple[Decimal, int]:
        event: Any = recorded.event
        return state[0] + event.amount, state[1] + 1

    def result(self, state: tuple[Decimal, int], as_of: datetime) -> Decimal | None:
        revenue, purchases = state
        return (revenue / purchases).quantize(Decimal("0.0001")) if purchases else None


def _response_time() -> timedelta:
    return Settings.from_env().lead_response


@dataclass(frozen=True)
class UnansweredLeads(LeadKpi):
    """The built-in ``unanswered_leads``, run through the replay sandbox (with
    ``CRM_LEAD_RESPONSE_MINUTES`` as the built-in reads it)."""

    key: str = "unanswered_leads"
    response_time: timedelta = field(default_factory=_response_time)


@dataclass(frozen=True)
class MedianFirstResponse(LeadKpi):
    """The built-in ``median_first_response_minutes`` in the replay sandbox."""

    key: str = "median_first_response_minutes"
    response_time: timedelta = field(default_factory=_response_time)
