"""Read models served as they are: lifecycle, funnel, KPIs, audit trail, the event
feed and the work queue; and the liveness and metrics endpoints."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, Literal
from uuid import UUID

import anyio.to_thread
from litestar import Controller, Request, Response, get
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromQuery, Parameter, QueryParameter
from litestar.response import Stream

from adapters.read_models.audit import AuditFilter, AuditReadModel
from adapters.read_models.funnel import FunnelReadModel
from adapters.read_models.kpis import KpiQueries, stage_counts_query
from adapters.read_models.paging import page_of
from api import push
from api.disclosure import audit_item, entry_holds_personal, event_holds_personal, event_item
from api.http import schemas
from api.http.auth import requires
from api.http.contract import EXPORT_LIMIT, OWN_FIGURES, documented
from api.http.params import (
    AsOf,
    Cursor,
    Instant,
    Limit,
    after_cursor,
    as_of_now,
    at_or_now,
    plain,
)
from api.http.support import (
    MAX_POSITION,
    MinPosition,
    crm_of,
    envelope,
    principal,
    reach_position,
    reads_of,
    wait_for_position,
)
from application.access import Permission
from domain.envelope import Source
from domain.pipeline import pipeline_id as pipeline_named

FUNNEL_ANSWERS = {
    404: "no pipeline of that name or id; or the owner named is another manager: a manager "
    "reads their own figures only"
}


def _now_or(value: datetime | None) -> datetime:
    return at_or_now(value, datetime.now(UTC))


class ReadRoutes(Controller):
    path = "/"
    tags = ["read models"]

    @get(
        "/lifecycle",
        guards=[requires(Permission.READ_MODELS)],
        summary="Clients per lifecycle stage at an instant",
        opt=documented(OWN_FIGURES),
    )
    async def lifecycle(
        self,
        request: Request[Any, Any, Any],
        as_of: Instant | None = AsOf,
        owner_id: FromQuery[str | None] = None,
        min_position: int | None = MinPosition,
    ) -> schemas.LifecycleCounts:
        """How many clients are in each lifecycle stage at an instant (default now):
        of one owner's clients with `owner_id`; a manager's own, always."""
        owner = principal(request).figures_of(owner_id)
        await reach_position(request, min_position)
        at, projected = as_of_now(as_of)
        counts = await reads_of(request).run(stage_counts_query(at, owner_id=owner))
        return schemas.LifecycleCounts(as_of=at, projected=projected, counts=counts)

    @get(
        "/funnel",
        guards=[requires(Permission.READ_MODELS)],
        summary="A pipeline's sales funnel at an instant",
        opt=documented(FUNNEL_ANSWERS),
    )
    async def funnel(
        self,
        request: Request[Any, Any, Any],
        pipeline: str = Parameter(
            default="default", max_length=200, description="A pipeline's name or id"
        ),
        as_of: Instant | None = AsOf,
        owner_id: FromQuery[str | None] = None,
        opened_from: FromQuery[Instant | None] = None,
        opened_to: FromQuery[Instant | None] = None,
        min_position: int | None = MinPosition,
    ) -> dict[str, Any]:
        """The sales funnel of one pipeline at an instant: per stage reached, current,
        conversions and days in stage; won, lost, win rate, lost reasons, sales cycle.
        A manager's covers their own deals, always. An unknown pipeline is a 404."""
        owner = principal(request).figures_of(owner_id)
        await reach_position(request, min_position)
        try:
            pipeline_id = UUID(pipeline)
        except ValueError:
            pipeline_id = pipeline_named(pipeline)
        model = crm_of(request).model(FunnelReadModel)
        at, projected = as_of_now(as_of)
        steps = model.funnel_steps(
            pipeline_id,
            at,
            owner_id=owner,
            opened_from=plain(opened_from),
            opened_to=plain(opened_to),
        )
        report = await reads_of(request).run_steps(steps)
        if not report.stages:  # every pipeline has a stage: there is none of that name or id
            raise NotFoundException(f"no pipeline {pipeline!r} (see GET /pipelines)")
        return {**asdict(report), "projected": projected}

    @get(
        "/kpis",
        guards=[requires(Permission.READ_MODELS)],
        sync_to_thread=True,
        summary="The business KPIs at an instant",
        opt=documented(OWN_FIGURES),
    )
    def kpis(
        self,
        request: Request[Any, Any, Any],
        as_of: Instant | None = AsOf,
        owner_id: FromQuery[str | None] = None,
        min_position: int | None = MinPosition,
    ) -> dict[str, Any]:
        """The business KPIs at an instant (money as exact decimal strings): over one
        owner's clients with `owner_id`; a manager's own, always."""
        owner = principal(request).figures_of(owner_id)
        crm = crm_of(request)
        wait_for_position(crm, min_position)
        at, projected = as_of_now(as_of)
        values = KpiQueries(crm.read_db, crm.settings.lead_response).values(at, owner_id=owner)
        return {"as_of": at, "projected": projected, **values}

    @get(
        "/audit",
        guards=[requires(Permission.AUDIT)],
        summary="The audit trail (JSON pages, or a CSV or JSON Lines export)",
        opt=documented(EXPORT_LIMIT),
    )
    async def audit(
        self,
        request: Request[Any, Any, Any],
        client_id: FromQuery[UUID | None] = None,
        deal_id: FromQuery[UUID | None] = None,
        actor_id: str | None = Parameter(default=None, max_length=63),
        field: str | None = Parameter(default=None, max_length=100),
        from_: Annotated[Instant | None, QueryParameter(name="from")] = None,
        to: FromQuery[Instant | None] = None,
        source: FromQuery[Source | None] = None,
        correlation_id: str | None = Parameter(
            default=None,
            max_length=128,
            description="The request that recorded the events (its X-Correlation-ID)",
        ),
        cursor: str | None = Cursor,
        limit: int = Limit,
        format: FromQuery[Literal["json", "csv", "jsonl"]] = "json",  # noqa: A002
        min_position: int | None = MinPosition,
    ) -> Response[Any]:
        """The audit trail: one entry per changed field (old and new value) and one per
        other event, with who, in what role, from where (`source`), in which request
        (`correlation_id`), when; filtered by any of them. Personal values only
        with the read_personal permission (a page holding some is counted against the
        export limit and recorded; without it they are left out and named in
        `withheld`). `format=csv|jsonl` exports every matching entry (export
        permission; rate-limited; recorded)."""
        await reach_position(request, min_position)
        model = crm_of(request).model(AuditReadModel)
        filters: dict[str, Any] = {
            "client_id": client_id,
            "deal_id": deal_id,
            "actor_id": actor_id,
            "field": field,
            "occurred_from": plain(from_),
            "occurred_to": plain(to),
            "source": source,
            "correlation_id": correlation_id,
        }
        if format != "json":
            return await anyio.to_thread.run_sync(_audit_export, request, filters, format)
        try:
            query = model.page_query(AuditFilter(**filters), limit=limit, cursor=cursor)
        except ValueError as error:
            raise ClientException(str(error)) from None
        page = await reads_of(request).run(query)
        disclose = await anyio.to_thread.run_sync(
            partial(
                crm_of(request).exports.disclose,
                envelope(request),
                personal=any(map(entry_holds_personal, page.entries)),
                kind="audit",
                filters={**filters, "cursor": cursor, "limit": limit},
                up_to_position=page.entries[-1].position if page.entries else None,
            )
        )
        items = [audit_item(entry, disclose=disclose) for entry in page.entries]
        return Response({"items": items, "next_cursor": page.next_cursor})

    @get(
        "/events",
        guards=[requires(Permission.AUDIT)],
        sync_to_thread=True,
        summary="The event feed, in position order",
        opt=documented(EXPORT_LIMIT),
    )
    def events(
        self,
        request: Request[Any, Any, Any],
        after: int = Parameter(
            default=0, ge=0, le=MAX_POSITION, description="Events after this position"
        ),
        limit: int = Parameter(default=100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """The event feed, in position order, with each event's envelope; follow it with
        `after` = the previous page's `next_after`. Personal values only with the
        read_personal permission (a page holding some is counted against the export
        limit and recorded); without it they are left out and named in `redacted`."""
        crm = crm_of(request)
        notifications = crm.app.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
        events = [(n.id, crm.app.mapper.to_domain_event(n)) for n in notifications]
        last = events[-1][0] if events else after
        disclose = crm.exports.disclose(
            envelope(request),
            personal=any(event_holds_personal(event) for _, event in events),
            kind="events",
            filters={"after": after, "limit": limit},
            up_to_position=last,
        )
        items = [event_item(event, disclose=disclose, position=p) for p, event in events]
        return {"items": items, "next_after": last}

    @get(
        "/work-queue",
        guards=[requires(Permission.READ_MODELS)],
        sync_to_thread=True,
        summary="Follow-ups due and overdue",
        opt=documented(OWN_FIGURES),
    )
    def work_queue(
        self,
        request: Request[Any, Any, Any],
        assignee_id: str | None = Parameter(default=None, max_length=63),
        within_hours: int = Parameter(
            default=24, ge=0, le=24 * 90, description="Follow-ups due within this many hours"
        ),
        limit: int = Limit,
        cursor: str | None = Cursor,
        min_position: int | None = MinPosition,
    ) -> dict[str, Any]:
        """Follow-ups due in the next hours and overdue ones (`kind` FollowUpScheduled,
        or FollowUpDue once due) and leads left unanswered (LeadUnanswered), earliest
        first, a page at a time; with the client's name, phones and the note where the
        caller may read them (else listed in `redacted`); a manager sees their own,
        unassigned leads are the admins'."""
        after = after_cursor(cursor, 2, lambda key: (datetime.fromisoformat(key[0]), UUID(key[1])))
        crm = crm_of(request)
        wait_for_position(crm, min_position)
        items = push.work_queue_items(
            crm,
            principal(request),
            within_hours=within_hours,
            assignee_id=assignee_id,
            after=after,
            limit=limit + 1,
        )
        page = page_of(items, limit, _work_item_key)
        return {"items": page.items, "next_cursor": page.next_cursor}

    @get(
        "/activity",
        guards=[requires(Permission.READ_MODELS)],
        sync_to_thread=True,
        summary="What each manager did over a period",
        opt=documented(OWN_FIGURES),
    )
    def activity(
        self,
        request: Request[Any, Any, Any],
        since: Instant | None = Parameter(
            default=None, description="The period's start (default: 30 days before its end)"
        ),
        until: Instant | None = Parameter(
            default=None, description="The period's end, excluded (default: now)"
        ),
        actor_id: str | None = Parameter(default=None, max_length=63),
        limit: int = Limit,
        cursor: str | None = Cursor,
        min_position: int | None = MinPosition,
    ) -> dict[str, Any]:
        """What each manager did over a period in business time (default: the 30 days
        before now): contacts, follow-ups done on time or late, deals moved and won;
        their leads unanswered at the period's end and the median minutes from
        registration to first contact over their leads registered in the period. One
        item per person, by actor id, a page at a time; a manager sees their own."""
        actor = principal(request).figures_of(actor_id)
        after = after_cursor(cursor, 1, lambda key: key[0])
        crm = crm_of(request)
        wait_for_position(crm, min_position)
        end = _now_or(until)
        start = _now_or(since) if since else end - timedelta(days=30)
        people = push.activity_with_leads(crm, since=start, until=end, actor_id=actor)
        # One item per person: the staff, however long the history, so paged here.
        later = [person for person in people if after is None or person["actor_id"] > after]
        page = page_of(later[: limit + 1], limit, lambda person: (person["actor_id"],))
        return {"items": page.items, "next_cursor": page.next_cursor}


def _work_item_key(item: dict[str, Any]) -> tuple[str, str]:
    """A work item's place in the queue: due instant, then its follow-up's or lead's id."""
    return item["due_at"].isoformat(), str(item["task_id"] or item["client_id"])


def _audit_export(
    request: Request[Any, Any, Any],
    filters: dict[str, Any],
    format: str,  # noqa: A002
) -> Stream:
    """Every matching audit entry as CSV or JSON Lines, the export recorded first."""
    crm = crm_of(request)
    crm.exports.export(envelope(request), kind="audit", format=format, filters=filters)
    model = crm.model(AuditReadModel)
    rows = model.export_csv(**filters) if format == "csv" else model.export_jsonl(**filters)
    media = "text/csv" if format == "csv" else "application/jsonl"  # litestar adds the charset
    return Stream(
        rows,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="audit.{format}"'},
    )
