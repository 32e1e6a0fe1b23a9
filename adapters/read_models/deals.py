"""Deal cards and pipelines: current state, keyed by id."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
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
        t = self.t
        for recorded in batch:  # few events per deal; order matters within a deal
            for change in deals.changes(recorded):
                match change:
                    case deals.DealOpened():
                        cursor.execute(
                            f"INSERT INTO {t['cards']} ({_CARD_COLUMNS})"
                            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'open', %s, %s, %s)",
                            (
                                change.deal_id,
                                change.client_id,
                                change.pipeline_id,
                                change.title,
                                to_units(change.amount),
                                change.currency,
                                change.owner_id,
                                change.stage,
                                change.opened_at,
                                change.opened_at,
                                change.version,
                            ),
                        )
                    case deals.DealChanged():
                        cursor.execute(
                            f"UPDATE {t['cards']} SET stage = COALESCE(%s, stage),"
                            " status = COALESCE(%s, status), amount = COALESCE(%s, amount),"
                            " updated_at = %s, version = %s WHERE deal_id = %s",
                            (
                                change.stage,
                                change.status,
                                None if change.amount is None else to_units(change.amount),
                                change.at,
                                change.version,
                                change.deal_id,
                            ),
                        )
                    case deals.ClientErased():
                        cursor.execute(
                            f"UPDATE {t['cards']} SET title = '' WHERE client_id = %s",
                            (change.client_id,),
                        )
                    case deals.PipelineStages():
                        stages = orjson.dumps(list(change.stages)).decode()
                        if change.name is not None:
                            cursor.execute(
                                f"INSERT INTO {t['pipelines']} (pipeline_id, name, stages, version)"
                                " VALUES (%s, %s, %s, %s)",
                                (change.pipeline_id, change.name, stages, change.version),
                            )
                        else:
                            cursor.execute(
                                f"UPDATE {t['pipelines']} SET stages = %s, version = %s"
                                " WHERE pipeline_id = %s",
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
