"""Subscriptions table (``projections.subscriptions``), read by the delivery
processes and the API."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson

from adapters.read_models.base import SqlReadModel, Table, chunks
from adapters.sql import Cursor, as_datetime, as_optional_datetime, as_uuid
from projections import subscriptions
from projections.base import Recorded
from projections.subscriptions import SubscriptionRow

_COLUMNS = (
    "subscription_id, url, event_types, description, include_personal, created_by,"
    " created_role, created_at, created_position, secret_fingerprint, status, replay_from,"
    " replay_position, updated_at"
)


STATE_DDL = {
    "postgresql": "CREATE TABLE IF NOT EXISTS webhook_state ("
    " subscription_id uuid PRIMARY KEY, deliveries bigint NOT NULL DEFAULT 0,"
    " failures bigint NOT NULL DEFAULT 0, last_error text, last_attempt_at timestamptz,"
    " failing_since timestamptz, last_delivered_at timestamptz,"
    " replay_applied bigint NOT NULL DEFAULT 0)",
    "sqlite": "CREATE TABLE IF NOT EXISTS webhook_state ("
    " subscription_id TEXT PRIMARY KEY, deliveries INTEGER NOT NULL DEFAULT 0,"
    " failures INTEGER NOT NULL DEFAULT 0, last_error TEXT, last_attempt_at TEXT,"
    " failing_since TEXT, last_delivered_at TEXT, replay_applied INTEGER NOT NULL DEFAULT 0)",
}
"""How each subscription's deliveries go (not events: a failing receiver would flood
the store); its delivered position is in ``projection_tracking``."""


class SubscriptionsReadModel(SqlReadModel):
    name = "subscriptions"
    tables = (
        Table(
            "subscriptions",
            "subscription_id {uuid} PRIMARY KEY, url {text} NOT NULL,"
            " event_types {text} NOT NULL, description {text} NOT NULL,"
            " include_personal {bool} NOT NULL, created_by {text} NOT NULL,"
            " created_role {text} NOT NULL, created_at {ts} NOT NULL,"
            " created_position {int} NOT NULL, secret_fingerprint {text} NOT NULL,"
            " status {text} NOT NULL, replay_from {int}, replay_position {int}, updated_at {ts}",
        ),
    )
    topics = subscriptions.TOPICS

    def create_statements(self) -> list[str]:
        """The model's table, and beside it (not rebuilt: not derived from events)
        the delivery state table."""
        return [*super().create_statements(), STATE_DDL[self.dialect]]

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        wanted = sorted({r.event.originator_id for r in batch})
        rows = self._rows(cursor, wanted)
        written: dict[UUID, SubscriptionRow] = {}
        for recorded in batch:
            row = subscriptions.apply(rows, recorded)
            if row is not None:
                rows[row.subscription_id] = written[row.subscription_id] = row
        if not written:
            return
        ids = sorted(written)
        for chunk in chunks(ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"DELETE FROM {self.t['subscriptions']} WHERE subscription_id IN ({marks})", chunk
            )
        self.insert(cursor, "subscriptions", _COLUMNS, [_row(written[i]) for i in ids])

    def _rows(self, cursor: Cursor, ids: list[UUID]) -> dict[UUID, SubscriptionRow]:
        found: dict[UUID, SubscriptionRow] = {}
        for chunk in chunks(ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {_COLUMNS} FROM {self.t['subscriptions']}"
                f" WHERE subscription_id IN ({marks})",
                chunk,
            )
            found.update((r.subscription_id, r) for r in map(_subscription, cursor.fetchall()))
        return found

    # ------------------------------------------------------------------ queries

    def all(self, *, include_removed: bool = False) -> list[SubscriptionRow]:
        """Every subscription, oldest first."""
        where = "" if include_removed else " WHERE status <> 'removed'"
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM {self.t['subscriptions']}{where} ORDER BY created_position"
        )
        return [_subscription(row) for row in rows]

    def get(self, subscription_id: UUID) -> SubscriptionRow | None:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM {self.t['subscriptions']} WHERE subscription_id = %s",
            (subscription_id,),
        )
        return _subscription(rows[0]) if rows else None


def _row(row: SubscriptionRow) -> tuple[Any, ...]:
    return (
        row.subscription_id,
        row.url,
        orjson.dumps(list(row.event_types)).decode(),
        row.description,
        row.include_personal,
        row.created_by,
        row.created_role,
        row.created_at,
        row.created_position,
        row.secret_fingerprint,
        row.status,
        row.replay_from,
        row.replay_position,
        row.updated_at,
    )


def _subscription(values: tuple[Any, ...]) -> SubscriptionRow:
    (
        subscription_id,
        url,
        event_types,
        description,
        include_personal,
        created_by,
        created_role,
        created_at,
        created_position,
        fingerprint,
        status,
        replay_from,
        replay_position,
        updated_at,
    ) = values
    return SubscriptionRow(
        subscription_id=as_uuid(subscription_id),
        url=str(url),
        event_types=tuple(orjson.loads(event_types)),
        description=str(description),
        include_personal=bool(include_personal),
        created_by=str(created_by),
        created_role=str(created_role),
        created_at=as_datetime(created_at),
        created_position=int(created_position),
        secret_fingerprint=str(fingerprint),
        status=str(status),
        replay_from=None if replay_from is None else int(replay_from),
        replay_position=None if replay_position is None else int(replay_position),
        updated_at=as_optional_datetime(updated_at),
    )
