"""Tables written beside the events, in the events' own transaction: contact claims
(uniqueness of phones and emails) and idempotency keys."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from adapters.keystore import DESTROY, destroy_rows
from adapters.sql import Cursor, Database, Dialect
from application.ports import Claim, IdempotencyRecord, SideEffects

_DDL: dict[Dialect, list[str]] = {
    "postgresql": [
        "CREATE TABLE IF NOT EXISTS contact_claims ("
        " kind text NOT NULL, digest text NOT NULL, client_id uuid NOT NULL,"
        " PRIMARY KEY (kind, digest))",
        "CREATE INDEX IF NOT EXISTS contact_claims_client ON contact_claims (client_id)",
        "CREATE TABLE IF NOT EXISTS idempotency_keys ("
        " scope text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,"
        " aggregate_id uuid NOT NULL, version bigint NOT NULL,"
        " last_event_id uuid, last_event_version bigint, extra text NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (scope, key))",
    ],
    "sqlite": [
        "CREATE TABLE IF NOT EXISTS contact_claims ("
        " kind TEXT NOT NULL, digest TEXT NOT NULL, client_id TEXT NOT NULL,"
        " PRIMARY KEY (kind, digest)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS contact_claims_client ON contact_claims (client_id)",
        "CREATE TABLE IF NOT EXISTS idempotency_keys ("
        " scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
        " aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,"
        " last_event_id TEXT, last_event_version INTEGER, extra TEXT NOT NULL,"
        " created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
        " PRIMARY KEY (scope, key)) WITHOUT ROWID",
    ],
}

_RELEASE = "DELETE FROM contact_claims WHERE kind = %s AND digest = %s AND client_id = %s"
_CLAIM = "INSERT INTO contact_claims (kind, digest, client_id) VALUES (%s, %s, %s)"
_REMEMBER = (
    "INSERT INTO idempotency_keys (scope, key, fingerprint, aggregate_id, version,"
    " last_event_id, last_event_version, extra) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


def ddl(dialect: Dialect) -> list[str]:
    return list(_DDL[dialect])


def write(cursor: Cursor, side_effects: SideEffects | None) -> None:
    """Apply ``statements(side_effects)``."""
    for sql, rows in statements(side_effects):
        cursor.executemany(sql, rows)


def statements(side_effects: SideEffects | None) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """The statements that write ``side_effects``, each with its rows of parameters:
    releases, then claims (sorted, so concurrent writers lock rows in one order),
    then destroyed keys and the idempotency record."""
    if side_effects is None:
        return []
    found: list[tuple[str, list[tuple[Any, ...]]]] = []
    if side_effects.releases:
        found.append((_RELEASE, [_claim_row(c) for c in side_effects.releases]))
    if side_effects.claims:
        found.append((_CLAIM, sorted(_claim_row(c) for c in side_effects.claims)))
    if side_effects.destroy_keys:
        found.append((DESTROY, destroy_rows(list(side_effects.destroy_keys))))
    if (record := side_effects.idempotency) is not None:
        last_id, last_version = record.last_event or (None, None)
        row = (
            record.scope,
            record.key,
            record.fingerprint,
            record.aggregate_id,
            record.version,
            last_id,
            last_version,
            orjson.dumps(record.extra).decode(),
        )
        found.append((_REMEMBER, [row]))
    return found


def _claim_row(claim: Claim) -> tuple[str, str, UUID]:
    return (claim.kind, claim.digest, claim.client_id)


def _uuid(value: Any) -> UUID:
    return value if isinstance(value, UUID) else UUID(value)


def claim_owner(db: Database, kind: str, digest: str) -> UUID | None:
    rows = db.query(
        "SELECT client_id FROM contact_claims WHERE kind = %s AND digest = %s", (kind, digest)
    )
    return _uuid(rows[0][0]) if rows else None


def idempotency_record(db: Database, scope: str, key: str) -> IdempotencyRecord | None:
    rows = db.query(
        "SELECT fingerprint, aggregate_id, version, last_event_id, last_event_version, extra"
        " FROM idempotency_keys WHERE scope = %s AND key = %s",
        (scope, key),
    )
    if not rows:
        return None
    fingerprint, aggregate_id, version, last_id, last_version, extra = rows[0]
    return IdempotencyRecord(
        scope=scope,
        key=key,
        fingerprint=fingerprint,
        aggregate_id=_uuid(aggregate_id),
        version=int(version),
        last_event=None if last_id is None else (_uuid(last_id), int(last_version)),
        extra=orjson.loads(extra),
    )
