"""Subject access: everything held about one client, for the API and the CLI."""

from __future__ import annotations

from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from adapters.read_models.audit import AuditReadModel
from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from api.bootstrap import Crm
from application.errors import NotFound
from domain.client import Client
from domain.envelope import Envelope
from projections.audit import ENVELOPE_FIELDS


def event_out(event: Any) -> dict[str, Any]:
    """An event as sent out: its type, place, times, envelope and payload."""
    payload = {
        f.name: getattr(event, f.name) for f in fields(event) if f.name not in ENVELOPE_FIELDS
    }
    return {
        "event_type": type(event).__name__,
        "aggregate_id": event.originator_id,
        "version": event.originator_version,
        "recorded_at": event.timestamp,
        "occurred_at": event.occurred_at,
        "actor_id": event.actor_id,
        "actor_role": event.actor_role,
        "source": event.source,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "payload": payload,
    }


def client_events(
    crm: Crm, client_id: UUID, *, after: int = 0, limit: int | None = None
) -> list[dict[str, Any]]:
    """The client's stored events, decrypted (erased values read as empty), in
    version order: those after version ``after``, at most ``limit`` when given.
    Raises ``NotFound`` if there is no such client."""
    store = crm.app.repository.event_store
    events = list(store.get(client_id, gt=after or None, limit=limit))
    first = events[0] if events and not after else next(iter(store.get(client_id, lte=1)), None)
    if not isinstance(first, Client.ClientRegistered):
        raise NotFound("client", client_id)
    return [event_out(event) for event in events]


_CONSENT = {Client.ConsentGiven.__name__: True, Client.ConsentWithdrawn.__name__: False}
"""Event type -> whether it gives consent (or withdraws it)."""


def consents(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The consent history: every consent given or withdrawn, in order."""
    return [
        {
            "purpose": e["payload"]["purpose"],
            "given": _CONSENT[e["event_type"]],
            "at": e["occurred_at"],
            "actor_id": e["actor_id"],
        }
        for e in events
        if e["event_type"] in _CONSENT
    ]


def export_subject(crm: Crm, client_id: UUID, by: Envelope) -> dict[str, Any]:
    """Everything held about one client: the events (decrypted), the directory card,
    the lifecycle, the audit trail and the consent history. The export is recorded
    (``DataExported``, attributed to ``by``) before anything is returned."""
    events = client_events(crm, client_id)  # NotFound for an unknown client
    position = crm.exports.export(
        by, kind="subject", format="json", filters={"client_id": client_id}, client_id=client_id
    )
    directory = crm.model(DirectoryReadModel)
    lifecycle = crm.model(LifecycleReadModel)
    audit = crm.model(AuditReadModel)
    entries: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = audit.page(client_id=client_id, limit=500, cursor=cursor)
        entries += [asdict(entry) for entry in page.entries]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    card = directory.card(client_id)
    return {
        "client_id": client_id,
        "exported_at": datetime.now(UTC),
        "card": None if card is None else asdict(card),
        "consents": consents(events),
        "lifecycle": [asdict(interval) for interval in lifecycle.intervals(client_id)],
        "events": events,
        "audit_trail": entries,
        "up_to_position": position,
    }
