"""Funnel read model tables: pipelines' stage order, deals, stays, outcomes, and the
deals' moments summed per day and per span, so that the funnel as of T reads a few
thousand rows instead of every deal and stay.

Writes are batched: a batch's changes are gathered in memory first, so a deal that
opens and moves within one batch costs no round trip of its own; only stays opened
in an earlier batch are closed with an UPDATE (one ``executemany`` for the batch).

Then the moments (``projections.funnel.moments``) of every deal the batch touched
are made again from its rows: its old moments are deleted and subtracted from the
sums, the new ones inserted and added (a pipeline whose stages are redefined has
all its deals' moments made again: their furthest stages follow the new order).
``day_sums`` hold, per pipeline, scope (``''``: every deal; else one owner's
deals), UTC day, kind and label, the moments' ``n`` and ``micros`` of that day;
``span_sums`` the same over spans of ``SPAN_DAYS`` days. The funnel as of T sums
the spans before T's span, the days of T's span before T's day and the moments
from the start of T's day up to T. A day or span whose sums come back to zero
keeps no row, as a rebuild would. The deals opened in a given time have no sums:
their funnel is counted from the stays and outcomes themselves.

The medians: ``stay_lengths`` holds, per pipeline, scope and stage, for each period
of ``PERIOD_DAYS`` days (counted from 1970-01-01) in which a stay of that stage
finished, the histogram of the lengths of every such stay finished by the end of
that period (``projections.funnel.length_bucket``). The latest one before T's
period plus the stays of T's period up to T tell which bucket holds the middle stay
and its rank there; a walk over that bucket's ``stay`` moments in length order
finds it. A stay added or taken away makes its stage's histograms from its period
on again: mostly the current period's only (a deal's earlier stays, made again
alike, cancel out), all of them for a batch of backdated stays, which periods
rather than days keep to about 46 rows a year for each stage and scope.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any
from uuid import UUID

import orjson

from adapters.read_models.base import (
    DAY_OF_SQL,
    EPOCH,
    REFOLD_CHUNK,
    SPAN_DAYS,
    SqlReadModel,
    Table,
    blocking,
    chunks,
    day_of,
)
from adapters.sql import Cursor, Steps, as_datetime, as_optional_datetime, as_uuid
from projections import funnel
from projections.base import Recorded
from projections.funnel import (
    DAY_MICROS,
    MOMENT_KINDS,
    DealRows,
    FunnelReport,
    Histogram,
    Moment,
    length_bucket,
)

_DAYS_BETWEEN = {
    # Days from {start} to {end}. SQLite's julianday keeps milliseconds: rounding the
    # difference to whole milliseconds first makes equal durations equal numbers
    # whatever the dates. PostgreSQL's date_part gives a double precision: EXTRACT gives
    # a numeric (since 14), much slower to average and sort for the median (figures in
    # docs/PERFORMANCE.md, HTTP reads).
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
        Table(
            "moments",
            "deal_id {uuid} NOT NULL, seq {int} NOT NULL, pipeline_id {uuid} NOT NULL,"
            " owner_id {text}, at {ts} NOT NULL, kind {text} NOT NULL, label {text} NOT NULL,"
            " n {int} NOT NULL, micros {int} NOT NULL, PRIMARY KEY (deal_id, seq)",
            # the moments of T's day and the stays of T's period, read from the index
            # alone; a stage's finished stays in length order
            indexes=(
                "pipeline_id, kind, at, label, micros, n, owner_id",
                "pipeline_id, kind, label, micros, at, owner_id",
            ),
            query_only=(
                "pipeline_id, kind, at, label, micros, n, owner_id",
                "pipeline_id, kind, label, micros, at, owner_id",
            ),
        ),
        Table(
            "day_sums",
            "pipeline_id {uuid} NOT NULL, scope {text} NOT NULL, day {int} NOT NULL,"
            " kind {text} NOT NULL, label {text} NOT NULL, n {int} NOT NULL,"
            " micros {int} NOT NULL, PRIMARY KEY (pipeline_id, scope, day, kind, label)",
        ),
        Table(
            "span_sums",
            "pipeline_id {uuid} NOT NULL, scope {text} NOT NULL, span {int} NOT NULL,"
            " kind {text} NOT NULL, label {text} NOT NULL, n {int} NOT NULL,"
            " micros {int} NOT NULL, PRIMARY KEY (pipeline_id, scope, span, kind, label)",
        ),
        Table(
            "stay_lengths",
            # counts: JSON [[bucket, stays], …] of the stays finished by the period's end
            "pipeline_id {uuid} NOT NULL, scope {text} NOT NULL, stage {text} NOT NULL,"
            " period {int} NOT NULL, counts {text} NOT NULL,"
            " PRIMARY KEY (pipeline_id, scope, stage, period)",
        ),
    )
    topics = funnel.TOPICS

    def finish_rebuild(self, cursor: Cursor) -> None:
        """A rebuild writes no sums batch by batch (most of its batches would change
        most days' rows): they are summed from the moments here, once."""
        t = self.t
        day = DAY_OF_SQL[self.dialect].format(column="at")
        cursor.execute(
            f"INSERT INTO {t['day_sums']} (pipeline_id, scope, day, kind, label, n, micros)"
            " SELECT pipeline_id, scope, day, kind, label, SUM(n), SUM(micros) FROM ("
            f"  SELECT pipeline_id, '' AS scope, {day} AS day, kind, label, n, micros"
            f"  FROM {t['moments']}"
            f"  UNION ALL SELECT pipeline_id, owner_id, {day}, kind, label, n, micros"
            f"  FROM {t['moments']} WHERE owner_id IS NOT NULL AND owner_id <> ''"
            ") AS moments GROUP BY pipeline_id, scope, day, kind, label"
            " HAVING SUM(n) <> 0 OR SUM(micros) <> 0"
        )
        self.sum_spans(cursor, SUMS, SUM_COLUMNS)
        self._fill_lengths(cursor)
        super().finish_rebuild(cursor)

    def upgrade(self, cursor: Cursor) -> None:
        """Tables made before the moments existed: make every deal's moments once;
        before the stays' lengths existed: make their histograms from the moments.
        (Tables a rebuild is writing get theirs at its end.)"""
        if self.rebuilding:
            return
        t = self.t
        cursor.execute(f"SELECT 1 FROM {t['moments']} LIMIT 1")
        if cursor.fetchone() is None:
            cursor.execute(f"SELECT deal_id FROM {t['deals']}")
            self._refold(cursor, sorted(as_uuid(row[0]) for row in cursor.fetchall()))
        cursor.execute(f"SELECT 1 FROM {t['stay_lengths']} LIMIT 1")
        if cursor.fetchone() is None:
            self._fill_lengths(cursor)

    def _fill_lengths(self, cursor: Cursor) -> None:
        """Every stage's histograms of stay lengths, from the ``stay`` moments."""
        cursor.execute(
            f"SELECT pipeline_id, owner_id, at, label, n, micros FROM {self.t['moments']}"
            " WHERE kind = 'stay'"
        )
        lengths = _lengths()
        for pipeline_id, owner_id, at, label, n, micros in cursor.fetchall():
            stay = Moment(as_datetime(at), "stay", str(label), int(n), int(micros))
            _add_length(lengths, as_uuid(pipeline_id), owner_id, stay)
        self._add_lengths(cursor, lengths)

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
        touched = {d.deal_id for d in writes.deals} | writes.touched
        touched |= {o.deal_id for o in writes.outcomes}
        if pipelines:  # their deals' furthest stages follow the new order
            marks = ", ".join(["%s"] * len(pipelines))
            cursor.execute(
                f"SELECT deal_id FROM {t['deals']} WHERE pipeline_id IN ({marks})", list(pipelines)
            )
            touched |= {as_uuid(row[0]) for row in cursor.fetchall()}
        if touched:
            self._refold(cursor, sorted(touched))

    def _refold(self, cursor: Cursor, deal_ids: list[UUID]) -> None:
        """Make the moments of these deals again from their rows, a chunk of deals at a
        time (read, their old moments deleted, the new ones written with one bulk
        insert: a redefined pipeline's deals are many); then change the sums by the
        difference (at the end of a rebuild instead: see ``finish_rebuild``)."""
        sums: _Sums | None = None if self.rebuilding else defaultdict(lambda: [0, 0])
        lengths = _lengths()
        orders: dict[UUID, list[str]] = {}
        for chunk in chunks(deal_ids, REFOLD_CHUNK[self.dialect]):
            rows: list[tuple[Any, ...]] = []
            dropped = self._drop_moments(cursor, chunk, returning=sums is not None)
            if sums is not None:
                for pipeline_id, owner_id, at, kind, label, n, micros in dropped:
                    old = Moment(as_datetime(at), kind, str(label), int(n), int(micros))
                    _add(sums, as_uuid(pipeline_id), owner_id, old, sign=-1)
                    _add_length(lengths, as_uuid(pipeline_id), owner_id, old, sign=-1)
            deals = self._deal_rows(cursor, chunk)
            missing = {pipeline_id for pipeline_id, _, _ in deals.values()} - orders.keys()
            orders.update(self._orders(cursor, sorted(missing)))
            for deal_id, (pipeline_id, owner_id, rows_of_deal) in deals.items():
                stages = orders.get(pipeline_id, [])
                for seq, m in enumerate(funnel.moments(stages, rows_of_deal)):
                    rows.append(
                        (deal_id, seq, pipeline_id, owner_id, m.at, m.kind, m.label, m.n, m.micros)
                    )
                    if sums is not None:
                        _add(sums, pipeline_id, owner_id, m)
                        _add_length(lengths, pipeline_id, owner_id, m)
            self.insert(
                cursor,
                "moments",
                "deal_id, seq, pipeline_id, owner_id, at, kind, label, n, micros",
                rows,
            )
        if sums is not None:
            self.add_day_totals(cursor, SUMS, SUM_COLUMNS, sums)
            self._add_lengths(cursor, lengths)

    def _add_lengths(self, cursor: Cursor, lengths: _Lengths) -> None:
        """Add stays (``lengths``: per pipeline, scope and stage, the stays to add or
        take away per period and bucket) to the histograms: each stage's histograms from
        its earliest changed period on are made again."""
        table = self.t["stay_lengths"]
        group = "pipeline_id = %s AND scope = %s AND stage = %s"
        rows: list[tuple[Any, ...]] = []
        for key, changes in sorted(lengths.items()):
            if not (changed := [period for period, c in changes.items() if any(c.values())]):
                continue
            first = min(changed)
            cursor.execute(
                f"SELECT period, counts FROM {table} WHERE {group} AND period >= COALESCE("
                f"(SELECT MAX(period) FROM {table} WHERE {group} AND period < %s), %s)"
                " ORDER BY period",
                (*key, *key, first, first),
            )
            stored = [(int(period), _decode(counts)) for period, counts in cursor.fetchall()]
            before = stored.pop(0)[1] if stored and stored[0][0] < first else {}
            cursor.execute(f"DELETE FROM {table} WHERE {group} AND period >= %s", (*key, first))
            rows += [
                (*key, period, _encode(histogram))
                for period, histogram in funnel.running_histograms(before, stored, changes)
            ]
        self.insert(cursor, "stay_lengths", "pipeline_id, scope, stage, period, counts", rows)

    def _drop_moments(
        self, cursor: Cursor, deal_ids: list[UUID], *, returning: bool
    ) -> list[tuple[Any, ...]]:
        """Delete these deals' moments; what they were, if ``returning``."""
        marks = ", ".join(["%s"] * len(deal_ids))
        where = f"FROM {self.t['moments']} WHERE deal_id IN ({marks})"
        columns = "pipeline_id, owner_id, at, kind, label, n, micros"
        if not returning:
            cursor.execute(f"DELETE {where}", deal_ids)
            return []
        if self.dialect == "postgresql":  # one statement finds and deletes them
            cursor.execute(f"DELETE {where} RETURNING {columns}", deal_ids)
            return cursor.fetchall()
        cursor.execute(f"SELECT {columns} {where}", deal_ids)
        old = cursor.fetchall()
        cursor.execute(f"DELETE {where}", deal_ids)
        return old

    def _deal_rows(
        self, cursor: Cursor, deal_ids: list[UUID]
    ) -> dict[UUID, tuple[UUID, str | None, DealRows]]:
        """These deals' pipeline, owner and rows (the deals the tables have)."""
        t = self.t
        marks = ", ".join(["%s"] * len(deal_ids))
        cursor.execute(
            f"SELECT deal_id, position, stage, entered_at, left_at FROM {t['stays']}"
            f" WHERE deal_id IN ({marks})",
            deal_ids,
        )
        stays: dict[UUID, list[tuple[int, str, datetime, datetime | None]]] = defaultdict(list)
        for deal_id, position, stage, entered, left in cursor.fetchall():
            stays[as_uuid(deal_id)].append(
                (int(position), str(stage), as_datetime(entered), as_optional_datetime(left))
            )
        cursor.execute(
            f"SELECT deal_id, position, kind, at, reason FROM {t['outcomes']}"
            f" WHERE deal_id IN ({marks})",
            deal_ids,
        )
        outcomes: dict[UUID, list[tuple[int, str, datetime, str | None]]] = defaultdict(list)
        for deal_id, position, kind, at, reason in cursor.fetchall():
            outcomes[as_uuid(deal_id)].append((int(position), str(kind), as_datetime(at), reason))
        cursor.execute(
            f"SELECT deal_id, pipeline_id, owner_id, opened_at FROM {t['deals']}"
            f" WHERE deal_id IN ({marks})",
            deal_ids,
        )
        return {
            (deal := as_uuid(deal_id)): (
                as_uuid(pipeline_id),
                owner_id,
                DealRows(as_datetime(opened_at), stays[deal], outcomes[deal]),
            )
            for deal_id, pipeline_id, owner_id, opened_at in cursor.fetchall()
        }

    def _orders(self, cursor: Cursor, pipeline_ids: list[UUID]) -> dict[UUID, list[str]]:
        """These pipelines' stages, in their current order."""
        if not pipeline_ids:
            return {}
        marks = ", ".join(["%s"] * len(pipeline_ids))
        cursor.execute(
            f"SELECT pipeline_id, stage FROM {self.t['stages']}"
            f" WHERE pipeline_id IN ({marks}) ORDER BY pipeline_id, idx",
            pipeline_ids,
        )
        orders: dict[UUID, list[str]] = defaultdict(list)
        for pipeline_id, stage in cursor.fetchall():
            orders[as_uuid(pipeline_id)].append(str(stage))
        return orders

    # ------------------------------------------------------------------ queries

    def funnel_steps(
        self,
        pipeline_id: UUID,
        as_of: datetime,
        *,
        owner_id: str | None = None,
        opened_from: datetime | None = None,
        opened_to: datetime | None = None,
    ) -> Steps[FunnelReport]:
        """The funnel of ``pipeline_id`` as of ``as_of`` (SPEC §3), over the deals of
        that pipeline opened by ``as_of`` — only ``owner_id``'s if given, and only
        those opened in [``opened_from``, ``opened_to``) if given. As steps, to run
        blocking (``funnel``) or on an event loop (the HTTP API).

        A stage is reached by a deal whose furthest stage entered by ``as_of`` (in
        the pipeline's current order) is this one or later — "stage skips count as
        passing the skipped stages" — or that was won by ``as_of``. Won and lost
        deals are those whose latest outcome by ``as_of`` is a win or a loss.

        Read from the sums (``from_sums``), but for deals opened in a period, which
        the sums do not keep apart: those are counted from the rows (``from_rows``).
        """
        if opened_from is None and opened_to is None and owner_id != "":
            return self._sums_steps(pipeline_id, as_of, owner_id=owner_id)
        return self._rows_steps(
            pipeline_id, as_of, owner_id=owner_id, opened_from=opened_from, opened_to=opened_to
        )

    def _sums_steps(
        self, pipeline_id: UUID, as_of: datetime, *, owner_id: str | None = None
    ) -> Steps[FunnelReport]:
        """The funnel (see ``funnel_steps``) from the day and span sums, the moments of
        ``as_of``'s day up to it, and a walk to the middle of each stage's finished
        stays; three statements."""
        t = self.t
        day = day_of(as_of)
        span, period = day // SPAN_DAYS, day // PERIOD_DAYS
        scope = owner_id or ""
        of_owner, owner_param = _of_owner(owner_id)
        # the stages in order, each with its latest histogram before as_of's period
        rows = yield (
            f"SELECT s.stage, (SELECT l.counts FROM {t['stay_lengths']} l"
            "  WHERE l.pipeline_id = s.pipeline_id AND l.scope = %s AND l.stage = s.stage"
            "  AND l.period < %s ORDER BY l.period DESC LIMIT 1)"
            f" FROM {t['stages']} s WHERE s.pipeline_id = %s ORDER BY s.idx",
            (scope, period, pipeline_id),
        )
        histograms = {
            str(stage): Counter(_decode(counts) if counts else {}) for stage, counts in rows
        }
        stages = list(histograms)
        # the sums up to as_of; then (kind '') the stays of as_of's period, one by one
        rows = yield (
            "SELECT kind, label, SUM(n), SUM(micros) FROM ("
            f" SELECT kind, label, n, micros FROM {t['span_sums']}"
            "  WHERE pipeline_id = %s AND scope = %s AND span < %s"
            f" UNION ALL SELECT kind, label, n, micros FROM {t['day_sums']}"
            "  WHERE pipeline_id = %s AND scope = %s AND day >= %s AND day < %s"
            f" UNION ALL SELECT kind, label, n, micros FROM {t['moments']}"
            f"  WHERE pipeline_id = %s AND kind IN ({_KINDS}) AND at >= %s AND at <= %s"
            f"{of_owner}"
            ") AS moments GROUP BY kind, label"
            f" UNION ALL SELECT '', label, n, micros FROM {t['moments']}"
            f" WHERE pipeline_id = %s AND kind = 'stay' AND at >= %s AND at <= %s{of_owner}",
            (
                *(pipeline_id, scope, span),
                *(pipeline_id, scope, span * SPAN_DAYS, day),
                *(pipeline_id, EPOCH + timedelta(days=day), as_of, *owner_param),
                *(pipeline_id, EPOCH + timedelta(days=period * PERIOD_DAYS), as_of),
                *owner_param,
            ),
        )
        totals: dict[tuple[str, str], tuple[int, int]] = {}
        for kind, label, n, micros in rows:
            if kind:
                totals[(str(kind), str(label))] = (int(n), int(micros))
            elif (histogram := histograms.get(str(label))) is not None:
                histogram[length_bucket(int(micros))] += int(n)
        middles = yield from self._middle_stays(pipeline_id, as_of, owner_id, histograms)

        def count(kind: str, label: str = "") -> int:
            return totals.get((kind, label), (0, 0))[0]

        def average_days(kind: str, label: str = "") -> float | None:
            n, micros = totals.get((kind, label), (0, 0))
            return micros / n / DAY_MICROS if n else None

        reached: dict[str, int] = {}
        further = 0
        for stage in reversed(stages):  # a deal reached every stage up to its furthest one
            further += count("top", stage)
            reached[stage] = further
        won = count("won")
        return funnel.report(
            pipeline_id,
            as_of,
            stages=stages,
            reached=reached,
            current={stage: count("in", stage) for stage in stages},
            stays={
                stage: funnel.StayFigures(
                    micros / n / DAY_MICROS, fmean(middles[stage]) / DAY_MICROS
                )
                for (kind, stage), (n, micros) in totals.items()
                # only the current stages are walked: the report shows no other
                if kind == "stay" and n > 0 and stage in middles
            },
            lost_reasons={
                label: n for (kind, label), (n, _) in totals.items() if kind == "lost" and n > 0
            },
            won=won,
            avg_sales_cycle_days=average_days("won"),
        )

    def _middle_stays(
        self,
        pipeline_id: UUID,
        as_of: datetime,
        owner_id: str | None,
        histograms: dict[str, Counter[int]],
    ) -> Steps[dict[str, list[int]]]:
        """The length of the middle finished stay of each stage, or of the two middle
        ones where their count is even: each stage's histogram as of ``as_of`` says
        which of its stays, in length order, are in the middle; one statement walks
        to them."""
        t = self.t
        of_owner, owner_param = _of_owner(owner_id)
        walks: list[str] = []
        params: list[Any] = []
        for stage, histogram in histograms.items():
            if (middle := funnel.middle(histogram)) is None:
                continue
            walks.append(
                f"SELECT * FROM (SELECT label, micros FROM {t['moments']}"
                " WHERE pipeline_id = %s AND kind = 'stay' AND label = %s"
                f" AND micros >= %s AND micros < %s AND at <= %s{of_owner}"
                " ORDER BY micros LIMIT %s OFFSET %s) AS middle"
            )
            params += [pipeline_id, stage, middle.shortest, middle.beyond, as_of, *owner_param]
            params += [middle.take, middle.offset]
        if not walks:
            return {}
        middles: dict[str, list[int]] = defaultdict(list)
        for label, micros in (yield (" UNION ALL ".join(walks), params)):
            middles[str(label)].append(int(micros))
        return middles

    def _rows_steps(
        self,
        pipeline_id: UUID,
        as_of: datetime,
        *,
        owner_id: str | None = None,
        opened_from: datetime | None = None,
        opened_to: datetime | None = None,
    ) -> Steps[FunnelReport]:
        """The funnel (see ``funnel_steps``) counted from the deals, stays and outcomes
        themselves: every deal of the pipeline is read, so its cost grows with them."""
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

        rows = yield (
            f"SELECT stage FROM {t['stages']} WHERE pipeline_id = %s ORDER BY idx",
            (pipeline_id,),
        )
        stages = [str(stage) for (stage,) in rows]
        furthest = yield (
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
        current = yield (
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
            rows = yield (
                f"WITH {considered} SELECT s.stage, AVG({days_in_stay}),"
                f" percentile_cont(0.5) WITHIN GROUP (ORDER BY {days_in_stay})"
                f" {finished_stays} GROUP BY s.stage",
                (*considered_params, as_of),
            )
            stays = {
                str(stage): funnel.StayFigures(float(avg), float(mid)) for stage, avg, mid in rows
            }
        else:
            stay_days: dict[str, list[float]] = defaultdict(list)
            for stage, length in (
                yield (
                    f"WITH {considered} SELECT s.stage, {days_in_stay} {finished_stays}",
                    (*considered_params, as_of),
                )
            ):
                stay_days[str(stage)].append(float(length))
            stays = funnel.stay_figures(stay_days)
        outcomes = yield (
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

    funnel = blocking(funnel_steps)
    from_sums = blocking(_sums_steps)
    from_rows = blocking(_rows_steps)


_Sums = defaultdict[tuple[UUID, str, int, str, str], list[int]]
"""(pipeline, scope, day, kind, label) → [n, micros]."""

_KINDS = ", ".join(f"'{kind}'" for kind in MOMENT_KINDS)
"""Every kind of moment, as SQL: the moments of T's day are read by kind, from an
index that holds every column read (without it, each moment found is fetched from
the table; figures in docs/PERFORMANCE.md, HTTP reads)."""

_Lengths = defaultdict[tuple[UUID, str, str], defaultdict[int, Counter[int]]]
"""(pipeline, scope, stage) → period → length bucket → stays to add."""


def _lengths() -> _Lengths:
    return defaultdict(lambda: defaultdict(Counter))


PERIOD_DAYS = 4
"""Days per period of the stays' histograms (``stay_lengths``), from 1970-01-01: a
shorter one makes the stays read from the moments as of T fewer, and the
histograms a batch of backdated stays makes again more (with days, a catch-up took
several times as long: docs/PERFORMANCE.md, HTTP reads)."""

SUMS = ("day_sums", "span_sums")
SUM_COLUMNS = (("pipeline_id", "scope", "day", "kind", "label"), ("n", "micros"))


def _add(
    sums: _Sums, pipeline_id: UUID, owner_id: str | None, moment: Moment, *, sign: int = 1
) -> None:
    """Add a moment (with ``sign=-1``: take it away) to its day's sums: every deal's
    (scope ``''``) and its owner's."""
    day = day_of(moment.at)
    for scope in _scopes(owner_id):
        total = sums[(pipeline_id, scope, day, moment.kind, moment.label)]
        total[0] += sign * moment.n
        total[1] += sign * moment.micros


def _add_length(
    lengths: _Lengths, pipeline_id: UUID, owner_id: str | None, moment: Moment, *, sign: int = 1
) -> None:
    """Add a ``stay`` moment (other kinds are no stays) to its stage's lengths, in every
    deal's scope and its owner's."""
    if moment.kind != "stay":
        return
    period, bucket = day_of(moment.at) // PERIOD_DAYS, length_bucket(moment.micros)
    for scope in _scopes(owner_id):
        lengths[(pipeline_id, scope, moment.label)][period][bucket] += sign * moment.n


def _scopes(owner_id: str | None) -> tuple[str, ...]:
    """The scopes a deal's moments count in: every deal's (``''``) and its owner's."""
    return ("", owner_id) if owner_id else ("",)


def _of_owner(owner_id: str | None) -> tuple[str, tuple[str, ...]]:
    """The condition on the moments' owner that a funnel of ``owner_id``'s deals adds
    (none for every deal's), and its parameter."""
    return ("", ()) if owner_id is None else (" AND owner_id = %s", (owner_id,))


def _encode(histogram: Histogram) -> str:
    return orjson.dumps(sorted(histogram.items())).decode()


def _decode(counts: str) -> dict[int, int]:
    return {int(bucket): int(n) for bucket, n in orjson.loads(counts)}
