"""Use cases of the Client aggregate: one command, one handler each."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from application.unit_of_work import Outcome, UnitOfWork
from domain.client import (
    AssignmentReason,
    Client,
    ClientKind,
    ContactChannel,
    ContactPurpose,
    Direction,
    ErasureReason,
    LossReason,
)
from domain.envelope import current_envelope


@dataclass(frozen=True, kw_only=True)
class RegisterClient:
    name: str
    kind: ClientKind = "person"
    company: str | None = None
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    address: str | None = None
    channel: str | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    owner_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ClientCommand:
    client_id: UUID
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class ChangeClientDetails(ClientCommand):
    changes: Mapping[str, Any]


@dataclass(frozen=True, kw_only=True)
class RecordContact(ClientCommand):
    channel: ContactChannel
    direction: Direction
    summary: str = ""
    outcome: str = ""
    purpose: ContactPurpose = "sales"


@dataclass(frozen=True, kw_only=True)
class RecordPurchase(ClientCommand):
    amount: Decimal
    currency: str
    cost: Decimal = Decimal(0)


@dataclass(frozen=True, kw_only=True)
class MarkClientLost(ClientCommand):
    reason: LossReason
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class AssignOwner(ClientCommand):
    owner_id: str
    reason: AssignmentReason = "manual"


@dataclass(frozen=True, kw_only=True)
class ScheduleFollowUp(ClientCommand):
    due_at: datetime
    assignee_id: str | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class CompleteFollowUp(ClientCommand):
    task_id: UUID
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class CancelFollowUp(ClientCommand):
    task_id: UUID
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class MergeClients:
    survivor_id: UUID
    duplicate_id: UUID
    expected_version: int | None = None
    """The survivor's (``If-Match``)."""


@dataclass(frozen=True, kw_only=True)
class GiveConsent(ClientCommand):
    purpose: str


@dataclass(frozen=True, kw_only=True)
class WithdrawConsent(ClientCommand):
    purpose: str


@dataclass(frozen=True, kw_only=True)
class RestrictProcessing(ClientCommand):
    reason: str


@dataclass(frozen=True, kw_only=True)
class LiftRestriction(ClientCommand):
    reason: str


@dataclass(frozen=True, kw_only=True)
class ErasePersonalData(ClientCommand):
    reason: ErasureReason


def register_client(uow: UnitOfWork, cmd: RegisterClient) -> Outcome:
    """A new lead. With no owner given, a manager who registers it takes it; anyone
    else's goes to the next active manager in turn."""
    wanted = cmd.owner_id or uow.principal.default_owner()
    owner_id = wanted and uow.check_owner(wanted, field="owner_id")
    client = uow.add(
        Client.register(
            name=cmd.name,
            kind=cmd.kind,
            company=cmd.company,
            phones=uow.phones(cmd.phones),
            emails=cmd.emails,
            address=cmd.address,
            channel=cmd.channel,
            attributes=cmd.attributes,
            owner_id=owner_id,
        )
    )
    if owner_id is None and (manager := uow.next_manager()):
        client.assign_owner(manager, reason="round_robin")
    return Outcome(client)


def change_client_details(uow: UnitOfWork, cmd: ChangeClientDetails) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    changes = dict(cmd.changes)
    phones = changes.get("phones")
    if isinstance(phones, (list, tuple)) and all(isinstance(p, str) for p in phones):
        changes["phones"] = uow.phones(phones)  # anything else: the domain refuses it
    client.change_details(changes)
    return Outcome(client)


def record_contact(uow: UnitOfWork, cmd: RecordContact) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.record_contact(
        channel=cmd.channel,
        direction=cmd.direction,
        summary=cmd.summary,
        outcome=cmd.outcome,
        purpose=cmd.purpose,
    )
    return Outcome(client)


def record_purchase(uow: UnitOfWork, cmd: RecordPurchase) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.record_purchase(
        amount=cmd.amount, currency=cmd.currency, cost=cmd.cost, books_currency=uow.books_currency
    )
    return Outcome(client)


def mark_client_lost(uow: UnitOfWork, cmd: MarkClientLost) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.mark_lost(reason=cmd.reason, note=cmd.note)
    return Outcome(client)


def assign_owner(uow: UnitOfWork, cmd: AssignOwner) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.assign_owner(uow.check_owner(cmd.owner_id, field="owner_id"), reason=cmd.reason)
    return Outcome(client)


def schedule_follow_up(uow: UnitOfWork, cmd: ScheduleFollowUp) -> Outcome:
    """Assigned to the named person, else the client's owner, else whoever schedules it."""
    client = uow.client(cmd.client_id, cmd.expected_version)
    assignee = cmd.assignee_id or client.owner_id or current_envelope().actor_id
    task_id = client.schedule_follow_up(
        due_at=cmd.due_at,
        assignee_id=uow.check_owner(assignee, field="assignee_id"),
        note=cmd.note,
    )
    return Outcome(client, {"task_id": str(task_id)})


def complete_follow_up(uow: UnitOfWork, cmd: CompleteFollowUp) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.complete_follow_up(cmd.task_id, note=cmd.note)
    return Outcome(client, {"task_id": str(cmd.task_id)})


def cancel_follow_up(uow: UnitOfWork, cmd: CancelFollowUp) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.cancel_follow_up(cmd.task_id, reason=cmd.reason)
    return Outcome(client, {"task_id": str(cmd.task_id)})


def merge_clients(uow: UnitOfWork, cmd: MergeClients) -> Outcome:
    """Two cards of one person become one: the duplicate's contact points move to the
    survivor, in one transaction."""
    survivor = uow.client(cmd.survivor_id, cmd.expected_version)
    survivor.absorb(uow.client(cmd.duplicate_id))
    return Outcome(survivor)


def give_consent(uow: UnitOfWork, cmd: GiveConsent) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.give_consent(cmd.purpose, declared=uow.consent_purposes)
    return Outcome(client)


def withdraw_consent(uow: UnitOfWork, cmd: WithdrawConsent) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.withdraw_consent(cmd.purpose, declared=uow.consent_purposes)
    return Outcome(client)


def restrict_processing(uow: UnitOfWork, cmd: RestrictProcessing) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.restrict_processing(reason=cmd.reason)
    return Outcome(client)


def lift_restriction(uow: UnitOfWork, cmd: LiftRestriction) -> Outcome:
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.lift_restriction(reason=cmd.reason)
    return Outcome(client)


def erase_personal_data(uow: UnitOfWork, cmd: ErasePersonalData) -> Outcome:
    """Erase the client and every card merged into theirs (the same person): each
    card's data key is destroyed with the erasure, in one transaction."""
    client = uow.client(cmd.client_id, cmd.expected_version)
    client.erase_personal_data(reason=cmd.reason)
    duplicates = list(client.absorbed_ids)
    while duplicates:
        duplicate = uow.client(duplicates.pop())
        duplicates += duplicate.absorbed_ids
        if not duplicate.erased:
            duplicate.erase_personal_data(reason=cmd.reason)
    return Outcome(client)
