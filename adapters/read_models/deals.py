"""Deal cards and pipelines: current state, keyed by id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson

from adapters.read_models.base import SqlReadModel, Table
from adapters.sql import Cursor, as_datetime, as_uuid, from_units, to_units
from projections import deals
from projections.base import Recorded


@dataclass(frozen=True)
class DealCard:
    deal_id: UUID
    client_id: UUID
    pipeline_id: UUID
    title: str
    amount: Decimal
    currency: str
    owner_id: str | None
    stage: str
    status: str
    opened_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class PipelineCard:
    pipeline_id: UUID
    name: str
    stages: tuple[str, ...]
    version: int


_CARD_COLUMNS = (
    "deal_id, client_id, pipeline_id, title, amount, currency, owner_id, stage, status,"
    " opened_at, updated_at, version"
)
_CARD_FIELDS = tuple(column.strip() for column in _CARD_COLUMNS.split(","))


class DealsReadModel(SqlReadModel):
    name = "deals"
    tables = (
        Table(
            "cards",
            "deal_id {uuid} PRIMARY KEY, client_id {uuid} NOT NULL, pipeline_id {uuid} NOT NULL,"
            " title {text} NOT NULL, amount {money} NOT NULL, currency {text} NOT NULL,"
            " owner_id {text}, stage {text} NOT NULL, status {text} NOT NULL,"
            " opened_at {ts} NOT NULL, updated_at {ts} NOT NULL, version {int} NOT NULL",
            indexes=("client_id",),
        ),
        Table(
            "pipelines",
            "pipeline_id {uuid} PRIMARY KEY, name {text} NOT NULL, stages {text} NOT NULL,"
            " version {int} NOT NULL",
        ),
    )
    topics = deals.TOPICS

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        """Fold the batch in memory, then write it: new cards in one bulk insert, each
        existing card's changes merged into one update, erasures last (they only
        blank titles, which nothing else changes)."""
        t = self.t
        opened: dict[UUID, dict[str, Any]] = {}
        changed: dict[UUID, dict[str, Any]] = {}
        erased: list[UUID] = []
        for recorded in batch:
            for change in deals.changes(recorded):
                match change:
                    case deals.DealOpened():
                        opened[change.deal_id] = {
                            "deal_id": change.deal_id,
                            "client_id": change.client_id,
                            "pipeline_id": change.pipeline_id,
                            "title": change.title,
                            "amount": to_units(change.amount),
                            "currency": change.currency,
                            "owner_id": change.owner_id,
                            "stage": change.stage,
                            "status": "open",
                            "opened_at": change.opened_at,
                            "updated_at": change.opened_at,
                            "version": change.version,
                        }
                    case deals.DealChanged():
                        fields = {"updated_at": change.at, "version": change.version}
                        fields.update(
                            (name, value)
                            for name, value in (
                                ("stage", change.stage),
                                ("status", change.status),
                                (
                                    "amount",
                                    None if change.amount is None else to_units(change.amount),
                                ),
                            )
                            if value is not None
                        )
                        target = opened.get(change.deal_id)
                        if target is None:
                            target = changed.setdefault(change.deal_id, {})
                        target.update(fields)
                    case deals.ClientErased():
                        erased.append(change.client_id)
                        for card in opened.values():
                            if card["client_id"] == change.client_id:
                                card["title"] = ""
                    case deals.PipelineStages():
                        self._pipeline(cursor, change)
        self.insert(
            cursor,
            "cards",
            _CARD_COLUMNS,
            [[card[c] for c in _CARD_FIELDS] for card in opened.values()],
        )
        updates: dict[tuple[str, ...], list[list[Any]]] = {}
        for deal_id, fields in changed.items():  # one statement per set of changed columns
            names = tuple(sorted(fields))
            updates.setdefault(names, []).append([*(fields[n] for n in names), deal_id])
        for names, rows in updates.items():
            cursor.executemany(
                f"UPDATE {t['cards']} SET {', '.join(f'{n} = %s' for n in names)}"
                " WHERE deal_id = %s",
                rows,
            )
        if erased:
            cursor.executemany(
                f"UPDATE {t['cards']} SET title = '' WHERE client_id = %s",
                [(client_id,) for client_id in erased],
            )

    def _pipeline(self, cursor: Cursor, change: deals.PipelineStages) -> None:
        t = self.t
        stages = orjson.dumps(list(change.stages)).decode()
        if change.name is not None:
            cursor.execute(
                f"INSERT INTO {t['pipelines']} (pipeline_id, name, stages, version)"
                " VALUES (%s, %s, %s, %s)",
                (change.pipeline_id, change.name, stages, change.version),
            )
        else:
            cursor.execute(
                f"UPDATE {t['pipelines']} SET stages = %s, version = %s WHERE pipeline_id = %s",
                (stages, change.version, change.pipeline_id),
            )

    def card(self, deal_id: UUID) -> DealCard | None:
        rows = self.db.query(
            f"SELECT {_CARD_COLUMNS} FROM {self.t['cards']} WHERE deal_id = %s", (deal_id,)
        )
        if not rows:
            return None
        (d, c, p, title, amount, currency, owner, stage, status, opened, updated, version) = rows[0]
        return DealCard(
            as_uuid(d),
            as_uuid(c),
            as_uuid(p),
            title,
            from_units(amount),
            currency,
            owner,
            stage,
            status,
            as_datetime(opened),
            as_datetime(updated),
            int(version),
        )

    def pipelines(self) -> list[PipelineCard]:
        rows = self.db.query(
            f"SELECT pipeline_id, name, stages, version FROM {self.t['pipelines']} ORDER BY name"
        )
        return [
            PipelineCard(as_uuid(p), name, tuple(orjson.loads(stages)), int(v))
            for p, name, stages, v in rows
        ]
