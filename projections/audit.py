"""Audit trail: who changed which field of which record, when, from where, and why.

Auditors "trace who changed which client data, when, from where, and why — field by
field, with old and new values, for the whole life of the record". The fold turns
each event into entries: one per changed field (``field``, ``old_value``,
``new_value``, values as text) and one per event that changes no field (its payload
as JSON in ``details``), each carrying the event's envelope.

Two things the fold cannot know from one event are left to the adapter: the client of
a deal event after ``DealOpened`` (``client_id`` is ``None`` in the fold's entry and
resolved from the deal links the adapter keeps), and the purge of a client's personal
values when their data is erased (``redacted`` gives the purged entry).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cache, singledispatch
from typing import Any
from uuid import UUID

import orjson

from domain.access import DataAccess
from domain.base import CrmAggregate
from domain.client import ATTRIBUTES, PROFILE_FIELDS, Client
from domain.deal import Deal
from domain.events import EVENTS, events_of
from domain.pipeline import Pipeline
from domain.values import personal_fields
from projections.base import Ignored, Recorded, ignored_events, topics_of

EXCLUDED: Ignored = {}
"""Events left out of the audit trail, each with the reason. None so far: every event
is a change made by someone (or by the automation on their behalf) or a read of
personal data (``DataExported``), and auditors trace them all."""

_LEFT_OUT = ignored_events(EXCLUDED)
AUDITED: tuple[type[CrmAggregate.Event], ...] = tuple(cls for cls in EVENTS if cls not in _LEFT_OUT)
"""Every event of every aggregate (``domain.events``) unless excluded above: an event
added to the domain reaches the audit trail without being listed here."""

ERASED_FIELDS = "erased_fields"
"""Set by the store on events read after their subject's erasure: the names of the
personal fields that held values then (see ``adapters.mapper``)."""

TOPICS = topics_of(*AUDITED)

ERASURE = Client.PersonalDataErased.__name__
"""The event type after which the adapter purges the client's personal values."""

ENVELOPE_FIELDS = frozenset(f.name for f in dataclasses.fields(CrmAggregate.Created))
"""Fields every event carries besides its payload (ids, times, attribution)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail: a changed field, or an event that changes none.

    ``seq`` numbers the entries of one event from 0; ``event_id`` is the id other
    events name as their ``causation_id``. Values are text: strings as they are,
    lists as JSON arrays, decimals as their string; ``None`` is absent.
    ``redacted`` says personal values were purged after the client's erasure.
    """

    position: int
    seq: int
    event_id: str
    event_type: str
    recorded_at: datetime
    occurred_at: datetime
    actor_id: str
    actor_role: str
    source: str
    correlation_id: str
    causation_id: str | None
    client_id: UUID | None
    deal_id: UUID | None
    field: str | None = None
    old_value: str | None = None
    new_value: str | None = None
    details: str | None = None
    redacted: bool = False


Change = tuple[str, object, object]
"""(field, old value, new value)"""


def entries(recorded: Recorded) -> list[AuditEntry]:
    """The audit entries of one recorded event, in ``seq`` order."""
    event = recorded.event
    client_id, deal_id = _subjects(event)
    envelope: dict[str, Any] = {
        "position": recorded.position,
        "event_id": event.event_id,
        "event_type": recorded.event_type,
        "recorded_at": recorded.recorded_at,
        "occurred_at": recorded.occurred_at,
        "actor_id": event.actor_id,
        "actor_role": event.actor_role,
        "source": event.source,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
        "client_id": client_id,
        "deal_id": deal_id,
    }
    changes = _changes(event)
    if changes is None:
        return [AuditEntry(seq=0, details=payload_json(event), **envelope)]
    context = _context(event)
    return [
        AuditEntry(
            seq=seq,
            field=name,
            old_value=as_text(old),
            new_value=as_text(new),
            details=context,
            **envelope,
        )
        for seq, (name, old, new) in enumerate(changes)
    ]


def _context(event: CrmAggregate.Event) -> str | None:
    """For a field change, the payload that says why or how (an owner change's reason,
    a value change's currency), as JSON; ``None`` when there is nothing more."""
    if isinstance(event, Client.OwnerAssigned):
        return _dumps({"reason": event.reason})
    if isinstance(event, Deal.DealValueChanged):
        return _dumps({"currency": event.currency})
    return None


def _subjects(event: CrmAggregate.Event) -> tuple[UUID | None, UUID | None]:
    """(client_id, deal_id) of an event; a deal's client is known here only when the
    deal is opened."""
    if isinstance(event, Client.Event):
        return event.originator_id, None
    if isinstance(event, Deal.DealOpened):
        return event.client_id, event.originator_id
    if isinstance(event, Deal.Event):
        return None, event.originator_id
    if isinstance(event, DataAccess.DataExported):  # a subject export is about its client
        return event.client_id, None
    return None, None


# ------------------------------------------------------------------ field changes


@singledispatch
def _changes(event: Any) -> list[Change] | None:  # noqa: ARG001
    """The fields an event changes, or ``None`` for an event that changes no field."""
    return None


def _given(event: CrmAggregate.Event, changes: list[Change]) -> list[Change]:
    """At creation, the fields given a value (absent, empty lists and empty mappings are
    not) — and, for an event read after its subject's erasure, those that held one
    then."""
    erased = _erased_fields(event)
    return [
        (name, old, new)
        for name, old, new in changes
        if new not in (None, (), {}) or name in erased
    ]


def _erased_fields(event: CrmAggregate.Event) -> frozenset[str]:
    erased: frozenset[str] = getattr(event, ERASED_FIELDS, frozenset())
    return erased


@_changes.register
def _(event: Client.ClientRegistered) -> list[Change]:
    # The attributes are one field, their keys and values one JSON object: the keys
    # are personal data as much as the values.
    names = (
        "name", "kind", "company", "phones", "emails", "address", "channel", "owner_id",
        ATTRIBUTES,
    )  # fmt: skip
    return _given(event, [(name, None, getattr(event, name)) for name in names])


@_changes.register
def _(event: Client.ClientDetailsChanged) -> list[Change]:
    return [(name, event.old.get(name), event.new.get(name)) for name in event.fields]


@_changes.register
def _(event: Client.OwnerAssigned) -> list[Change]:
    return [("owner_id", event.previous_owner_id, event.owner_id)]


@_changes.register
def _(event: Deal.DealOpened) -> list[Change]:
    names = ("title", "amount", "currency", "stage", "owner_id", "pipeline_id")
    return _given(event, [(name, None, getattr(event, name)) for name in names])


@_changes.register
def _(event: Deal.DealStageChanged) -> list[Change]:
    return [("stage", event.from_stage, event.to_stage)]


@_changes.register
def _(event: Deal.DealValueChanged) -> list[Change]:
    return [("amount", event.old_amount, event.new_amount)]


@_changes.register
def _(event: Deal.DealReopened) -> list[Change]:
    # A closed deal stands in the terminal stage named by its status ("won" or "lost",
    # as in the funnel); reopening puts it back in the stage it was closed from.
    return [
        ("status", event.previous_status, "open"),
        ("stage", event.previous_status, event.stage),
    ]


@_changes.register
def _(event: Pipeline.PipelineDefined) -> list[Change]:
    return [("name", None, event.name), ("stages", None, event.stages)]


@_changes.register
def _(event: Pipeline.PipelineRedefined) -> list[Change]:
    return [("stages", event.previous_stages, event.stages)]


# ------------------------------------------------------------------ values as text


def as_text(value: object) -> str | None:
    """A field value as text: strings as they are, lists as JSON arrays, mappings (the
    attributes) as JSON objects with sorted keys, decimals as their string (exact),
    ``None`` absent."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return orjson.dumps(list(value), default=_json_default).decode()
    if isinstance(value, dict):
        return _dumps(value)
    return str(value)


def payload_json(event: CrmAggregate.Event) -> str:
    """The event's payload (every field but the envelope) as JSON with sorted keys;
    decimals as strings, instants in RFC 3339."""
    payload = {name: getattr(event, name) for name in _payload_names(type(event))}
    return _dumps(payload)


@cache
def _payload_names(event_class: type[Any]) -> tuple[str, ...]:
    """The payload fields of an event class: every field but the envelope."""
    return tuple(f.name for f in dataclasses.fields(event_class) if f.name not in ENVELOPE_FIELDS)


def _dumps(value: object) -> str:
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_SORT_KEYS).decode()


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


# ------------------------------------------------------------------ erasure


def _personal_profile() -> Mapping[str, frozenset[str]]:
    # A profile field is personal if the creation event marks it so ("attributes"
    # covers the attributes' keys and values). A details change seals all its values
    # under the client's key, so after the erasure a rebuild reads none of them: the
    # live purge drops them all too (``kind`` included), and both give one trail.
    client = personal_fields(Client.ClientRegistered)
    deal = personal_fields(Deal.DealOpened)
    by_type: dict[str, frozenset[str]] = {}
    for aggregate, fields in ((Client, client), (Deal, deal)):
        by_type.update({cls.__name__: fields for cls in events_of(aggregate)})
    by_type[Client.ClientDetailsChanged.__name__] = frozenset((*PROFILE_FIELDS, ATTRIBUTES))
    return by_type


PERSONAL_FIELDS = _personal_profile()
"""Per event type, the audited fields whose values are personal data."""
PERSONAL_DETAILS = {
    cls.__name__: personal_fields(cls) for cls in (*events_of(Client), *events_of(Deal))
}
"""Per event type, the payload keys in ``details`` that are personal data."""


def redacted(entry: AuditEntry) -> AuditEntry:
    """The entry with its personal values purged, as after the client's erasure.

    Rule (erasure): "purge personal values from every read model, keep the
    non-personal skeleton", so the trail still says who changed which field when.
    Purged values become ``None`` (keys stay in ``details``) and ``redacted`` is set
    on every entry that held personal fields — also when a rebuild folded them from
    events whose key was already destroyed (they read as empty), so a rebuild gives
    the same trail as the live purge did. Other entries are returned as they are.
    An entry folded before attribute keys were encrypted names its key
    (``attributes.vip``): the key is purged from the field name too.
    """
    field, old, new, details = entry.field, entry.old_value, entry.new_value, entry.details
    personal_entry = False
    if field is not None:
        personal = PERSONAL_FIELDS.get(entry.event_type, frozenset())
        if field.split(".", 1)[0] in personal:
            field = field.split(".", 1)[0]
            old = new = None
            personal_entry = True
    if details is not None and (keys := PERSONAL_DETAILS.get(entry.event_type)):
        payload = orjson.loads(details)
        if keys & payload.keys():
            details = _dumps({k: None if k in keys else v for k, v in payload.items()})
            personal_entry = True
    if not personal_entry:
        return entry
    return dataclasses.replace(
        entry, field=field, old_value=old, new_value=new, details=details, redacted=True
    )
