"""Lifecycle read model tables: clients, their dated facts, their stage intervals,
and per-day and per-span stage deltas so that "how many clients in each stage at T"
reads a few hundred rows instead of every interval.

``day_deltas`` holds, for each UTC day and stage, how many intervals of that stage
begin that day minus how many end that day; ``span_deltas`` the same summed over
spans of ``SPAN_DAYS`` days. The counts at instant T are then the sum of the span
deltas of the spans before T's span, plus the day deltas of the days of T's span
before T's day, plus the intervals beginning and minus those ending between the
start of T's day and T (two short index range scans). The deltas are kept exact as
intervals are replaced: a re-fold subtracts the old intervals' deltas and adds the
new ones'; a day or span whose delta comes back to zero keeps no row, as a rebuild
would.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from uuid import UUID

from adapters.read_models.base import (
    DAY_OF_SQL,
    EPOCH,
    REFOLD_CHUNK,
    SPAN_DAYS,
    SqlReadModel,
    Table,
    chunks,
    day_of,
)
from adapters.sql import (
    Cursor,
    Database,
    Query,
    Rows,
    as_datetime,
    as_optional_datetime,
    as_uuid,
    to_units,
)
from domain.lifecycle import (
    ClientFacts,
    LifecyclePolicy,
    Loss,
    Stage,
    StageInterval,
    stage_intervals,
)
from projections import lifecycle
from projections.base import Recorded

IntervalRow = tuple[UUID, datetime, datetime | None, str, str | None]
INTERVAL_COLUMNS = "client_id, valid_from, valid_to, stage, reason"
REFOLD_PAGE = 5000
"""Clients whose intervals the end of a rebuild makes per round."""


class LifecycleReadModel(SqlReadModel):
    name = "lifecycle"
    tables = (
        Table(
            "clients",
            "client_id {uuid} PRIMARY KEY, registered_at {ts} NOT NULL,"
            " merged_into {uuid}, erased_at {ts}",
        ),
        Table(
            "facts",
            "position {int} PRIMARY KEY, client_id {uuid} NOT NULL, kind {text} NOT NULL,"
            " at {ts} NOT NULL, reason {text}, amount {money}, cost {money}",
            indexes=("client_id", "kind, at"),
            query_only=("kind, at",),
        ),
        Table(
            "intervals",
            "client_id {uuid} NOT NULL, valid_from {ts} NOT NULL, valid_to {ts},"
            " stage {text} NOT NULL, reason {text}, PRIMARY KEY (client_id, valid_from)",
            # with the stage, so that the counts as of T read the intervals that began
            # or ended on T's day from the indexes alone
            indexes=("valid_from, valid_to, stage", "valid_to, stage"),
            query_only=("valid_from, valid_to, stage", "valid_to, stage"),
        ),
        Table(
            "day_deltas",
            "day {int} NOT NULL, stage {text} NOT NULL, delta {int} NOT NULL,"
            " PRIMARY KEY (day, stage)",
        ),
        Table(
            "span_deltas",
            "span {int} NOT NULL, stage {text} NOT NULL, delta {int} NOT NULL,"
            " PRIMARY KEY (span, stage)",
        ),
    )
    topics = lifecycle.TOPICS

    def __init__(self, db: Database, *, policy: LifecyclePolicy, prefix: str = "") -> None:
        super().__init__(db, prefix=prefix)
        self.policy = policy

    def finish_rebuild(self, cursor: Cursor) -> None:
        """A rebuild writes no intervals and no deltas batch by batch: a client's facts
        arrive over many batches (its intervals would be made again at each), and most
        batches would change most days' rows. Both are made here, once."""
        self._refold_all(cursor)
        self._derive_deltas(cursor)
        super().finish_rebuild(cursor)

    def _refold_all(self, cursor: Cursor) -> None:
        """Every client's stage intervals from all its facts, ``REFOLD_PAGE`` clients
        (in id order) at a time, so that memory does not grow with the history."""
        t = self.t
        cursor.execute(f"DELETE FROM {t['intervals']}")  # an earlier version's, if resumed
        after: UUID | None = None
        while True:
            cursor.execute(
                f"SELECT client_id, registered_at FROM {t['clients']}"
                " WHERE merged_into IS NULL"
                + ("" if after is None else " AND client_id > %s")
                + " ORDER BY client_id LIMIT %s",
                ([] if after is None else [after]) + [REFOLD_PAGE],
            )
            page = cursor.fetchall()
            if not page:
                return
            registered = {as_uuid(c): as_datetime(at) for c, at in page}
            first, last = as_uuid(page[0][0]), as_uuid(page[-1][0])
            cursor.execute(
                f"SELECT client_id, kind, at, reason FROM {t['facts']}"
                " WHERE client_id >= %s AND client_id <= %s AND kind IN ('purchase', 'loss')",
                (first, last),
            )
            rows = self._intervals(registered, cursor.fetchall())
            self.insert(cursor, "intervals", INTERVAL_COLUMNS, rows)
            if len(page) < REFOLD_PAGE:
                return
            after = last

    def upgrade(self, cursor: Cursor) -> None:
        """Tables made before ``day_deltas`` existed: derive the deltas from the
        intervals once; made before ``span_deltas``: derive those from the days. A
        rebuild's tables have none until its end (``finish_rebuild``)."""
        if self.rebuilding:
            return
        cursor.execute(f"SELECT 1 FROM {self.t['day_deltas']} LIMIT 1")
        if cursor.fetchone() is None:
            cursor.execute(f"DELETE FROM {self.t['span_deltas']}")
            self._derive_deltas(cursor)
            return
        cursor.execute(f"SELECT 1 FROM {self.t['span_deltas']} LIMIT 1")
        if cursor.fetchone() is None:
            self.sum_spans(cursor, DELTAS, DELTA_COLUMNS)

    def _derive_deltas(self, cursor: Cursor) -> None:
        """The day and span deltas of all the intervals, into empty delta tables."""
        t = self.t
        day = DAY_OF_SQL[self.dialect]
        cursor.execute(
            f"INSERT INTO {t['day_deltas']} (day, stage, delta)"
            " SELECT day, stage, SUM(delta) FROM ("
            f"  SELECT {day.format(column='valid_from')} AS day, stage, 1 AS delta"
            f"  FROM {t['intervals']}"
            f"  UNION ALL SELECT {day.format(column='valid_to')}, stage, -1"
            f"  FROM {t['intervals']} WHERE valid_to IS NOT NULL"
            ") AS moves GROUP BY day, stage HAVING SUM(delta) <> 0"
        )
        self.sum_spans(cursor, DELTAS, DELTA_COLUMNS)

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        registered: list[lifecycle.Registered] = []
        facts: list[lifecycle.Fact] = []
        merges: list[lifecycle.Merged] = []
        erased: list[lifecycle.Erased] = []
        for recorded in batch:
            for change in lifecycle.changes(recorded):
                match change:
                    case lifecycle.Registered():
                        registered.append(change)
                    case lifecycle.Fact():
                        facts.append(change)
                    case lifecycle.Merged():
                        merges.append(change)
                    case lifecycle.Erased():
                        erased.append(change)
        t = self.t
        if registered:
            self.insert(
                cursor,
                "clients",
                "client_id, registered_at",
                [(r.client_id, r.at) for r in registered],
            )
        if facts:
            self.insert(
                cursor,
                "facts",
                "position, client_id, kind, at, reason, amount, cost",
                [
                    (
                        f.position,
                        f.client_id,
                        f.kind,
                        f.at,
                        f.reason,
                        None if f.amount is None else to_units(f.amount),
                        None if f.cost is None else to_units(f.cost),
                    )
                    for f in facts
                ],
            )
        for merge in merges:
            self._merge(cursor, merge)
        if erased:
            cursor.executemany(
                f"UPDATE {t['clients']} SET erased_at = %s WHERE client_id = %s",
                [(e.at, e.client_id) for e in erased],
            )
        touched = {r.client_id for r in registered} | {f.client_id for f in facts}
        touched |= {m.into_id for m in merges}
        touched -= {m.absorbed_id for m in merges}
        if touched and not self.rebuilding:  # a rebuild folds every client at its end
            self._refold(cursor, sorted(touched))

    def _merge(self, cursor: Cursor, merge: lifecycle.Merged) -> None:
        t = self.t
        cursor.execute(
            f"UPDATE {t['facts']} SET client_id = %s WHERE client_id = %s",
            (merge.into_id, merge.absorbed_id),
        )
        cursor.execute(
            f"SELECT registered_at FROM {t['clients']} WHERE client_id = %s",
            (merge.absorbed_id,),
        )
        row = cursor.fetchone()
        if row is not None:  # the survivor's history starts at the earlier registration
            cursor.execute(
                f"UPDATE {t['clients']} SET registered_at = %s"
                " WHERE client_id = %s AND registered_at > %s",
                (as_datetime(row[0]), merge.into_id, as_datetime(row[0])),
            )
        cursor.execute(
            f"UPDATE {t['clients']} SET merged_into = %s WHERE client_id = %s",
            (merge.into_id, merge.absorbed_id),
        )
        if not self.rebuilding:  # a rebuild makes no intervals before its end
            self._add_deltas(cursor, self._drop_intervals(cursor, [merge.absorbed_id]))

    def _refold(self, cursor: Cursor, client_ids: list[UUID]) -> None:
        """Recompute the stage intervals of these clients from all their facts: read
        and dropped a chunk of clients at a time, written back with one ``COPY`` and
        one update of the deltas for them all."""
        t = self.t
        rows: list[IntervalRow] = []
        deltas: Counter[tuple[int, str]] = Counter()
        for chunk in chunks(client_ids, REFOLD_CHUNK[self.dialect]):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT client_id, registered_at FROM {t['clients']}"
                f" WHERE client_id IN ({marks}) AND merged_into IS NULL",
                chunk,
            )
            registered = {as_uuid(c): as_datetime(at) for c, at in cursor.fetchall()}
            cursor.execute(
                f"SELECT client_id, kind, at, reason FROM {t['facts']}"
                f" WHERE client_id IN ({marks}) AND kind IN ('purchase', 'loss')",
                chunk,
            )
            facts = cursor.fetchall()
            deltas.update(self._drop_intervals(cursor, chunk))
            rows.extend(self._intervals(registered, facts))
        self.insert(cursor, "intervals", INTERVAL_COLUMNS, rows)
        deltas.update(_deltas((start, end, stage) for _, start, end, stage, _ in rows))
        self._add_deltas(cursor, deltas)

    def _intervals(self, registered: dict[UUID, datetime], facts: Rows) -> list[IntervalRow]:
        """The stage intervals of the ``registered`` clients (id → registration) from
        their purchase and loss ``facts`` (client, kind, instant, reason; others'
        are left out), as rows of ``INTERVAL_COLUMNS``."""
        purchases: dict[UUID, list[datetime]] = defaultdict(list)
        losses: dict[UUID, list[Loss]] = defaultdict(list)
        for client_id, kind, at, reason in facts:
            key = as_uuid(client_id)
            if kind == "purchase":
                purchases[key].append(as_datetime(at))
            else:
                losses[key].append(Loss(as_datetime(at), reason))
        rows: list[IntervalRow] = []
        for client_id, registered_at in registered.items():
            client = ClientFacts(
                registered_at, tuple(purchases[client_id]), tuple(losses[client_id])
            )
            rows.extend(
                (client_id, i.valid_from, i.valid_to, i.stage.value, i.reason)
                for i in stage_intervals(client, self.policy)
            )
        return rows

    def _drop_intervals(self, cursor: Cursor, client_ids: list[UUID]) -> Counter[tuple[int, str]]:
        """Delete these clients' intervals; the day deltas that undo theirs."""
        marks = ", ".join(["%s"] * len(client_ids))
        where = f"FROM {self.t['intervals']} WHERE client_id IN ({marks})"
        if self.dialect == "postgresql":  # one statement finds and deletes them
            cursor.execute(f"DELETE {where} RETURNING valid_from, valid_to, stage", client_ids)
            rows = cursor.fetchall()
        else:  # RETURNING needs SQLite 3.35, newer than some systems' Python links
            cursor.execute(f"SELECT valid_from, valid_to, stage {where}", client_ids)
            rows = cursor.fetchall()
            cursor.execute(f"DELETE {where}", client_ids)
        old = [
            (as_datetime(start), as_optional_datetime(end), str(stage))
            for start, end, stage in rows
        ]
        return _deltas(old, sign=-1)

    def _add_deltas(self, cursor: Cursor, deltas: Counter[tuple[int, str]]) -> None:
        """Add per-(day, stage) deltas to the day and span tables."""
        totals = {key: (delta,) for key, delta in deltas.items()}
        self.add_day_totals(cursor, DELTAS, DELTA_COLUMNS, totals)

    # ------------------------------------------------------------------ queries

    def stage_counts(self, at: datetime) -> dict[str, int]:
        """How many clients are in each stage at instant ``at`` (every stage listed)."""
        return self.db.run(self.counts_query(at, prefix=self.prefix))

    @classmethod
    def counts_at(cls, db: Database, at: datetime, *, prefix: str = "") -> dict[str, int]:
        """``stage_counts`` from the tables alone (no policy needed)."""
        return db.run(cls.counts_query(at, prefix=prefix))

    @classmethod
    def counts_query(cls, at: datetime, *, prefix: str = "") -> Query[dict[str, int]]:
        """``stage_counts`` as a ``Query``: the deltas of the spans before ``at``'s span
        and of the days of that span before ``at``'s day, plus the intervals that
        began, minus those that ended, from the start of that day up to ``at``
        (inclusive, as an interval holds from ``valid_from`` up to, not including,
        ``valid_to``)."""
        day = day_of(at)
        span = day // SPAN_DAYS
        start = EPOCH + timedelta(days=day)
        intervals = cls.physical("intervals", prefix)
        days, spans = cls.physical("day_deltas", prefix), cls.physical("span_deltas", prefix)
        return Query(
            "SELECT stage, SUM(n) FROM ("
            f" SELECT stage, delta AS n FROM {spans} WHERE span < %s"
            f" UNION ALL SELECT stage, delta FROM {days} WHERE day >= %s AND day < %s"
            f" UNION ALL SELECT stage, 1 FROM {intervals}"
            " WHERE valid_from >= %s AND valid_from <= %s"
            f" UNION ALL SELECT stage, -1 FROM {intervals}"
            " WHERE valid_to >= %s AND valid_to <= %s"
            ") AS moves GROUP BY stage",
            (span, span * SPAN_DAYS, day, start, at, start, at),
            stage_counts_of,
        )

    def clients_in_stage(
        self, stage: Stage, at: datetime, *, limit: int = 50, after: UUID | None = None
    ) -> list[UUID]:
        """Clients in ``stage`` at ``at``, in id order, ``limit`` at a time after
        ``after``."""
        rows = self.db.query(
            f"SELECT client_id FROM {self.t['intervals']}"
            " WHERE stage = %s AND valid_from <= %s AND (valid_to IS NULL OR valid_to > %s)"
            " AND client_id > %s ORDER BY client_id LIMIT %s",
            (stage.value, at, at, after or UUID(int=0), limit),
        )
        return [as_uuid(row[0]) for row in rows]

    def intervals(self, client_id: UUID) -> list[StageInterval]:
        return self.db.run(self.intervals_query(client_id))

    def intervals_query(self, client_id: UUID) -> Query[list[StageInterval]]:
        """The client's stage intervals, oldest first, as a ``Query``."""
        return Query(
            f"SELECT stage, valid_from, valid_to, reason FROM {self.t['intervals']}"
            " WHERE client_id = %s ORDER BY valid_from",
            (client_id,),
            _intervals,
        )


def _intervals(rows: Rows) -> list[StageInterval]:
    return [
        StageInterval(Stage(stage), as_datetime(start), as_optional_datetime(end), reason)
        for stage, start, end, reason in rows
    ]


def stage_counts_of(rows: Rows) -> dict[str, int]:
    """Rows of (stage, count) as a count for every stage (0 for those absent)."""
    counts = {stage.value: 0 for stage in Stage}
    counts.update({str(stage): int(n) for stage, n in rows})
    return counts


def _deltas(
    intervals: Iterable[tuple[datetime, datetime | None, str]], sign: int = 1
) -> Counter[tuple[int, str]]:
    """Per (day, stage): intervals beginning that day minus intervals ending (negated
    with ``sign=-1``: what undoes them)."""
    deltas: Counter[tuple[int, str]] = Counter()
    for start, end, stage in intervals:
        deltas[day_of(start), stage] += sign
        if end is not None:
            deltas[day_of(end), stage] -= sign
    return deltas


DELTAS = ("day_deltas", "span_deltas")
DELTA_COLUMNS = (("day", "stage"), ("delta",))
