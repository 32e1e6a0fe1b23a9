"""Leads table: one row per client with the first instants that answer or close it
(``projections.leads``), for the lead KPIs, per manager, and the reminder timer."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from adapters.read_models.base import SqlReadModel, Table, chunks
from adapters.sql import Cursor, Database, as_datetime, as_optional_datetime, as_uuid
from projections import leads
from projections.base import Recorded
from projections.kpis import lead_values
from projections.leads import Lead

_COLUMNS = (
    "client_id, registered_at, recorded_at, owner_id, first_contact_at, first_follow_up_at,"
    " closed_at, erased_at, merged_into, flagged_at"
)


class LeadsReadModel(SqlReadModel):
    name = "leads"
    tables = (
        Table(
            "leads",
            "client_id {uuid} PRIMARY KEY, registered_at {ts} NOT NULL,"
            " recorded_at {ts} NOT NULL, owner_id {text}, first_contact_at {ts},"
            " first_follow_up_at {ts}, closed_at {ts}, erased_at {ts}, merged_into {uuid},"
            " flagged_at {ts}",
            indexes=("registered_at",),
            query_only=("registered_at",),
        ),
    )
    topics = leads.TOPICS

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        wanted = sorted({c for r in batch for c in leads.needs(r)})
        rows = self._rows(cursor, wanted)
        written: dict[UUID, Lead] = {}
        for recorded in batch:
            changed = leads.apply(rows, recorded)
            rows.update(changed)
            written.update(changed)
        if not written:
            return
        ids = sorted(written)
        for chunk in chunks(ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {self.t['leads']} WHERE client_id IN ({marks})", chunk)
        self.insert(cursor, "leads", _COLUMNS, [_row(written[i]) for i in ids])

    def _rows(self, cursor: Cursor, client_ids: list[UUID]) -> dict[UUID, Lead]:
        found: dict[UUID, Lead] = {}
        for chunk in chunks(client_ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {_COLUMNS} FROM {self.t['leads']} WHERE client_id IN ({marks})", chunk
            )
            found.update((lead.client_id, lead) for lead in map(_lead, cursor.fetchall()))
        return found

    # ------------------------------------------------------------------ queries

    def relevant(
        self, as_of: datetime, response_time: timedelta, window: timedelta = leads.RESPONSE_WINDOW
    ) -> list[Lead]:
        """Every row that can count in ``lead_values`` at ``as_of`` (the unanswered
        candidates and those contacted in the window): the rules themselves are
        applied in Python, by the same functions the KPI folds use."""
        return _relevant(self.db, self.t["leads"], as_of, response_time, window)

    def values(
        self, as_of: datetime, response_time: timedelta, *, owner_id: str | None = None
    ) -> dict[str, Any]:
        """The two lead KPIs at ``as_of``: over every lead, or over ``owner_id``'s."""
        rows = self.relevant(as_of, response_time)
        if owner_id is not None:
            rows = [lead for lead in rows if lead.owner_id == owner_id]
        return lead_values(rows, as_of, response_time)

    def per_owner(
        self, as_of: datetime, response_time: timedelta, since: datetime
    ) -> dict[str, dict[str, Any]]:
        """Per owner: leads unanswered at ``as_of`` and the median first response
        over their leads registered in (``since``, ``as_of``]."""
        window = max(as_of - since, timedelta(0))
        by_owner: dict[str, list[Lead]] = defaultdict(list)
        for lead in self.relevant(as_of, response_time, window):
            if lead.owner_id is not None:
                by_owner[lead.owner_id].append(lead)
        answer: dict[str, dict[str, Any]] = {}
        for owner, rows in by_owner.items():
            unanswered = sum(leads.unanswered_at(lead, as_of, response_time) for lead in rows)
            minutes = [
                m
                for lead in rows
                if (m := leads.first_response_minutes(lead, as_of, window)) is not None
            ]
            answer[owner] = {
                "unanswered_leads": unanswered,
                "median_first_response_minutes": leads.median_minutes(minutes),
            }
        return answer

    def to_flag(
        self, now: datetime, response_time: timedelta, since: datetime, limit: int = 500
    ) -> list[Lead]:
        """Leads past their deadline by ``now`` (a deadline at or after ``since``),
        neither answered, closed, erased, merged nor flagged yet; the aggregate has
        the last word."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM {self.t['leads']} WHERE flagged_at IS NULL"
            " AND merged_into IS NULL AND erased_at IS NULL AND closed_at IS NULL"
            " AND first_contact_at IS NULL AND first_follow_up_at IS NULL"
            " AND registered_at <= %s AND registered_at >= %s ORDER BY registered_at LIMIT %s",
            (now - response_time, since - response_time, limit),
        )
        found = [_lead(row) for row in rows]
        return [lead for lead in found if lead.recorded_at < lead.registered_at + response_time]


def _relevant(
    db: Database, table: str, as_of: datetime, response_time: timedelta, window: timedelta
) -> list[Lead]:
    rows = db.query(
        f"SELECT {_COLUMNS} FROM {table} WHERE merged_into IS NULL AND ("
        " (registered_at <= %s AND (first_contact_at IS NULL OR first_contact_at > %s)"
        "  AND (first_follow_up_at IS NULL OR first_follow_up_at > %s))"
        " OR (registered_at > %s AND registered_at <= %s AND first_contact_at <= %s))",
        (
            as_of - response_time,
            as_of,
            as_of,
            as_of - window,
            as_of,
            as_of,
        ),
    )
    return [_lead(row) for row in rows]


def _row(lead: Lead) -> tuple[Any, ...]:
    return (
        lead.client_id,
        lead.registered_at,
        lead.recorded_at,
        lead.owner_id,
        lead.first_contact_at,
        lead.first_follow_up_at,
        lead.closed_at,
        lead.erased_at,
        lead.merged_into,
        lead.flagged_at,
    )


def _lead(row: tuple[Any, ...]) -> Lead:
    (
        client_id,
        registered,
        recorded,
        owner,
        contact,
        follow_up,
        closed,
        erased,
        merged,
        flagged,
    ) = row
    return Lead(
        client_id=as_uuid(client_id),
        registered_at=as_datetime(registered),
        recorded_at=as_datetime(recorded),
        owner_id=owner,
        first_contact_at=as_optional_datetime(contact),
        first_follow_up_at=as_optional_datetime(follow_up),
        closed_at=as_optional_datetime(closed),
        erased_at=as_optional_datetime(erased),
        merged_into=None if merged is None else as_uuid(merged),
        flagged_at=as_optional_datetime(flagged),
    )
