"""Exports and bulk reads of personal data: the permission each needs, the limit they
count against, and their record — one use case for every route and the command line.

SPEC §5: "bulk export needs the export permission, is rate-limited, and is itself
recorded (who exported what, when)". §8: "Bulk reads of personal values (feed,
directory pages, audit pages, history) need ``read_personal``, count against the
export limit and are recorded as ``DataExported``; without it, personal fields are
absent". The limit is counted in the store (``ports.ExportCounts``), so every
process enforces the same one and a restart does not reset it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from application.access import Permission, Principal
from application.errors import ExportLimitReached
from application.ports import EventRecorder, ExportCounts
from application.unit_of_work import Outcome, UnitOfWork
from domain.access import DataAccess
from domain.envelope import Envelope


class Commands(Protocol):
    """What exports need of the application (``CrmApplication``): the store's head,
    and running the command that records an export."""

    @property
    def recorder(self) -> EventRecorder: ...

    def execute(self, command: object, envelope: Envelope) -> object: ...


WINDOW_SECONDS = 3600
"""The limit counts per clock hour (UTC): ``export_rate_per_hour`` in each."""
SEARCH_FILTERS = frozenset({"text"})
"""Filters that may hold personal values (a search text may be a name): the record
keeps only that there was one."""


@dataclass(frozen=True, kw_only=True)
class RecordExport:
    kind: str
    format: str
    up_to_position: int
    filters: dict[str, str] = field(default_factory=dict)
    client_id: UUID | None = None


def record_export(uow: UnitOfWork, cmd: RecordExport) -> Outcome:
    """Exports are recorded before a byte of them is sent."""
    if cmd.client_id is not None:
        uow.client(cmd.client_id)  # the subject must exist (and be visible)
    return Outcome(
        uow.add(
            DataAccess.record_export(
                kind=cmd.kind,
                filters=cmd.filters,
                format=cmd.format,
                up_to_position=cmd.up_to_position,
                client_id=cmd.client_id,
            )
        )
    )


class Exports:
    """What every export and every bulk read of personal values goes through."""

    def __init__(
        self,
        app: Commands,
        counts: ExportCounts,
        per_hour: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.counts = counts
        self.per_hour = per_hour
        self.clock = clock

    def export(
        self,
        by: Envelope,
        *,
        kind: str,
        format: str,  # noqa: A002 (the event's field)
        filters: Mapping[str, Any],
        client_id: UUID | None = None,
    ) -> int:
        """A file of many records (CSV, JSON Lines) or everything held about one
        client: refused without the ``export`` permission (``PermissionDenied``) or
        over the limit (``ExportLimitReached``); otherwise recorded, with the filters
        and the store's head position that say what it holds, before a byte of it
        is sent. Returns that position."""
        Principal(by.actor_id, by.actor_role).require(Permission.EXPORT)
        return self._record(
            by, kind=kind, format=format, filters=filters, client_id=client_id, up_to_position=None
        )

    def disclose(
        self,
        by: Envelope,
        *,
        personal: bool,
        kind: str,
        filters: Mapping[str, Any],
        up_to_position: int | None = None,
        client_id: UUID | None = None,
        format: str = "json",  # noqa: A002
    ) -> bool:
        """Whether a read of many records — a page of the feed, of the directory or of
        the audit trail, a client's history — may carry personal values to ``by``.

        Without ``read_personal``: no, and nothing is recorded (the caller leaves the
        personal fields out). With it: yes; and a read that carries any
        (``personal``) is first counted against the export limit
        (``ExportLimitReached`` when over) and recorded as ``DataExported`` with its
        filters and the last position it covers (``None``: the store's head)."""
        if not Principal(by.actor_id, by.actor_role).may(Permission.READ_PERSONAL):
            return False
        if personal:
            self._record(
                by,
                kind=kind,
                format=format,
                filters=filters,
                client_id=client_id,
                up_to_position=up_to_position,
            )
        return True

    def _record(
        self,
        by: Envelope,
        *,
        kind: str,
        format: str,  # noqa: A002
        filters: Mapping[str, Any],
        client_id: UUID | None,
        up_to_position: int | None,
    ) -> int:
        """Take one from the limit, then record; the position recorded."""
        self._take(by.actor_id)
        if up_to_position is None:
            up_to_position = self.app.recorder.max_notification_id() or 0
        command = RecordExport(
            kind=kind,
            format=format,
            up_to_position=up_to_position,
            filters={
                name: "(text)" if name in SEARCH_FILTERS else str(value)
                for name, value in filters.items()
                if value is not None
            },
            client_id=client_id,
        )
        self.app.execute(command, by)
        return up_to_position

    def _take(self, user_id: str) -> None:
        """Count one export for the user in this hour, or refuse: at most
        ``per_hour`` in each clock hour."""
        now = self.clock()
        window = int(now // WINDOW_SECONDS) * WINDOW_SECONDS
        if not self.counts.take(user_id, window, self.per_hour):
            retry_after = max(1, math.ceil(window + WINDOW_SECONDS - now))
            raise ExportLimitReached(self.per_hour, retry_after)
