"""Records of reading personal data in bulk or about one subject.

SPEC §5: "bulk export needs the export permission, is rate-limited, and is itself
recorded (who exported what, when)"; §8: bulk reads of personal values (feed,
directory pages, audit pages, history) "are recorded as ``DataExported``". Each
export is a record of its own, so concurrent exports never contend for one
aggregate.
"""

from __future__ import annotations

from typing import Literal, Self, get_args
from uuid import UUID, uuid4

from domain.base import CrmAggregate
from domain.errors import InvalidValue

ExportKind = Literal["audit", "clients", "events", "history", "subject"]
"""What was read: the audit trail, the client directory, the event feed, one
client's events, or everything held about one client."""
EXPORT_KINDS: tuple[str, ...] = get_args(ExportKind)
ABOUT_ONE_CLIENT = frozenset({"history", "subject"})
"""Kinds that read about one client, whom the record names."""


class DataAccess(CrmAggregate):
    """Who read what, when: a bulk export or a subject's data export."""

    class Event(CrmAggregate.Event):
        pass

    class DataExported(Event, CrmAggregate.Created):
        kind: str
        client_id: UUID | None
        filters: dict[str, str]
        format: str
        up_to_position: int

    def __init__(
        self,
        *,
        kind: str,
        client_id: UUID | None,
        filters: dict[str, str],
        format: str,  # noqa: A002 (the event's field)
        up_to_position: int,
    ) -> None:
        self.kind = kind
        self.client_id = client_id
        self.filters = dict(filters)
        self.format = format
        self.up_to_position = up_to_position

    @classmethod
    def record_export(
        cls,
        *,
        kind: str,
        filters: dict[str, str],
        format: str,  # noqa: A002
        up_to_position: int,
        client_id: UUID | None = None,
    ) -> Self:
        """An export was made; ``filters`` and ``up_to_position`` say exactly what it
        held (the same query at that position gives the same rows)."""
        if kind not in EXPORT_KINDS:
            raise InvalidValue(f"unknown export kind {kind!r}", field="kind")
        if (kind in ABOUT_ONE_CLIENT) != (client_id is not None):
            raise InvalidValue(
                "an export about one client (history, subject) names that client, and only it",
                field="kind",
            )
        return cls._create(
            cls.DataExported,
            id=uuid4(),
            kind=kind,
            client_id=client_id,
            filters=dict(filters),
            format=format,
            up_to_position=up_to_position,
        )
