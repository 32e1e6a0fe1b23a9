"""Deal cards and pipelines read model: the current state of each deal and the
stages of each pipeline, for ``GET /deals/{id}`` and ``GET /pipelines``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import singledispatch
from typing import Any
from uuid import UUID

from domain.access import DataAccess
from domain.client import Client
from domain.deal import Deal
from domain.pipeline import Pipeline
from domain.subscription import Subscription
from projections.base import Ignored, Recorded, handled_by, topics_of


@dataclass(frozen=True, slots=True)
class DealOpened:
    deal_id: UUID
    client_id: UUID
    pipeline_id: UUID
    title: str
    amount: Decimal
    currency: str
    owner_id: str | None
    stage: str
    opened_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class DealChanged:
    """Only the given fields change (``None`` = unchanged); ``version`` always."""

    deal_id: UUID
    version: int
    at: datetime
    stage: str | None = None
    status: str | None = None
    amount: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PipelineStages:
    pipeline_id: UUID
    name: str | None
    stages: tuple[str, ...]
    version: int


@dataclass(frozen=True, slots=True)
class ClientErased:
    """The client's personal data was erased: their deals' titles go too."""

    client_id: UUID


Change = DealOpened | DealChanged | PipelineStages | ClientErased


def changes(recorded: Recorded) -> Iterable[Change]:
    return _changes(recorded.event)


@singledispatch
def _changes(event: Any) -> Iterable[Change]:  # noqa: ARG001
    return ()


@_changes.register
def _(event: Deal.DealOpened) -> Iterable[Change]:
    return (
        DealOpened(
            event.originator_id,
            event.client_id,
            event.pipeline_id,
            event.title,
            event.amount,
            event.currency,
            event.owner_id,
            event.stage,
            event.occurred_at,
            event.originator_version,
        ),
    )


def _changed(event: Deal.Event, **fields: Any) -> Iterable[Change]:
    return (
        DealChanged(event.originator_id, event.originator_version, event.occurred_at, **fields),
    )


@_changes.register
def _(event: Deal.DealStageChanged) -> Iterable[Change]:
    return _changed(event, stage=event.to_stage)


@_changes.register
def _(event: Deal.DealValueChanged) -> Iterable[Change]:
    return _changed(event, amount=event.new_amount)


@_changes.register
def _(event: Deal.DealWon) -> Iterable[Change]:
    return _changed(event, status="won", amount=event.amount)


@_changes.register
def _(event: Deal.DealLost) -> Iterable[Change]:
    return _changed(event, status="lost")


@_changes.register
def _(event: Deal.DealReopened) -> Iterable[Change]:
    return _changed(event, status="open", stage=event.stage)


@_changes.register
def _(event: Pipeline.PipelineDefined) -> Iterable[Change]:
    return (
        PipelineStages(event.originator_id, event.name, event.stages, event.originator_version),
    )


@_changes.register
def _(event: Client.PersonalDataErased) -> Iterable[Change]:
    return (ClientErased(event.originator_id),)


@_changes.register
def _(event: Pipeline.PipelineRedefined) -> Iterable[Change]:
    return (PipelineStages(event.originator_id, None, event.stages, event.originator_version),)


HANDLED: tuple[type[Any], ...] = handled_by(_changes)
TOPICS = topics_of(*HANDLED)
IGNORED: Ignored = {
    Client: "a deal card holds nothing of its client's but the id, and the title that the"
    " client's erasure blanks",
    DataAccess: "reading data changes no deal",
    Subscription: "webhook subscriptions are no deals",
}
