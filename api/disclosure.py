"""Personal values in what the API and the command line send: all of them to a
caller that may read them (``application.exports.Exports.disclose`` decides), none
to the others. Withheld fields are left out and named: in ``redacted`` for events
and cards, in ``withheld`` for audit entries (whose ``redacted`` flag already says
an erasure purged them).

Which fields are personal is read from the domain's ``PERSONAL`` marks, never typed
here: a field marked personal tomorrow is withheld tomorrow.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from typing import Any

import orjson

from adapters.read_models.deals import DealCard
from api.subject import event_out
from domain.client import Client
from domain.deal import Deal
from domain.values import personal_fields
from projections import audit
from projections.audit import AuditEntry
from projections.directory import ClientCard

CARD_FIELDS = personal_fields(Client.ClientRegistered) & {f.name for f in fields(ClientCard)}
"""The personal fields of a client's card: those its registration marks personal."""
DEAL_FIELDS = personal_fields(Deal.DealOpened) & {f.name for f in fields(DealCard)}
"""The personal fields of a deal's card (its title)."""
_EMPTY: tuple[Any, ...] = (None, "", (), [], {})


def holds_personal(body: Mapping[str, Any], personal: Iterable[str]) -> bool:
    """Whether any of the ``personal`` fields of ``body`` holds a value (an erased one
    reads as empty and holds none)."""
    return any(body.get(name) not in _EMPTY for name in personal)


def redact(body: dict[str, Any], personal: frozenset[str], *, disclose: bool) -> dict[str, Any]:
    """``body`` as sent: without its ``personal`` fields unless ``disclose``, and with
    ``redacted`` naming those left out (empty when none were)."""
    left_out = [] if disclose else sorted(personal & body.keys())
    for name in left_out:
        del body[name]
    body["redacted"] = left_out
    return body


def event_holds_personal(event: Any) -> bool:
    personal = personal_fields(type(event))
    return holds_personal({name: getattr(event, name) for name in personal}, personal)


def event_item(event: Any, *, disclose: bool, position: int | None = None) -> dict[str, Any]:
    """An event as sent (``api.subject.event_out``), preceded by its ``position`` when
    given; its payload's personal fields left out and named in ``redacted`` unless
    ``disclose``."""
    item = event_out(event)
    if position is not None:
        item = {"position": position, **item}
    return redact_event(item, type(event), disclose=disclose)


def redact_event(item: dict[str, Any], event_class: type[Any], *, disclose: bool) -> dict[str, Any]:
    """An event as sent by ``api.subject.event_out``: its payload's personal fields
    left out and named in ``redacted`` unless ``disclose``."""
    payload = redact(dict(item["payload"]), personal_fields(event_class), disclose=disclose)
    item["redacted"] = payload.pop("redacted")
    item["payload"] = payload
    return item


def _personal_parts(entry: AuditEntry) -> tuple[bool, frozenset[str]]:
    """(whether the entry's old and new values are personal, the personal keys of its
    details)."""
    field_personal = entry.field is not None and entry.field.split(".", 1)[
        0
    ] in audit.PERSONAL_FIELDS.get(entry.event_type, frozenset())
    return field_personal, audit.PERSONAL_DETAILS.get(entry.event_type, frozenset())


def entry_holds_personal(entry: AuditEntry) -> bool:
    values, keys = _personal_parts(entry)
    if values and (entry.old_value is not None or entry.new_value is not None):
        return True
    return (
        bool(keys)
        and entry.details is not None
        and holds_personal(orjson.loads(entry.details), keys)
    )


def audit_item(entry: AuditEntry, *, disclose: bool) -> dict[str, Any]:
    """An audit entry as sent: unless ``disclose``, the old and new values of a
    personal field and the personal keys of ``details`` are left out and named in
    ``withheld`` (``old_value``, ``new_value``, ``details.<key>``)."""
    body = {f.name: getattr(entry, f.name) for f in fields(entry)}
    withheld: list[str] = []
    if not disclose:
        values, keys = _personal_parts(entry)
        if values:
            withheld += ["old_value", "new_value"]
            del body["old_value"], body["new_value"]
        if keys and entry.details is not None:
            details = orjson.loads(entry.details)
            left_out = sorted(keys & details.keys())
            withheld += [f"details.{key}" for key in left_out]
            kept = {key: value for key, value in details.items() if key not in keys}
            body["details"] = orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode()
    body["withheld"] = withheld
    return body
