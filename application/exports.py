"""Use case of the DataAccess aggregate: recording an export."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from application.unit_of_work import Outcome, UnitOfWork
from domain.access import DataAccess


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
