"""Request and response bodies, validated at the edge.

Bounds here keep absurd input out (huge numbers, endless lists); the business rules
themselves (E.164 phones, positive amounts, dates not in the future…) are the
domain's, and come back as 422 problems naming the field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.client import (
    ClientKind,
    ContactChannel,
    ContactPurpose,
    Direction,
    ErasureReason,
    HandAssignmentReason,
    LossReason,
)
from domain.deal import DealLossReason

Name = Annotated[str, Field(min_length=1, max_length=200)]
Line = Annotated[str, Field(max_length=500)]
Note = Annotated[str, Field(max_length=10_000)]
UserId = Annotated[str, Field(min_length=1, max_length=63)]
Slug = Annotated[str, Field(min_length=1, max_length=40)]
Phone = Annotated[str, Field(min_length=1, max_length=40)]
Email = Annotated[str, Field(min_length=1, max_length=254)]
Amount = Annotated[Decimal, Field(gt=0, max_digits=17, decimal_places=4)]
Cost = Annotated[Decimal, Field(ge=0, max_digits=17, decimal_places=4)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
Attributes = Annotated[
    dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=1000)]],
    Field(max_length=100),
]
OccurredAt = Annotated[
    AwareDatetime | None,
    Field(description="When it happened in the world (defaults to now; never in the future)"),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------------- clients


class RegisterClientBody(Body):
    name: Name
    kind: ClientKind = "person"
    company: Line | None = None
    phones: Annotated[list[Phone], Field(max_length=10)] = []
    emails: Annotated[list[Email], Field(max_length=10)] = []
    address: Line | None = None
    channel: Annotated[str, Field(max_length=100)] | None = None
    attributes: Attributes = {}
    owner_id: UserId | None = None
    occurred_at: OccurredAt = None


class ChangeClientBody(Body):
    """Only the fields present change; ``attributes`` maps keys to a new value, or
    to ``null`` to remove one."""

    name: Name | None = None
    kind: ClientKind | None = None
    company: Line | None = None
    phones: Annotated[list[Phone], Field(max_length=10)] | None = None
    emails: Annotated[list[Email], Field(max_length=10)] | None = None
    address: Line | None = None
    channel: Annotated[str, Field(max_length=100)] | None = None
    attributes: (
        Annotated[
            dict[
                Annotated[str, Field(max_length=40)],
                Annotated[str, Field(max_length=1000)] | None,
            ],
            Field(max_length=100),
        ]
        | None
    ) = None
    occurred_at: OccurredAt = None

    def changes(self) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True, exclude={"occurred_at", "attributes"})
        for key, value in (self.attributes or {}).items():
            given[f"attributes.{key}"] = value
        return given


class ContactBody(Body):
    channel: ContactChannel
    direction: Direction
    summary: Note = ""
    outcome: Line = ""
    purpose: ContactPurpose = "sales"
    occurred_at: OccurredAt = None


class PurchaseBody(Body):
    amount: Amount
    cost: Cost = Decimal(0)
    currency: Currency | None = Field(None, description="Defaults to the business currency")
    occurred_at: OccurredAt = None


class LossBody(Body):
    reason: LossReason
    note: Note = ""
    occurred_at: OccurredAt = None


class OwnerBody(Body):
    owner_id: UserId
    reason: HandAssignmentReason = "manual"
    occurred_at: OccurredAt = None


class FollowUpBody(Body):
    due_at: AwareDatetime
    assignee_id: UserId | None = None
    note: Note = ""
    occurred_at: OccurredAt = None


class FollowUpDoneBody(Body):
    note: Note = ""
    occurred_at: OccurredAt = None


class MergeBody(Body):
    duplicate_id: UUID


class ErasureBody(Body):
    reason: ErasureReason = Field(
        description="Kept in clear for auditors after the erasure, so one of a closed set"
    )


class RestrictionBody(Body):
    restricted: bool
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ConsentBody(Body):
    purpose: Slug = Field(description="One of the purposes the business declared")
    given: bool


# ------------------------------------------------------------------------ deals


class OpenDealBody(Body):
    client_id: UUID
    title: Name
    amount: Annotated[Decimal, Field(ge=0, max_digits=17, decimal_places=4)]
    currency: Currency | None = None
    pipeline_id: UUID | None = Field(None, description="Defaults to the default pipeline")
    owner_id: UserId | None = None
    stage: Slug | None = None
    occurred_at: OccurredAt = None


class StageBody(Body):
    stage: Slug
    occurred_at: OccurredAt = None


class WinBody(Body):
    amount: Amount | None = Field(None, description="Defaults to the deal's value")
    cost: Cost = Decimal(0)
    occurred_at: OccurredAt = None


class LoseDealBody(Body):
    reason: DealLossReason
    note: Note = ""
    occurred_at: OccurredAt = None


class ReopenBody(Body):
    occurred_at: OccurredAt = None


class PipelineBody(Body):
    name: Name
    stages: Annotated[list[Slug], Field(min_length=1, max_length=20)]


# -------------------------------------------------------------------- responses


class Written(BaseModel):
    """The answer to every write: the record, its version, and the store position of
    the write's last event (pass it as ``min_position`` to read your own write)."""

    id: UUID
    version: int
    position: int | None
    task_id: UUID | None = None


class StageIntervalOut(BaseModel):
    stage: str
    valid_from: datetime
    valid_to: datetime | None
    reason: str | None


class LifecycleCounts(BaseModel):
    as_of: datetime
    projected: bool = Field(
        description="`as_of` is later than the read: the counts carry today's facts forward"
    )
    counts: dict[str, int]


class DealOut(BaseModel):
    id: UUID
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


class PipelineOut(BaseModel):
    id: UUID
    name: str
    stages: list[str]
    version: int


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None
