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

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

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
from domain.values import SLUG

# Documented patterns (``json_schema_extra``) state rules the domain enforces with
# messages of its own (``domain.values``): the document says what is accepted, the
# domain answers what is wrong.
_CONTROL = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
"""Control characters (Unicode's Cc) but tab and newline."""
_TEXT = {"pattern": rf"^[^{_CONTROL}]*$"}
_NAME = {"pattern": rf"^[^{_CONTROL}]*[^\s{_CONTROL}][^{_CONTROL}]*$"}
"""Text that is not blank."""

Name = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra=_NAME)]
Line = Annotated[str, Field(max_length=500, json_schema_extra=_TEXT)]
Note = Annotated[str, Field(max_length=10_000, json_schema_extra=_TEXT)]
UserId = Annotated[str, Field(min_length=1, max_length=63)]
Slug = Annotated[
    str, Field(min_length=1, max_length=40, json_schema_extra={"pattern": f"^{SLUG.pattern}$"})
]
Phone = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        description="A phone number in any formatting; a national one is read as "
        "CRM_DEFAULT_COUNTRY's",
    ),
]
Email = Annotated[str, Field(min_length=1, max_length=254, json_schema_extra={"format": "email"})]
Amount = Annotated[Decimal, Field(gt=0, max_digits=17, decimal_places=4)]
Cost = Annotated[Decimal, Field(ge=0, max_digits=17, decimal_places=4)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
MAX_ATTRIBUTES = 100


def _at_most_max_attributes(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    # Counted here, not with ``Field(max_length=...)``, which litestar documents as an
    # array's length: the document would say ``attributes`` is an array.
    if attributes is not None and len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"a client has at most {MAX_ATTRIBUTES} attributes")
    return attributes


def _attributes_schema(*, removable: bool) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string", "maxLength": 1000}
    return {
        "maxProperties": MAX_ATTRIBUTES,
        "propertyNames": {"maxLength": 40},
        "additionalProperties": {"type": ["string", "null"], "maxLength": 1000}
        if removable
        else value,
    }


AttributeName = Annotated[str, Field(max_length=40)]
Attributes = Annotated[
    dict[AttributeName, Annotated[str, Field(max_length=1000)]],
    AfterValidator(_at_most_max_attributes),
    Field(
        description="Free attributes of the client: name → text",
        json_schema_extra=_attributes_schema(removable=False),
    ),
]
OccurredAt = Annotated[
    AwareDatetime | None,
    Field(description="When it happened in the world (defaults to now; never in the future)"),
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def examples(*bodies: dict[str, Any]) -> ConfigDict:
    """The ``model_config`` of a body model with examples of it: the OpenAPI document
    shows them with the operations that take it (``api.http.contract``)."""
    return ConfigDict(json_schema_extra={"examples": list(bodies)})


# ---------------------------------------------------------------------- clients


class RegisterClientBody(Body):
    model_config = examples(
        {
            "name": "Olena Kovalenko",
            "phones": ["+380 67 111 22 33"],
            "emails": ["olena@example.com"],
        },
        {
            "name": "Fensterbau Müller GmbH",
            "kind": "company",
            "company": "Fensterbau Müller GmbH",
            "phones": ["+49 30 1234567"],
            "channel": "trade fair",
            "attributes": {"city": "Berlin"},
            "occurred_at": "2026-03-01T09:30:00Z",
        },
    )

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

    model_config = examples(
        {"name": "Olena Shevchenko", "attributes": {"city": "Lviv", "fax": None}},
    )

    name: Name | None = None
    kind: ClientKind | None = None
    company: Line | None = None
    phones: Annotated[list[Phone], Field(max_length=10)] | None = None
    emails: Annotated[list[Email], Field(max_length=10)] | None = None
    address: Line | None = None
    channel: Annotated[str, Field(max_length=100)] | None = None
    attributes: Annotated[
        dict[AttributeName, Annotated[str, Field(max_length=1000)] | None] | None,
        AfterValidator(_at_most_max_attributes),
        Field(
            description="Attributes to set (name → text) or remove (name → null)",
            json_schema_extra=_attributes_schema(removable=True),
        ),
    ] = None
    occurred_at: OccurredAt = None

    def changes(self) -> dict[str, Any]:
        given = self.model_dump(exclude_unset=True, exclude={"occurred_at", "attributes"})
        for key, value in (self.attributes or {}).items():
            given[f"attributes.{key}"] = value
        return given


class ContactBody(Body):
    model_config = examples(
        {
            "channel": "call",
            "direction": "outbound",
            "summary": "Asked about delivery",
            "outcome": "call back Friday",
        },
    )

    channel: ContactChannel
    direction: Direction
    summary: Note = ""
    outcome: Line = ""
    purpose: ContactPurpose = "sales"
    occurred_at: OccurredAt = None


class PurchaseBody(Body):
    model_config = examples(
        {"amount": "1350.00", "cost": "900.00", "currency": "EUR"},
    )

    amount: Amount
    cost: Cost = Decimal(0)
    currency: Currency | None = Field(None, description="Defaults to the business currency")
    occurred_at: OccurredAt = None


class LossBody(Body):
    model_config = examples(
        {"reason": "competitor", "note": "went with a cheaper offer"},
    )

    reason: LossReason
    note: Note = ""
    occurred_at: OccurredAt = None


class OwnerBody(Body):
    model_config = examples(
        {"owner_id": "mia", "reason": "manual"},
    )

    owner_id: UserId
    reason: HandAssignmentReason = "manual"
    occurred_at: OccurredAt = None


class FollowUpBody(Body):
    model_config = examples(
        {"due_at": "2026-03-06T10:00:00Z", "note": "send the measurements"},
    )

    due_at: AwareDatetime
    assignee_id: UserId | None = None
    note: Note = ""
    occurred_at: OccurredAt = None


class FollowUpDoneBody(Body):
    model_config = examples(
        {"note": "sent"},
    )

    note: Note = ""
    occurred_at: OccurredAt = None


class MergeBody(Body):
    model_config = examples(
        {"duplicate_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6"},
    )

    duplicate_id: UUID


class ErasureBody(Body):
    model_config = examples(
        {"reason": "subject_request"},
    )

    reason: ErasureReason = Field(
        description="Kept in clear for auditors after the erasure, so one of a closed set"
    )


class RestrictionBody(Body):
    model_config = examples(
        {"restricted": True, "reason": "the client objects to marketing"},
    )

    restricted: bool
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class ConsentBody(Body):
    model_config = examples(
        {"purpose": "newsletter", "given": True},
    )

    purpose: Slug = Field(description="One of the purposes the business declared")
    given: bool


# ------------------------------------------------------------------------ deals


class OpenDealBody(Body):
    model_config = examples(
        {
            "client_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "title": "Windows, 3 rooms",
            "amount": "4200",
        },
    )

    client_id: UUID
    title: Name
    amount: Annotated[Decimal, Field(ge=0, max_digits=17, decimal_places=4)]
    currency: Currency | None = None
    pipeline_id: UUID | None = Field(None, description="Defaults to the default pipeline")
    owner_id: UserId | None = None
    stage: Slug | None = None
    occurred_at: OccurredAt = None


class StageBody(Body):
    model_config = examples(
        {"stage": "interest"},
    )

    stage: Slug
    occurred_at: OccurredAt = None


class WinBody(Body):
    model_config = examples(
        {"amount": "4000"},
    )

    amount: Amount | None = Field(None, description="Defaults to the deal's value")
    cost: Cost = Decimal(0)
    occurred_at: OccurredAt = None


class LoseDealBody(Body):
    model_config = examples(
        {"reason": "no_budget", "note": "next spring"},
    )

    reason: DealLossReason
    note: Note = ""
    occurred_at: OccurredAt = None


class ReopenBody(Body):
    model_config = examples(
        {},
    )

    occurred_at: OccurredAt = None


class PipelineBody(Body):
    model_config = examples(
        {"name": "Fitting", "stages": ["measure", "offer", "fit"]},
    )

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
