"""A small vocabulary for writing dated histories in tests."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from api.bootstrap import Crm
from application import clients
from application.app import CommandResult
from domain.envelope import Envelope
from projections.base import Recorded


def day(text: str) -> datetime:
    """``day("2024-05-20")`` is midnight UTC that day; a time may follow."""
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Story:
    """Records commands back-dated to the day they happened."""

    def __init__(self, crm: Crm, envelope: Envelope) -> None:
        self.crm = crm
        self.envelope = envelope

    def run(self, command: Any, when: str) -> CommandResult:
        return self.crm.app.execute(command, replace(self.envelope, occurred_at=day(when)))

    def register(self, name: str, when: str, **fields: Any) -> UUID:
        return self.run(clients.RegisterClient(name=name, **fields), when).id

    def buy(self, client_id: UUID, when: str, amount: str, cost: str = "0") -> None:
        self.run(
            clients.RecordPurchase(
                client_id=client_id, amount=Decimal(amount), cost=Decimal(cost), currency="EUR"
            ),
            when,
        )

    def contact(self, client_id: UUID, when: str, channel: str = "call") -> None:
        self.run(
            clients.RecordContact(client_id=client_id, channel=channel, direction="outbound"), when
        )

    def lose(self, client_id: UUID, when: str, reason: str) -> None:
        self.run(clients.MarkClientLost(client_id=client_id, reason=reason), when)

    def erase(self, client_id: UUID, when: str) -> None:
        self.run(clients.ErasePersonalData(client_id=client_id, reason="subject_request"), when)


def recorded_events(crm: Crm) -> list[Recorded]:
    """Every stored event, decoded, in position order."""
    return [
        Recorded(n.id, crm.app.mapper.to_domain_event(n))  # type: ignore[arg-type]
        for n in crm.app.recorder.select_notifications(start=1, limit=1_000_000)
    ]
