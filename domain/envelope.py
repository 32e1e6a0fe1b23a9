"""The envelope: who did what, when, from where, and why, stamped on every event.

A use case opens ``recording(envelope)`` around its domain calls; the base aggregate
reads the current envelope when it triggers an event, so command methods never take
attribution arguments. A context variable keeps concurrent requests apart (threads
and asyncio tasks each see their own).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, get_args

from domain.errors import InvalidValue, MissingEnvelope

Source = Literal["api", "import", "automation", "system", "cli"]
SOURCES: tuple[str, ...] = get_args(Source)

Role = Literal["admin", "manager", "auditor", "service", "system"]
ROLES: tuple[str, ...] = get_args(Role)


@dataclass(frozen=True)
class Envelope:
    """Attribution of one command, copied onto each event the command records.

    ``occurred_at`` is business time (when it happened in the world); ``None`` means
    "now", the moment the event is recorded. It may be back-dated, never in the future.
    """

    actor_id: str
    actor_role: Role
    source: Source
    correlation_id: str
    causation_id: str | None = None
    occurred_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.actor_id.strip():
            raise InvalidValue("actor_id must not be empty", field="actor_id")
        if self.actor_role not in ROLES:
            raise InvalidValue(f"unknown actor role {self.actor_role!r}", field="actor_role")
        if self.source not in SOURCES:
            raise InvalidValue(f"unknown source {self.source!r}", field="source")
        if self.occurred_at is not None:
            if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
                raise InvalidValue("occurred_at must carry a timezone", field="occurred_at")
            object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))

    def caused_by(self, causation_id: str) -> Envelope:
        """The same attribution for an event caused by another event or command."""
        return replace(self, causation_id=causation_id)


_current: ContextVar[Envelope | None] = ContextVar("crm_envelope", default=None)


@contextmanager
def recording(envelope: Envelope) -> Iterator[Envelope]:
    """Make ``envelope`` the attribution of every event triggered inside the block."""
    token = _current.set(envelope)
    try:
        yield envelope
    finally:
        _current.reset(token)


def current_envelope() -> Envelope:
    """The envelope of the command being executed; a programming error if there is none."""
    envelope = _current.get()
    if envelope is None:
        raise MissingEnvelope(
            "aggregate commands must run inside domain.envelope.recording(envelope)"
        )
    return envelope


def event_id(originator_id: object, originator_version: int) -> str:
    """A stable identifier of one event, used as the causation id of events it causes."""
    return f"{originator_id}@{originator_version}"


def utc_now() -> datetime:
    return datetime.now(UTC)
