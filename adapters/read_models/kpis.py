"""The KPIs of SPEC §4 at any instant, in SQL over the lifecycle read model's tables.

The same questions the KPI folds answer (``projections/kpis.py``), asked of the
read model so the API answers in milliseconds; both finish with
``projections.kpis.kpi_values``.

Over one owner's clients too (SPEC §8: "managers' figures cover their own records"):
the clients whose card in the directory names that owner now, merged duplicates
counting as their survivor's, as everywhere else.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.leads import LeadsReadModel
from adapters.read_models.lifecycle import LifecycleReadModel, stage_counts_of
from adapters.sql import Database, Query, Rows, as_datetime, from_units
from domain.lifecycle import PAYING_STAGES, Stage
from projections.kpis import (
    CHURN_PERIOD_DAYS,
    DEFAULT_RESPONSE_TIME,
    NO_CONTACT_DAYS,
    KpiInputs,
    Paying,
    kpi_values,
)

_DEAD = Stage.DEAD.value
_PAYING = tuple(sorted(stage.value for stage in PAYING_STAGES))
_PAYING_MARKS = ", ".join("%s" for _ in _PAYING)

KPI_MODELS = ("lifecycle", "leads")
"""The read models the KPIs are read from (catch them up before reading)."""

_CONTAINS = "{i}.valid_from <= %s AND ({i}.valid_to IS NULL OR {i}.valid_to > %s)"
_OWNED = (
    f" AND {{column}} IN (SELECT client_id FROM {DirectoryReadModel.physical('cards')}"
    " WHERE owner_id = %s)"
)
"""Restricts ``column`` (a client id) to one owner's clients (the one parameter)."""


def _owned(column: str, owner_id: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition restricting ``column`` to ``owner_id``'s clients, and its
    parameter; nothing for ``None`` (everyone's)."""
    if owner_id is None:
        return "", ()
    return _OWNED.format(column=column), (owner_id,)


def stage_counts_query(at: datetime, *, owner_id: str | None = None) -> Query[dict[str, int]]:
    """How many clients are in each stage at ``at``: everyone's from the day deltas
    (``LifecycleReadModel.counts_query``), one owner's from the intervals of their
    clients that hold ``at``."""
    if owner_id is None:
        return LifecycleReadModel.counts_query(at)
    owned, param = _owned("li.client_id", owner_id)
    return Query(
        f"SELECT li.stage, COUNT(*) FROM {LifecycleReadModel.physical('intervals')} li"
        f" WHERE {_CONTAINS.format(i='li')}{owned} GROUP BY li.stage",
        (at, at, *param),
        stage_counts_of,
    )


class KpiQueries:
    """KPIs as of any instant, read from the live lifecycle tables."""

    def __init__(self, db: Database, response_time: timedelta = DEFAULT_RESPONSE_TIME) -> None:
        self.db = db
        self.response_time = response_time
        self.leads = LeadsReadModel(db)
        self.clients = LifecycleReadModel.physical("clients")
        self.facts = LifecycleReadModel.physical("facts")
        self.intervals = LifecycleReadModel.physical("intervals")

    def values(self, as_of: datetime, *, owner_id: str | None = None) -> dict[str, Any]:
        """Every KPI at ``as_of``, over every client or over ``owner_id``'s: SPEC §4's
        from the lifecycle tables, the leads' two from the leads table."""
        return {
            **kpi_values(self.inputs(as_of, owner_id=owner_id)),
            **self.leads.values(as_of, self.response_time, owner_id=owner_id),
        }

    def inputs(self, as_of: datetime, *, owner_id: str | None = None) -> KpiInputs:
        c, f, i = self.clients, self.facts, self.intervals
        at_t = _CONTAINS.format(i="li")
        of_c = of_f = of_i = _owned("client_id", owner_id)
        of_li, of_p = _owned("li.client_id", owner_id), _owned("p.client_id", owner_id)
        inputs = KpiInputs(as_of=as_of)
        ((total,),) = self.db.query(
            f"SELECT COUNT(*) FROM {c} WHERE merged_into IS NULL AND registered_at <= %s"
            f" AND (erased_at IS NULL OR erased_at > %s){of_c[0]}",
            (as_of, as_of, *of_c[1]),
        )
        inputs.clients_total = int(total)
        stages = self.db.run(stage_counts_query(as_of, owner_id=owner_id))
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
            f" ON x.client_id = li.client_id WHERE {at_t} AND li.stage <> %s{of_li[0]}",
            (*limits, as_of, as_of, as_of, _DEAD, *of_li[1]),
        )[0]
        inputs.no_contact = {
            days: int(n or 0) for days, n in zip(NO_CONTACT_DAYS, counts, strict=True)
        }
        inputs.deaths = [
            (as_datetime(at), str(reason))
            for at, reason in self.db.query(
                f"SELECT valid_from, reason FROM {i}"
                f" WHERE stage = %s AND valid_from <= %s{of_i[0]} ORDER BY valid_from",
                (_DEAD, as_of, *of_i[1]),
            )
        ]
        ((purchases, revenue, margin),) = self.db.query(
            f"SELECT COUNT(*), SUM(amount), SUM(amount - cost) FROM {f}"
            f" WHERE kind = 'purchase' AND at <= %s{of_f[0]}",
            (as_of, *of_f[1]),
        )
        inputs.purchases = int(purchases)
        inputs.revenue = from_units(revenue)
        inputs.margin = from_units(margin)
        inputs.paying = [
            Paying(
                as_datetime(registered_at),
                as_datetime(first),
                as_datetime(since) if stage == _DEAD else as_of,
            )
            for registered_at, first, stage, since in self.db.query(
                "SELECT c.registered_at, p.first, li.stage, li.valid_from"
                f" FROM (SELECT client_id, MIN(at) AS first FROM {f}"
                " WHERE kind = 'purchase' AND at <= %s GROUP BY client_id) p"
                f" JOIN {c} c ON c.client_id = p.client_id"
                f" JOIN {i} li ON li.client_id = p.client_id AND {at_t}"
                f" WHERE 1 = 1{of_p[0]}",
                (as_of, as_of, as_of, *of_p[1]),
            )
        ]
        start = as_of - timedelta(days=CHURN_PERIOD_DAYS)
        ((base, churned),) = self.db.query(
            "SELECT COUNT(*), SUM(CASE WHEN EXISTS ("
            f"SELECT 1 FROM {i} d WHERE d.client_id = li.client_id AND d.stage = %s"
            " AND d.valid_from > %s AND d.valid_from <= %s) THEN 1 ELSE 0 END)"
            f" FROM {i} li WHERE {at_t} AND li.stage IN ({_PAYING_MARKS}){of_li[0]}",
            (_DEAD, start, as_of, start, start, *_PAYING, *of_li[1]),
        )
        inputs.churn_base = int(base)
        inputs.churned = int(churned or 0)
        return inputs


def losses_query(
    start: datetime, end: datetime, *, owner_id: str | None = None
) -> Query[dict[str, int]]:
    """How many clients (``owner_id``'s, if given) were lost in ``[start, end)``, by
    reason: the transitions to ``dead`` (explicit, or by inactivity) that began in
    that period — the ones ``lost_per_year`` and ``churn_reasons`` count, for any
    period. A stay may begin in the future (a death by inactivity that will happen if
    nothing else does), so end the period no later than the instant the figures are
    for."""
    owned, param = _owned("client_id", owner_id)
    return Query(
        f"SELECT reason, COUNT(*) FROM {LifecycleReadModel.physical('intervals')}"
        f" WHERE stage = %s AND valid_from >= %s AND valid_from < %s{owned}"
        " GROUP BY reason",
        (_DEAD, start, end, *param),
        _by_reason,
    )


def _by_reason(rows: Rows) -> dict[str, int]:
    return {str(reason): int(n) for reason, n in sorted(rows, key=lambda row: str(row[0]))}
