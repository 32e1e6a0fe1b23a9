"""The KPIs of SPEC §4 at any instant, in SQL over the lifecycle read model's tables.

The same questions the KPI folds answer (``projections/kpis.py``), asked of the
read model so the API answers in milliseconds; both finish with
``projections.kpis.kpi_values``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.sql import Database, Query, Rows, as_datetime, from_units
from projections.kpis import (
    CHURN_PERIOD_DAYS,
    NO_CONTACT_DAYS,
    KpiInputs,
    Paying,
    kpi_values,
)

_CONTAINS = "{i}.valid_from <= %s AND ({i}.valid_to IS NULL OR {i}.valid_to > %s)"


class KpiQueries:
    """KPIs as of any instant, read from the live lifecycle tables."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.clients = LifecycleReadModel.physical("clients")
        self.facts = LifecycleReadModel.physical("facts")
        self.intervals = LifecycleReadModel.physical("intervals")

    def values(self, as_of: datetime) -> dict[str, Any]:
        return kpi_values(self.inputs(as_of))

    def inputs(self, as_of: datetime) -> KpiInputs:
        c, f, i = self.clients, self.facts, self.intervals
        at_t = _CONTAINS.format(i="li")
        inputs = KpiInputs(as_of=as_of)
        ((total,),) = self.db.query(
            f"SELECT COUNT(*) FROM {c} WHERE merged_into IS NULL AND registered_at <= %s"
            " AND (erased_at IS NULL OR erased_at > %s)",
            (as_of, as_of),
        )
        inputs.clients_total = int(total)
        stages = LifecycleReadModel.counts_at(self.db, as_of)
        inputs.stage_counts = {stage: n for stage, n in stages.items() if n}
        limits = [as_of - timedelta(days=days) for days in NO_CONTACT_DAYS]
        counts = self.db.query(
            "SELECT "
            + ", ".join(
                "SUM(CASE WHEN COALESCE(x.last, c.registered_at) < %s THEN 1 ELSE 0 END)"
                for _ in limits
            )
            + f" FROM {i} li JOIN {c} c ON c.client_id = li.client_id"
            f" LEFT JOIN (SELECT client_id, MAX(at) AS last FROM {f}"
            " WHERE kind IN ('contact', 'purchase') AND at <= %s GROUP BY client_id) x"
            f" ON x.client_id = li.client_id WHERE {at_t} AND li.stage <> 'dead'",
            (*limits, as_of, as_of, as_of),
        )[0]
        inputs.no_contact = {
            days: int(n or 0) for days, n in zip(NO_CONTACT_DAYS, counts, strict=True)
        }
        inputs.deaths = [
            (as_datetime(at), str(reason))
            for at, reason in self.db.query(
                f"SELECT valid_from, reason FROM {i}"
                " WHERE stage = 'dead' AND valid_from <= %s ORDER BY valid_from",
                (as_of,),
            )
        ]
        ((purchases, revenue, margin),) = self.db.query(
            f"SELECT COUNT(*), SUM(amount), SUM(amount - cost) FROM {f}"
            " WHERE kind = 'purchase' AND at <= %s",
            (as_of,),
        )
        inputs.purchases = int(purchases)
        inputs.revenue = from_units(revenue)
        inputs.margin = from_units(margin)
        inputs.paying = [
            Paying(
                as_datetime(registered_at),
                as_datetime(first),
                as_datetime(since) if stage == "dead" else as_of,
            )
            for registered_at, first, stage, since in self.db.query(
                "SELECT c.registered_at, p.first, li.stage, li.valid_from"
                f" FROM (SELECT client_id, MIN(at) AS first FROM {f}"
                " WHERE kind = 'purchase' AND at <= %s GROUP BY client_id) p"
                f" JOIN {c} c ON c.client_id = p.client_id"
                f" JOIN {i} li ON li.client_id = p.client_id AND {at_t}",
                (as_of, as_of, as_of),
            )
        ]
        start = as_of - timedelta(days=CHURN_PERIOD_DAYS)
        ((base, churned),) = self.db.query(
            "SELECT COUNT(*), SUM(CASE WHEN EXISTS ("
            f"SELECT 1 FROM {i} d WHERE d.client_id = li.client_id AND d.stage = 'dead'"
            " AND d.valid_from > %s AND d.valid_from <= %s) THEN 1 ELSE 0 END)"
            f" FROM {i} li WHERE {at_t} AND li.stage IN ('new', 'loyal', 'returned')",
            (start, as_of, start, start),
        )
        inputs.churn_base = int(base)
        inputs.churned = int(churned or 0)
        return inputs


def losses_query(start: datetime, end: datetime) -> Query[dict[str, int]]:
    """How many clients were lost in ``[start, end)``, by reason: the transitions to
    ``dead`` (explicit, or by inactivity) that began in that period — the ones
    ``lost_per_year`` and ``churn_reasons`` count, for any period. A stay may begin
    in the future (a death by inactivity that will happen if nothing else does), so
    end the period no later than the instant the figures are for."""
    return Query(
        f"SELECT reason, COUNT(*) FROM {LifecycleReadModel.physical('intervals')}"
        " WHERE stage = 'dead' AND valid_from >= %s AND valid_from < %s GROUP BY reason",
        (start, end),
        _by_reason,
    )


def _by_reason(rows: Rows) -> dict[str, int]:
    return {str(reason): int(n) for reason, n in sorted(rows, key=lambda row: str(row[0]))}
