"""Lifecycle read model tables: clients, their dated facts, their stage intervals."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from adapters.read_models.base import SqlReadModel, Table
from adapters.sql import (
    Cursor,
    Database,
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
        ),
        Table(
            "intervals",
            "client_id {uuid} NOT NULL, valid_from {ts} NOT NULL, valid_to {ts},"
            " stage {text} NOT NULL, reason {text}, PRIMARY KEY (client_id, valid_from)",
            indexes=("valid_from, valid_to",),
        ),
    )
    topics = lifecycle.TOPICS

    def __init__(self, db: Database, *, policy: LifecyclePolicy, prefix: str = "") -> None:
        super().__init__(db, prefix=prefix)
        self.policy = policy

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
        if touched:
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
        cursor.execute(
            f"DELETE FROM {t['intervals']} WHERE client_id = %s",
            (merge.absorbed_id,),
        )

    def _refold(self, cursor: Cursor, client_ids: list[UUID]) -> None:
        """Recompute the stage intervals of these clients from all their facts."""
        t = self.t
        for chunk in _chunks(client_ids, 500):
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
            purchases: dict[UUID, list[datetime]] = defaultdict(list)
            losses: dict[UUID, list[Loss]] = defaultdict(list)
            for client_id, kind, at, reason in cursor.fetchall():
                key = as_uuid(client_id)
                if kind == "purchase":
                    purchases[key].append(as_datetime(at))
                else:
                    losses[key].append(Loss(as_datetime(at), reason))
            cursor.execute(
                f"DELETE FROM {t['intervals']} WHERE client_id IN ({marks})",
                chunk,
            )
            rows: list[tuple[object, ...]] = []
            for client_id, registered_at in registered.items():
                facts = ClientFacts(
                    registered_at, tuple(purchases[client_id]), tuple(losses[client_id])
                )
                rows.extend(
                    (client_id, i.valid_from, i.valid_to, i.stage.value, i.reason)
                    for i in stage_intervals(facts, self.policy)
                )
            self.insert(cursor, "intervals", "client_id, valid_from, valid_to, stage, reason", rows)

    # ------------------------------------------------------------------ queries

    def stage_counts(self, at: datetime) -> dict[str, int]:
        """How many clients are in each stage at instant ``at`` (every stage listed)."""
        rows = self.db.query(
            f"SELECT stage, COUNT(*) FROM {self.t['intervals']}"
            " WHERE valid_from <= %s AND (valid_to IS NULL OR valid_to > %s) GROUP BY stage",
            (at, at),
        )
        counts = {stage.value: 0 for stage in Stage}
        counts.update({str(stage): int(n) for stage, n in rows})
        return counts

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
        rows = self.db.query(
            f"SELECT stage, valid_from, valid_to, reason FROM {self.t['intervals']}"
            " WHERE client_id = %s ORDER BY valid_from",
            (client_id,),
        )
        return [
            StageInterval(Stage(stage), as_datetime(start), as_optional_datetime(end), reason)
            for stage, start, end, reason in rows
        ]


def _chunks(items: list[UUID], size: int) -> list[list[UUID]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
