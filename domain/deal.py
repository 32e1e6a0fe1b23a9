"""The Deal aggregate: one sales opportunity moving through a pipeline."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, Self, get_args
from uuid import UUID, uuid4

from eventsourcing.domain import CanMutateAggregate

from domain.base import CrmAggregate
from domain.client import Client
from domain.errors import InvalidValue, RuleViolation
from domain.pipeline import Pipeline
from domain.values import (
    MAX_SHORT_TEXT,
    PersonalText,
    check_amount,
    check_currency,
    normalise_name,
    normalise_text,
)

DealStatus = Literal["open", "won", "lost"]
DealLossReason = Literal[
    "price", "competitor", "no_need", "no_budget", "timing", "no_response", "other"
]
DEAL_LOSS_REASONS: tuple[str, ...] = get_args(DealLossReason)


class Deal(CrmAggregate):
    """A sales opportunity for one client in one pipeline.

    Rules: the stage exists in the deal's pipeline; won and lost are terminal until
    the deal is reopened; a deal's history is chronological (each event's business
    time is no earlier than the previous one's), so every stay has a duration.
    """

    creation = "the deal was opened"

    class Event(CrmAggregate.Event):
        client_id: UUID
        """Every deal event names its client: it is the data subject of the deal's
        personal fields (a title, a note)."""

        @property
        def subject_id(self) -> UUID | None:
            return self.client_id

        def apply(self, aggregate: Deal) -> None:
            super().apply(aggregate)
            aggregate.last_occurred_at = self.occurred_at

    class DealOpened(Event, CrmAggregate.Created):
        pipeline_id: UUID
        title: PersonalText
        amount: Decimal
        currency: str
        owner_id: str | None
        stage: str

    class DealStageChanged(Event):
        from_stage: str
        to_stage: str

        def apply(self, aggregate: Deal) -> None:
            super().apply(aggregate)
            aggregate.stage = self.to_stage

    class DealValueChanged(Event):
        old_amount: Decimal
        new_amount: Decimal
        currency: str

        def apply(self, aggregate: Deal) -> None:
            super().apply(aggregate)
            aggregate.amount = self.new_amount

    class DealWon(Event):
        amount: Decimal
        cost: Decimal
        currency: str
        stage: str

        def apply(self, aggregate: Deal) -> None:
            super().apply(aggregate)
            aggregate.status = "won"
            aggregate.won_amount = self.amount

    class DealLost(Event):
        reason: str
        note: PersonalText
        stage: str

        def apply(self, aggregate: Deal) -> None:
            super().apply(aggregate)
            aggregate.status = "lost"

    class DealReopened(Event):
        stage: str
        previous_status: str

        def apply(self, aggregate: Deal) -> None:
            super().apply(aggregate)
            aggregate.status = "open"
            aggregate.stage = self.stage

    def __init__(
        self,
        *,
        client_id: UUID,
        pipeline_id: UUID,
        title: str,
        amount: Decimal,
        currency: str,
        owner_id: str | None,
        stage: str,
    ) -> None:
        self.client_id = client_id
        self.pipeline_id = pipeline_id
        self.title = title
        self.amount = amount
        self.currency = currency
        self.owner_id = owner_id
        self.stage = stage
        self.status: DealStatus = "open"
        self.won_amount = Decimal(0)
        self.last_occurred_at: datetime | None = None

    def trigger_event(self, event_class: type[CanMutateAggregate[Any]], **kwargs: Any) -> None:
        super().trigger_event(event_class, client_id=self.client_id, **kwargs)

    @classmethod
    def open(
        cls,
        *,
        client: Client,
        pipeline: Pipeline,
        title: str,
        amount: Decimal,
        currency: str,
        books_currency: str,
        owner_id: str | None = None,
        stage: str | None = None,
    ) -> Self:
        """A new opportunity for ``client``, in the first stage of ``pipeline`` unless
        another stage is named; owned by the client's owner unless another is named."""
        client.check_accepts_new_deal()
        return cls._create(
            cls.DealOpened,
            id=uuid4(),
            client_id=client.id,
            pipeline_id=pipeline.id,
            title=normalise_name(title, field="title"),
            amount=check_amount(amount, field="amount", allow_zero=True),
            currency=check_currency(currency, books=books_currency),
            owner_id=owner_id or client.owner_id,
            stage=pipeline.check_stage(stage or pipeline.stages[0]),
        )

    def move_to(self, stage: str, *, pipeline: Pipeline) -> None:
        """Move to another stage of the pipeline (forwards, backwards or skipping);
        moving to the current stage is a no-op."""
        self._check_open()
        self._check_pipeline(pipeline)
        pipeline.check_stage(stage)
        if stage == self.stage:
            return
        self._check_chronological()
        self.trigger_event(self.DealStageChanged, from_stage=self.stage, to_stage=stage)

    def change_value(self, *, amount: Decimal, currency: str, books_currency: str) -> None:
        """The expected value changed; the same value is a no-op."""
        self._check_open()
        new_amount = check_amount(amount, field="amount", allow_zero=True)
        check_currency(currency, books=books_currency)
        if new_amount == self.amount:
            return
        self._check_chronological()
        self.trigger_event(
            self.DealValueChanged,
            old_amount=self.amount,
            new_amount=new_amount,
            currency=currency,
        )

    def win(self, *, amount: Decimal | None = None, cost: Decimal = Decimal(0)) -> None:
        """The deal is won for ``amount`` (the deal's value unless given). The client's
        purchase is recorded beside it by the use case, in the same transaction."""
        self._check_open()
        self._check_chronological()
        self.trigger_event(
            self.DealWon,
            amount=check_amount(self.amount if amount is None else amount, field="amount"),
            cost=check_amount(cost, field="cost", allow_zero=True),
            currency=self.currency,
            stage=self.stage,
        )

    def lose(self, *, reason: str, note: str = "") -> None:
        """The deal is lost, for one of the known reasons."""
        self._check_open()
        if reason not in DEAL_LOSS_REASONS:
            raise InvalidValue(
                f"reason {reason!r} is not one of: {', '.join(DEAL_LOSS_REASONS)}",
                field="reason",
            )
        self._check_chronological()
        self.trigger_event(
            self.DealLost,
            reason=reason,
            note=normalise_text(note, field="note", limit=MAX_SHORT_TEXT),
            stage=self.stage,
        )

    def reopen(self) -> None:
        """A won or lost deal is open again, in the stage it was closed from."""
        if self.status == "open":
            raise RuleViolation("the deal is open; only won or lost deals can be reopened")
        self._check_chronological()
        self.trigger_event(self.DealReopened, stage=self.stage, previous_status=self.status)

    def _check_open(self) -> None:
        if self.status != "open":
            raise RuleViolation(f"the deal is {self.status}; reopen it first")

    def _check_pipeline(self, pipeline: Pipeline) -> None:
        if pipeline.id != self.pipeline_id:
            raise RuleViolation("the deal belongs to another pipeline", field="pipeline_id")

    def _check_chronological(self) -> None:
        occurred_at = self._occurred_at()
        if self.last_occurred_at is not None and occurred_at < self.last_occurred_at:
            raise InvalidValue(
                "occurred_at precedes the deal's last recorded change "
                f"({self.last_occurred_at.isoformat()})",
                field="occurred_at",
            )
