"""Funnel read model tables: pipelines' stage order, deals, stays, outcomes.

Writes are batched: a batch's changes are gathered in memory first, so a deal that
opens and moves within one batch costs no round trip of its own; only stays opened
in an earlier batch are closed with an UPDATE (one ``executemany`` for the batch).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from adapters.read_models.base import SqlReadModel, Table
from adapters.sql import Cursor
from projections import funnel
from projections.base import Recorded
from projections.funnel import FunnelReport

_DAYS_BETWEEN = {
    # Days from {start} to {end}. SQLite's julianday keeps milliseconds: rounding the
    # difference to whole milliseconds first makes equal durations equal numbers
    # whatever the dates. PostgreSQL's date_part gives a double precision: EXTRACT gives
    # a numeric (since 14), whose averaging and sorting for the median made the stays'
    # query about 1.6-2.9x slower (45-50 ms against 17-29 ms at 200k events).
    "postgresql": "(date_part('epoch', {end} - {start}) / 86400.0)",
    "sqlite": "(ROUND((julianday({end}) - julianday({start})) * 86400000.0) / 86400000.0)",
}


@dataclass(slots=True)
class _Stay:
    position: int
    deal_id: UUID
    stage: str
    entered_at: datetime
    left_at: datetime | None = None


@dataclass
class _Writes:
    """A batch's changes folded in memory, ready to be written in a few statements."""

    pipelines: dict[UUID, tuple[str, ...]] = field(default_factory=dict)
    deals: list[funnel.DealOpened] = field(default_factory=list)
    stays: list[_Stay] = field(default_factory=list)
    """Stays entered in this batch (closed here too if they ended in it)."""
    outcomes: list[funnel.Outcome] = field(default_factory=list)
    closes: list[tuple[datetime, UUID]] = field(default_factory=list)
    """(left_at, deal_id) of stays entered in earlier batches that end in this one."""
    open_here: dict[UUID, _Stay] = field(default_factory=dict)
    touched: set[UUID] = field(default_factory=set)
    """Deals whose stay left open by an earlier batch (if any) is accounted for."""

    def add(self, change: funnel.Change) -> None:
        match change:
            case funnel.StagesDefined():
                self.pipelines[change.pipeline_id] = change.stages
            case funnel.DealOpened():
                self.deals.append(change)
            case funnel.StayEntered():
                stay = _Stay(change.position, change.deal_id, change.stage, change.at)
                self.stays.append(stay)
                self.open_here[change.deal_id] = stay
                self.touched.add(change.deal_id)
            case funnel.StayLeft():
                if (stay_here := self.open_here.pop(change.deal_id, None)) is not None:
                    stay_here.left_at = change.at
                elif change.deal_id not in self.touched:
                    self.closes.append((change.at, change.deal_id))
                self.touched.add(change.deal_id)
            case funnel.Outcome():
                self.outcomes.append(change)


class FunnelReadModel(SqlReadModel):
    name = "funnel"
    tables = (
        Table(
            "stages",
            "pipeline_id {uuid} NOT NULL, stage {text} NOT NULL, idx {int} NOT NULL,"
            " PRIMARY KEY (pipeline_id, stage)",
        ),
        Table(
            "deals",
            "deal_id {uuid} PRIMARY KEY, pipeline_id {uuid} NOT NULL, owner_id {text},"
            " client_id {uuid} NOT NULL, opened_at {ts} NOT NULL",
            indexes=("pipeline_id, opened_at",),
        ),
        Table(
            "stays",
            "position {int} PRIMARY KEY, deal_id {uuid} NOT NULL, stage {text} NOT NULL,"
            " entered_at {ts} NOT NULL, left_at {ts}",
            indexes=("deal_id, left_at",),
        ),
        Table(
            "outcomes",
            "position {int} PRIMARY KEY, deal_id {uuid} NOT NULL, kind {text} NOT NULL,"
            " at {ts} NOT NULL, reason {text}",
            indexes=("deal_id, at",),
        ),
    )
    topics = funnel.TOPICS

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        writes = _Writes()
        for recorded in batch:
            for change in funnel.changes(recorded):
                writes.add(change)
        t = self.t
        if pipelines := writes.pipelines:
            cursor.executemany(
                f"DELETE FROM {t['stages']} WHERE pipeline_id = %s",
                [(pipeline_id,) for pipeline_id in pipelines],
            )
            self.insert(
                cursor,
                "stages",
                "pipeline_id, stage, idx",
                [
                    (pipeline_id, stage, idx)
                    for pipeline_id, stages in pipelines.items()
                    for idx, stage in enumerate(stages)
                ],
            )
        if deals := writes.deals:
            self.insert(
                cursor,
                "deals",
                "deal_id, pipeline_id, owner_id, client_id, opened_at",
                [(d.deal_id, d.pipeline_id, d.owner_id, d.client_id, d.opened_at) for d in deals],
            )
        # Close before inserting: only the stays of earlier batches are open then.
        if closes := writes.closes:
            cursor.executemany(
                f"UPDATE {t['stays']} SET left_at = %s WHERE deal_id = %s AND left_at IS NULL",
                closes,
            )
        if stays := writes.stays:
            self.insert(
                cursor,
                "stays",
                "position, deal_id, stage, entered_at, left_at",
                [(s.position, s.deal_id, s.stage, s.entered_at, s.left_at) for s in stays],
            )
        if outcomes := writes.outcomes:
            self.insert(
                cursor,
                "outcomes",
                "position, deal_id, kind, at, reason",
                [(o.position, o.deal_id, o.kind, o.at, o.reason) for o in outcomes],
            )

    # ------------------------------------------------------------------ queries

    def funnel(
        self,
        pipeline_id: UUID,
        as_of: datetime,
        *,
        owner_id: str | None = None,
        opened_from: datetime | None = None,
        opened_to: datetime | None = None,
    ) -> FunnelReport:
        """The funnel of ``pipeline_id`` as of ``as_of`` (SPEC §3), over the deals of
        that pipeline opened by ``as_of`` — only ``owner_id``'s if given, and only
        those opened in [``opened_from``, ``opened_to``) if given.

        A stage is reached by a deal whose furthest stage entered by ``as_of`` (in
        the pipeline's current order) is this one or later — "stage skips count as
        passing the skipped stages" — or that was won by ``as_of``. Won and lost
        deals are those whose latest outcome by ``as_of`` is a win or a loss.
        """
        t = self.t
        conditions = ["pipeline_id = %s", "opened_at <= %s"]
        considered_params: list[Any] = [pipeline_id, as_of]
        if owner_id is not None:
            conditions.append("owner_id = %s")
            considered_params.append(owner_id)
        if opened_from is not None:
            conditions.append("opened_at >= %s")
            considered_params.append(opened_from)
        if opened_to is not None:
            conditions.append("opened_at < %s")
            considered_params.append(opened_to)
        considered = (
            f"considered AS (SELECT deal_id, opened_at FROM {t['deals']}"
            f" WHERE {' AND '.join(conditions)})"
        )
        stage_order = (
            f"stage_order AS (SELECT stage, idx FROM {t['stages']} WHERE pipeline_id = %s)"
        )
        days_in_stay = _DAYS_BETWEEN[self.dialect].format(start="s.entered_at", end="s.left_at")
        days_to_win = _DAYS_BETWEEN[self.dialect].format(start="l.opened_at", end="l.at")

        stages = [
            str(stage)
            for (stage,) in self.db.query(
                f"SELECT stage FROM {t['stages']} WHERE pipeline_id = %s ORDER BY idx",
                (pipeline_id,),
            )
        ]
        furthest = self.db.query(
            f"WITH {considered}, {stage_order},"
            # the stage index of every stay entered by as_of, and the last stage's
            # index for a deal won by as_of (even if reopened since)
            " tops AS ("
            "  SELECT s.deal_id, o.idx AS top FROM considered c"
            f"  JOIN {t['stays']} s ON s.deal_id = c.deal_id"
            "   JOIN stage_order o ON o.stage = s.stage"
            "   WHERE s.entered_at <= %s"
            "  UNION ALL"
            "  SELECT w.deal_id, (SELECT MAX(idx) FROM stage_order) FROM considered c"
            f"  JOIN {t['outcomes']} w ON w.deal_id = c.deal_id"
            "   WHERE w.kind = 'won' AND w.at <= %s"
            "),"
            # how many deals got furthest to each stage index
            " furthest AS (SELECT deal_id, MAX(top) AS top FROM tops GROUP BY deal_id)"
            " SELECT top, COUNT(*) FROM furthest GROUP BY top",
            (*considered_params, pipeline_id, as_of, as_of),
        )
        current = self.db.query(
            f"WITH {considered}"
            " SELECT s.stage, COUNT(DISTINCT s.deal_id) FROM considered c"
            f" JOIN {t['stays']} s ON s.deal_id = c.deal_id"
            " WHERE s.entered_at <= %s AND (s.left_at IS NULL OR s.left_at > %s)"
            " GROUP BY s.stage",
            (*considered_params, as_of, as_of),
        )
        finished_stays = (
            f"FROM considered c JOIN {t['stays']} s ON s.deal_id = c.deal_id WHERE s.left_at <= %s"
        )
        if self.dialect == "postgresql":  # averaged in the database, not shipped row by row
            stays = {
                str(stage): funnel.StayFigures(float(avg), float(mid))
                for stage, avg, mid in self.db.query(
                    f"WITH {considered} SELECT s.stage, AVG({days_in_stay}),"
                    f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {days_in_stay})"
                    f" {finished_stays} GROUP BY s.stage",
                    (*considered_params, as_of),
                )
            }
        else:
            stay_days: dict[str, list[float]] = defaultdict(list)
            for stage, length in self.db.query(
                f"WITH {considered} SELECT s.stage, {days_in_stay} {finished_stays}",
                (*considered_params, as_of),
            ):
                stay_days[str(stage)].append(float(length))
            stays = funnel.stay_figures(stay_days)
        outcomes = self.db.query(
            f"WITH {considered},"
            " latest AS ("
            "  SELECT w.deal_id, w.kind, w.at, w.reason, c.opened_at,"
            "   ROW_NUMBER() OVER (PARTITION BY w.deal_id ORDER BY w.at DESC, w.position DESC)"
            "   AS n"
            f"  FROM considered c JOIN {t['outcomes']} w ON w.deal_id = c.deal_id"
            "   WHERE w.at <= %s"
            ")"
            f" SELECT l.kind, l.reason, COUNT(*), AVG({days_to_win}) FROM latest l"
            " WHERE l.n = 1 AND l.kind IN ('won', 'lost') GROUP BY l.kind, l.reason",
            (*considered_params, as_of),
        )

        # a deal reached every stage up to its furthest one
        got_to: dict[int, int] = defaultdict(int)
        for top, count in furthest:
            if top is not None:  # None: won in a pipeline that has no stages
                got_to[int(top)] += int(count)
        reached = {
            stage: sum(n for top, n in got_to.items() if top >= idx)
            for idx, stage in enumerate(stages)
        }
        won, avg_sales_cycle_days = 0, None
        lost_reasons: dict[str, int] = {}
        for kind, reason, count, avg_days in outcomes:
            if kind == "won":  # one group: a win has no reason
                won, avg_sales_cycle_days = int(count), float(avg_days)
            else:
                lost_reasons[str(reason)] = lost_reasons.get(str(reason), 0) + int(count)
        return funnel.report(
            pipeline_id,
            as_of,
            stages=stages,
            reached=reached,
            current={str(stage): int(n) for stage, n in current},
            stays=stays,
            lost_reasons=lost_reasons,
            won=won,
            avg_sales_cycle_days=avg_sales_cycle_days,
        )
