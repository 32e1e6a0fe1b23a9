"""Use cases of the Deal aggregate."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from application.unit_of_work import Outcome, UnitOfWork
from domain.client import Client
from domain.deal import Deal, DealLossReason
from domain.envelope import current_envelope, recording


@dataclass(frozen=True, kw_only=True)
class OpenDeal:
    client_id: UUID
    title: str
    amount: Decimal
    currency: str
    pipeline_id: UUID | None = None
    owner_id: str | None = None
    stage: str | None = None


@dataclass(frozen=True, kw_only=True)
class DealCommand:
    deal_id: UUID
    expected_version: int | None = None


@dataclass(frozen=True, kw_only=True)
class MoveDealStage(DealCommand):
    stage: str


@dataclass(frozen=True, kw_only=True)
class ChangeDealValue(DealCommand):
    amount: Decimal
    currency: str


@dataclass(frozen=True, kw_only=True)
class WinDeal(DealCommand):
    amount: Decimal | None = None
    cost: Decimal = Decimal(0)


@dataclass(frozen=True, kw_only=True)
class LoseDeal(DealCommand):
    reason: DealLossReason
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class ReopenDeal(DealCommand):
    pass


def open_deal(uow: UnitOfWork, cmd: OpenDeal) -> Outcome:
    """A new deal in the named pipeline (the default one unless named)."""
    owner_id = cmd.owner_id and uow.check_owner(cmd.owner_id, field="owner_id")
    deal = Deal.open(
        client=uow.client(cmd.client_id),
        pipeline=uow.pipeline(cmd.pipeline_id),
        title=cmd.title,
        amount=cmd.amount,
        currency=cmd.currency,
        books_currency=uow.books_currency,
        owner_id=owner_id,
        stage=cmd.stage,
    )
    return Outcome(uow.add(deal))


def _changeable(uow: UnitOfWork, cmd: DealCommand) -> tuple[Deal, Client]:
    """The deal, and the card its client is on now (following merges). Refused if
    that card or the deal's own client was erased: a deal's events are personal data
    of its own client, which a merged duplicate erased on its own no longer has."""
    deal = uow.deal(cmd.deal_id, cmd.expected_version)
    uow.client(deal.client_id).check_deals_may_change()
    client = uow.current_client(deal.client_id)
    client.check_deals_may_change()
    return deal, client


def move_deal_stage(uow: UnitOfWork, cmd: MoveDealStage) -> Outcome:
    deal, _ = _changeable(uow, cmd)
    deal.move_to(cmd.stage, pipeline=uow.pipeline(deal.pipeline_id))
    return Outcome(deal)


def change_deal_value(uow: UnitOfWork, cmd: ChangeDealValue) -> Outcome:
    deal, _ = _changeable(uow, cmd)
    deal.change_value(amount=cmd.amount, currency=cmd.currency, books_currency=uow.books_currency)
    return Outcome(deal)


def win_deal(uow: UnitOfWork, cmd: WinDeal) -> Outcome:
    """Winning a deal also records the client's purchase, caused by the win, in the
    same transaction (on the card the client was merged into, if any)."""
    deal, client = _changeable(uow, cmd)
    deal.win(amount=cmd.amount, cost=cmd.cost)
    with recording(current_envelope().caused_by(deal.last_event_id)):
        client.record_purchase(
            amount=deal.won_amount,
            cost=cmd.cost,
            currency=deal.currency,
            books_currency=uow.books_currency,
            deal_id=deal.id,
        )
    return Outcome(deal)


def lose_deal(uow: UnitOfWork, cmd: LoseDeal) -> Outcome:
    deal, _ = _changeable(uow, cmd)
    deal.lose(reason=cmd.reason, note=cmd.note)
    return Outcome(deal)


def reopen_deal(uow: UnitOfWork, cmd: ReopenDeal) -> Outcome:
    deal, _ = _changeable(uow, cmd)
    deal.reopen()
    return Outcome(deal)
