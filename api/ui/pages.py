"""The console's pages. Each reads what the API route it mirrors reads — the same
read models, queries and permission — and renders it; none computes a figure of its
own."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import orjson
from litestar import Controller, Request, get, post
from litestar.enums import RequestEncodingType
from litestar.exceptions import ClientException, NotFoundException, PermissionDeniedException
from litestar.params import Body, FromPath, QueryParameter
from litestar.response import Stream, Template

from adapters.read_models.audit import AuditFilter, AuditReadModel
from adapters.read_models.chain import ChainReadModel, VerifyReport, verify
from adapters.read_models.deals import DealsReadModel
from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.funnel import FunnelReadModel
from adapters.read_models.kpis import KpiQueries, losses_query, stage_counts_query
from adapters.read_models.lifecycle import LifecycleReadModel
from api.bootstrap import Crm
from api.disclosure import entry_holds_personal
from api.http.hygiene import unstorable_parameters
from api.http.reads import _audit_export
from api.http.support import envelope
from api.ui.access import Need, may, own_records_of
from api.ui.charts import (
    PALETTE,
    STAGE_COLOURS,
    Series,
    Stay,
    colour_of,
    horizontal_bars,
    lifecycle_strip,
    stacked_columns,
)
from api.ui.definitions import (
    FUNNEL_DEFINITIONS,
    KPI_DEFINITIONS,
    KPI_LABELS,
    STAGE_DEFINITIONS,
)
from api.ui.security import check_form_token, same_origin
from api.ui.views import (
    MAX_MONTHS,
    crm_of,
    instant_of,
    months_between,
    next_month,
    parse_day,
    parse_month,
    percent,
    previous_quarter,
    quarter_start,
    render,
    start_of,
    user_of,
)
from application.access import OWNER_ROLES
from domain.envelope import SOURCES
from domain.lifecycle import Stage
from domain.pipeline import pipeline_id as pipeline_named
from projections.audit import AuditEntry, redacted
from projections.directory import ClientCard

AUDIT_PAGE = 50
TIMELINE_PAGE = 200
"""Audit entries per page of a client's timeline (grouped by event)."""
_PHONE_LIKE = re.compile(r"\+?[\d\s().\-/]{5,40}")
_MICROSECOND = timedelta(microseconds=1)
Text = Annotated[str, QueryParameter(max_length=200)]
Day = Annotated[str, QueryParameter(max_length=10)]
From = Annotated[str, QueryParameter(name="from", max_length=10)]
To = Annotated[str, QueryParameter(name="to", max_length=10)]
FieldName = Annotated[str, QueryParameter(name="field", max_length=100)]


def _require(request: Request[Any, Any, Any], need: Need) -> None:
    user = user_of(request)
    if not may(user, need):
        raise PermissionDeniedException(f"the {user.role} role may not open this page")


def _now() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ dashboard


@dataclass(frozen=True)
class Period:
    """A period of whole days ``[start, end)`` chosen by its first and last day."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return start_of(self.first)

    @property
    def end(self) -> datetime:
        return start_of(self.last + timedelta(days=1))


def _losses(
    crm: Crm, period: Period, as_of: datetime, owner_id: str | None
) -> list[tuple[str, dict[str, int]]]:
    """Clients lost in each month of the period (its part of the month), by reason,
    counted up to ``as_of``: a stay that begins later has not happened yet."""
    until = min(period.end, as_of + _MICROSECOND)
    months = []
    for month in months_between(period.first, period.last):
        start = max(start_of(month), period.start)
        end = min(start_of(next_month(month)), until)
        query = losses_query(start, end, owner_id=owner_id)
        counts = crm.read_db.run(query) if start < end else {}
        months.append((month.strftime("%Y-%m"), counts))
    return months


class DashboardPage(Controller):
    path = "/"

    @get("/", sync_to_thread=True)
    def dashboard(
        self,
        request: Request[Any, Any, Any],
        as_of: Day = "",
        lost_from: Day = "",
        lost_to: Day = "",
    ) -> Template:
        """The KPIs of SPEC §4 as of a day (default now), and the clients lost in a
        period (default the last full quarter), by reason and month."""
        _require(request, "read_models")
        crm = crm_of(request)
        now = _now()
        chosen = parse_day(as_of, "as of")
        at = instant_of(chosen, now)
        owner = user_of(request).figures_of(None)  # a manager's figures are their own
        kpis = KpiQueries(crm.read_db, crm.settings.lead_response).values(at, owner_id=owner)
        first, last = previous_quarter(at.date())
        period = Period(parse_day(lost_from, "from") or first, parse_day(lost_to, "to") or last)
        if period.last < period.first:
            raise ClientException("the period must end on or after the day it starts")
        if len(months_between(period.first, period.last)) > MAX_MONTHS:
            raise ClientException(f"choose a period of at most {MAX_MONTHS} months")
        by_month = _losses(crm, period, at, owner)
        lost = sum((Counter(counts) for _, counts in by_month), Counter[str]())
        reasons = sorted(lost)
        stages = [(stage.value, kpis["stage_counts"].get(stage.value, 0)) for stage in Stage]
        this_quarter = quarter_start(at.date())
        return render(
            request,
            "dashboard.html",
            title="Dashboard",
            as_of=at,
            chosen=chosen.isoformat() if chosen else "",
            kpis=kpis,
            definitions=KPI_DEFINITIONS,
            labels=KPI_LABELS,
            stage_definitions=STAGE_DEFINITIONS,
            extra_keys=[k for k in kpis if k not in KPI_DEFINITIONS and k != "churn_period"],
            stages=stages,
            stage_chart=horizontal_bars(
                stages,
                title="Clients per lifecycle stage",
                description=", ".join(f"{s}: {n}" for s, n in stages),
                x_label="clients",
                colours=[STAGE_COLOURS[s] for s, _ in stages],
            ),
            period=period,
            lost=dict(lost.most_common()),
            lost_total=lost.total(),
            by_month=by_month,
            reasons=reasons,
            lost_chart=stacked_columns(
                [month for month, _ in by_month],
                [
                    Series(r, [c.get(r, 0) for _, c in by_month], colour_of(r, i))
                    for i, r in enumerate(reasons)
                ],
                title="Clients lost per month, by reason",
                description="; ".join(f"{m}: {sum(c.values())}" for m, c in by_month),
                x_label="month",
                y_label="clients lost",
                plot_height=180,
            ),
            quick_periods=[
                ("Last quarter", *previous_quarter(at.date())),
                ("This quarter", this_quarter, at.date()),
                ("Last 12 months", next_month(date(at.year - 1, at.month, 1)), at.date()),
            ],
        )


# -------------------------------------------------------------------- clients


@dataclass(frozen=True)
class ShownCard:
    """A card as the console shows it: personal values only for who may read them."""

    card: ClientCard
    stage: str | None
    personal: bool

    @property
    def name(self) -> str:
        if self.card.erased:
            return "(erased)"
        return self.card.name if self.personal else "(hidden)"

    def _values(self, values: tuple[str, ...] | str | None) -> str:
        if not self.personal:
            return "(hidden)"
        if isinstance(values, tuple):
            return ", ".join(values) or "—"
        return values or "—"

    @property
    def phones(self) -> str:
        return self._values(self.card.phones)

    @property
    def emails(self) -> str:
        return self._values(self.card.emails)

    @property
    def company(self) -> str:
        return self._values(self.card.company)

    @property
    def address(self) -> str:
        return self._values(self.card.address)

    @property
    def attributes(self) -> list[tuple[str, str]]:
        if not self.personal:
            return [(key, "(hidden)") for key in sorted(self.card.attributes)]
        return sorted(self.card.attributes.items())


@dataclass
class Found:
    cards: list[ShownCard] = field(default_factory=list)
    next_cursor: str | None = None
    note: str | None = None


def _search(request: Request[Any, Any, Any], q: str, cursor: str | None) -> Found:
    """The directory's search, as ``GET /clients?q=`` answers it, and before it, on the
    first page, the card holding the phone or email typed (``GET /clients/lookup``):
    a national number is read in ``CRM_DEFAULT_COUNTRY`` there."""
    user = user_of(request)
    crm = crm_of(request)
    personal = may(user, "read_personal")
    directory = crm.model(DirectoryReadModel)
    text = q.strip()
    if text and not personal:
        return Found(note="Searching by name, phone or email needs a role that may read them.")
    if unstorable_parameters([("q", text)]):
        raise ClientException("the search holds a character that cannot be searched for")
    now = _now()
    found = Found()
    if text and cursor is None and ("@" in text or _PHONE_LIKE.fullmatch(text)):
        kind = "email" if "@" in text else "phone"
        query = directory.lookup_query(**{kind: text}, at=now)
        staged = None if query is None else crm.read_db.run(query)
        if staged is not None and user.sees(staged[0].owner_id):
            found.cards.append(ShownCard(staged[0], _stage(staged[1]), personal))
    needle = re.sub(r"[\s().\-/]", "", text) if _PHONE_LIKE.fullmatch(text) else text
    try:
        page = directory.search(
            at=now,
            text=needle or None,
            visible_to=own_records_of(user),
            limit=50,
            cursor=cursor,
        )
    except ValueError as error:
        raise ClientException(str(error)) from None
    seen = {shown.card.client_id for shown in found.cards}
    found.cards += [
        ShownCard(card, _stage(stage), personal)
        for card, stage in zip(page.cards, page.stages, strict=True)
        if card.client_id not in seen
    ]
    if personal and found.cards:  # a page of cards is a bulk read, as GET /clients's
        crm.exports.disclose(
            envelope(request),
            personal=True,
            kind="clients",
            filters={"text": needle or None, "cursor": cursor, "limit": 50},
        )
    found.next_cursor = page.next_cursor
    return found


def _stage(stage: Stage | None) -> str | None:
    return stage.value if stage else None


def _visible_card(
    request: Request[Any, Any, Any], client_id: UUID
) -> tuple[ClientCard, str | None]:
    """The client's card and stage now; a 404 for an unknown client, and for another
    manager's (as the API answers: ids cannot be probed)."""
    crm = crm_of(request)
    staged = crm.read_db.run(crm.model(DirectoryReadModel).staged_card_query(client_id, _now()))
    if staged is None or not user_of(request).sees(staged[0].owner_id):
        raise NotFoundException(f"no client {client_id}")
    return staged[0], _stage(staged[1])


@dataclass(frozen=True)
class Change:
    field: str
    old: str | None
    new: str | None


@dataclass
class Happening:
    """One event of a timeline or audit page: its envelope, and what it changed."""

    first: AuditEntry
    changes: list[Change] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)
    hidden: bool = False
    erased: bool = False


def _disclosed(
    request: Request[Any, Any, Any], entries: list[AuditEntry], filters: dict[str, Any]
) -> bool:
    """Whether a page of audit entries may show personal values: as the API's audit
    pages, through ``Exports.disclose`` — without ``read_personal`` no; with it yes,
    and a page holding any is counted against the export limit and recorded."""
    return crm_of(request).exports.disclose(
        envelope(request),
        personal=any(map(entry_holds_personal, entries)),
        kind="audit",
        filters=filters,
        up_to_position=entries[-1].position if entries else None,
    )


def _details(entry: AuditEntry) -> list[tuple[str, str]]:
    if not entry.details:
        return []
    try:
        payload = orjson.loads(entry.details)
    except orjson.JSONDecodeError:
        return [("details", entry.details)]
    if not isinstance(payload, dict):
        return [("details", entry.details)]
    return [(str(k), _shown(v)) for k, v in payload.items()]


def _listed(value: str | None) -> str | None:
    """A list value (kept as a JSON array: phones, emails) as its items, comma-separated."""
    if value is None or not value.startswith("["):
        return value
    try:
        items = orjson.loads(value)
    except orjson.JSONDecodeError:
        return value
    return ", ".join(map(str, items)) if isinstance(items, list) else value


def _shown(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def happenings(entries: list[AuditEntry], *, personal: bool) -> list[Happening]:
    """Entries grouped by event (one per position), personal values purged for who
    may not read them (as an erasure purges them: ``projections.audit.redacted``)."""
    grouped: list[Happening] = []
    for original in entries:
        entry = original if personal else redacted(original)
        hidden = entry is not original and not original.redacted
        if not grouped or grouped[-1].first.position != entry.position:
            grouped.append(Happening(entry))
        happening = grouped[-1]
        happening.hidden |= hidden
        happening.erased |= original.redacted
        if entry.field is not None:
            old, new = _listed(entry.old_value), _listed(entry.new_value)
            happening.changes.append(Change(entry.field, old, new))
        happening.details += _details(entry)
    return grouped


class ClientPages(Controller):
    path = "/clients"

    @get("/", sync_to_thread=True)
    def clients(self, request: Request[Any, Any, Any], q: Text = "", cursor: Text = "") -> Template:
        """The directory, newest first; ``q`` searches it (the console's own form posts
        the search instead, so that no name or phone lands in a URL)."""
        _require(request, "read_models")
        found = _search(request, q, cursor or None)
        return render(request, "clients.html", title="Clients", q=q, found=found)

    @post("/", sync_to_thread=True, status_code=200)
    def search(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        """Search by name, phone (national or international) or email."""
        _require(request, "read_models")
        same_origin(request)
        check_form_token(request.auth, data.get("form_token"))
        q = data.get("q", "")[:200]
        found = _search(request, q, data.get("cursor") or None)
        return render(request, "clients.html", title="Clients", q=q, found=found)

    @get("/{client_id:uuid}", sync_to_thread=True)
    def card(
        self, request: Request[Any, Any, Any], client_id: FromPath[UUID], cursor: Text = ""
    ) -> Template:
        """The card, the lifecycle strip, and every event with its envelope."""
        _require(request, "read_models")
        crm = crm_of(request)
        card, stage = _visible_card(request, client_id)
        personal = may(user_of(request), "read_personal")
        intervals = crm.read_db.run(crm.model(LifecycleReadModel).intervals_query(client_id))
        now = _now()
        stays = [Stay(i.stage.value, i.valid_from, i.valid_to, i.reason) for i in intervals]
        try:
            query = crm.model(AuditReadModel).page_query(
                AuditFilter(client_id=client_id), limit=TIMELINE_PAGE, cursor=cursor or None
            )
        except ValueError as error:
            raise ClientException(str(error)) from None
        page = crm.read_db.run(query)
        disclosed = _disclosed(request, page.entries, {"client_id": client_id, "cursor": cursor})
        shown = ShownCard(card, stage, personal)
        return render(
            request,
            "client.html",
            title=f"Client {shown.name}",
            shown=shown,
            intervals=intervals,
            now=now,
            strip=lifecycle_strip(stays, now=now, title="Lifecycle stages over time"),
            stage_definitions=STAGE_DEFINITIONS,
            timeline=happenings(page.entries, personal=disclosed),
            next_cursor=page.next_cursor,
        )


# ---------------------------------------------------------------------- audit


def _audit_filters(
    client_id: str, actor_id: str, field_name: str, source: str, first: str, last: str
) -> dict[str, Any]:
    """The audit trail's filters from the form, as ``GET /audit`` takes them (``to``
    is the last day included)."""
    try:
        client = UUID(client_id) if client_id else None
    except ValueError:
        raise ClientException("the client must be a client id") from None
    if source and source not in SOURCES:
        raise ClientException(f"the source must be one of {', '.join(SOURCES)}")
    start, end = parse_day(first, "from"), parse_day(last, "to")
    return {
        "client_id": client,
        "deal_id": None,
        "actor_id": actor_id or None,
        "field": field_name or None,
        "source": source or None,
        "occurred_from": start_of(start) if start else None,
        "occurred_to": start_of(end + timedelta(days=1)) if end else None,
    }


AuditParams = Annotated[str, QueryParameter(max_length=100)]


class AuditPages(Controller):
    path = "/audit"

    @get("/", sync_to_thread=True)
    def audit(
        self,
        request: Request[Any, Any, Any],
        client_id: AuditParams = "",
        actor_id: AuditParams = "",
        field_name: FieldName = "",
        source: AuditParams = "",
        first: From = "",
        last: To = "",
        cursor: Text = "",
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = AUDIT_PAGE,
    ) -> Template:
        """The audit trail with its filters, a page at a time."""
        _require(request, "audit")
        filters = _audit_filters(client_id, actor_id, field_name, source, first, last)
        crm = crm_of(request)
        try:
            query = crm.model(AuditReadModel).page_query(
                AuditFilter(**filters), limit=limit, cursor=cursor or None
            )
        except ValueError as error:
            raise ClientException(str(error)) from None
        page = crm.read_db.run(query)
        form = {
            "client_id": client_id,
            "actor_id": actor_id,
            "field": field_name,
            "source": source,
            "from": first,
            "to": last,
        }
        link = {k: v for k, v in form.items() if v}
        if limit != AUDIT_PAGE:
            link["limit"] = str(limit)
        return render(
            request,
            "audit.html",
            title="Audit trail",
            form=form,
            query=link,
            sources=SOURCES,
            entries=happenings(
                page.entries,
                personal=_disclosed(request, page.entries, {**filters, "cursor": cursor}),
            ),
            next_cursor=page.next_cursor,
            cursor=cursor,
            may_export=may(user_of(request), "export"),
        )

    @get("/export.csv", sync_to_thread=True)
    def export(
        self,
        request: Request[Any, Any, Any],
        client_id: AuditParams = "",
        actor_id: AuditParams = "",
        field_name: FieldName = "",
        source: AuditParams = "",
        first: From = "",
        last: To = "",
    ) -> Stream:
        """Every matching entry as CSV: what ``GET /audit?format=csv`` sends, made by the
        same code (export permission, the user's export limit, the export recorded as
        ``DataExported`` before a byte is sent)."""
        _require(request, "audit")
        filters = _audit_filters(client_id, actor_id, field_name, source, first, last)
        return _audit_export(request, filters, "csv")


# ------------------------------------------------------------------ lifecycle


class LifecyclePage(Controller):
    path = "/lifecycle"

    @get("/", sync_to_thread=True)
    def lifecycle(
        self,
        request: Request[Any, Any, Any],
        first: Annotated[str, QueryParameter(name="from", max_length=7)] = "",
        last: Annotated[str, QueryParameter(name="to", max_length=7)] = "",
    ) -> Template:
        """Clients per stage at the end of each month of a range (the current month:
        now), as ``GET /lifecycle?as_of=`` counts them."""
        _require(request, "read_models")
        crm = crm_of(request)
        owner = user_of(request).figures_of(None)  # a manager's figures are their own
        now = _now()
        this_month = date(now.year, now.month, 1)
        end = parse_month(last, "to") or this_month
        start = parse_month(first, "from") or next_month(date(end.year - 1, end.month, 1))
        months = months_between(start, end)
        if not months:
            raise ClientException("the range must end in or after the month it starts")
        if len(months) > MAX_MONTHS:
            raise ClientException(f"choose a range of at most {MAX_MONTHS} months")
        rows = []
        for month in months:
            at = min(start_of(next_month(month)) - _MICROSECOND, now)
            counts = crm.read_db.run(stage_counts_query(at, owner_id=owner))
            rows.append((month.strftime("%Y-%m"), at, counts))
        names = [stage.value for stage in Stage]
        return render(
            request,
            "lifecycle.html",
            title="Lifecycle",
            first=start.strftime("%Y-%m"),
            last=end.strftime("%Y-%m"),
            rows=rows,
            stages=names,
            stage_definitions=STAGE_DEFINITIONS,
            chart=stacked_columns(
                [label for label, _, _ in rows],
                [Series(s, [c[s] for _, _, c in rows], STAGE_COLOURS[s]) for s in names],
                title="Clients per lifecycle stage at the end of each month",
                description="; ".join(
                    f"{label}: " + ", ".join(f"{s} {c[s]}" for s in names) for label, _, c in rows
                ),
                x_label="month (counts at its end)",
                y_label="clients",
            ),
        )


# --------------------------------------------------------------------- funnel


class FunnelPage(Controller):
    path = "/funnel"

    @get("/", sync_to_thread=True)
    def funnel(
        self,
        request: Request[Any, Any, Any],
        pipeline: Text = "",
        as_of: Day = "",
        owner_id: Annotated[str, QueryParameter(max_length=63)] = "",
        opened_from: Day = "",
        opened_to: Day = "",
    ) -> Template:
        """A pipeline's funnel as of a day, for an owner and deals opened in a period
        if asked: what ``GET /funnel`` answers."""
        _require(request, "read_models")
        crm = crm_of(request)
        pipelines = crm.model(DealsReadModel).pipelines()
        chosen = pipeline or "default"
        try:
            pipeline_id = UUID(chosen)
        except ValueError:
            pipeline_id = pipeline_named(chosen)
        current = next((p for p in pipelines if p.pipeline_id == pipeline_id), None)
        if current is None:
            raise NotFoundException(f"no pipeline {chosen}")
        day = parse_day(as_of, "as of")
        at = instant_of(day, _now())
        start, end = parse_day(opened_from, "opened from"), parse_day(opened_to, "opened to")
        steps = crm.model(FunnelReadModel).funnel_steps(
            pipeline_id,
            at,
            owner_id=user_of(request).figures_of(owner_id or None),
            opened_from=start_of(start) if start else None,
            opened_to=start_of(end + timedelta(days=1)) if end else None,
        )
        report = crm.read_db.run_steps(steps)
        reached = [(s.stage, float(s.reached)) for s in report.stages] + [("won", report.won)]
        first = reached[0][1] if report.stages else 0
        lost = sorted(report.lost_reasons.items(), key=lambda item: (-item[1], item[0]))
        owners = [u.user_id for u in crm.users.list() if u.role in OWNER_ROLES]
        return render(
            request,
            "funnel.html",
            title=f"Funnel · {current.name}",
            pipelines=pipelines,
            pipeline=current,
            owners=owners,
            form={
                "as_of": as_of,
                "owner_id": owner_id,
                "opened_from": opened_from,
                "opened_to": opened_to,
            },
            as_of=at,
            report=report,
            definitions=FUNNEL_DEFINITIONS,
            chart=horizontal_bars(
                reached,
                title=f"Deals that reached each stage of {current.name}",
                description=", ".join(f"{s}: {n:.0f}" for s, n in reached),
                x_label="deals",
                colours=[PALETTE[0]] * len(report.stages) + [PALETTE[2]],
                value_text=[
                    f"{n:,.0f} ({percent(n / first if first else None)} of the first)"
                    for _, n in reached
                ],
            ),
            lost=lost,
            lost_chart=horizontal_bars(
                [(reason, float(n)) for reason, n in lost],
                title="Lost deals by reason",
                description=", ".join(f"{r}: {n}" for r, n in lost),
                x_label="deals lost",
                colours=[PALETTE[5]] * len(lost),
            )
            if lost
            else None,
        )


# ---------------------------------------------------------- chain and models


@dataclass
class ChainState:
    """One verification at a time per process: it reads the whole store."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    last: VerifyReport | None = None
    at: datetime | None = None


CHAIN = ChainState()


class OperationsPages(Controller):
    path = "/"

    @get("/chain", sync_to_thread=True)
    def chain(self, request: Request[Any, Any, Any]) -> Template:
        """The chain's head, to compare with a copy kept elsewhere, and the last
        verification this process ran."""
        _require(request, "audit")
        return self._chain_page(request, CHAIN.last, CHAIN.at, busy=False)

    @post("/chain/verify", sync_to_thread=True, status_code=200)
    def verify_chain(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
    ) -> Template:
        """Recompute the chain from the stored events now, as ``crm audit verify``
        does, and name the first broken position if there is one."""
        _require(request, "audit")
        same_origin(request)
        check_form_token(request.auth, data.get("form_token"))
        if not CHAIN.lock.acquire(blocking=False):
            return self._chain_page(request, CHAIN.last, CHAIN.at, busy=True)
        try:
            crm = crm_of(request)
            report = verify(crm.db, crm.app.recorder)
            CHAIN.last, CHAIN.at = report, _now()
        finally:
            CHAIN.lock.release()
        return self._chain_page(request, report, CHAIN.at, busy=False)

    def _chain_page(
        self,
        request: Request[Any, Any, Any],
        report: VerifyReport | None,
        at: datetime | None,
        *,
        busy: bool,
    ) -> Template:
        crm = crm_of(request)
        position, link = crm.model(ChainReadModel).head()
        return render(
            request,
            "chain.html",
            title="Hash chain",
            head_position=position,
            head_link=link,
            store_head=crm.app.recorder.max_notification_id() or 0,
            report=report,
            verified_at=at,
            busy=busy,
        )

    @get("/projections", sync_to_thread=True)
    def projections(self, request: Request[Any, Any, Any]) -> Template:
        """Each read model's position and how far it is behind the store."""
        _require(request, "operations")
        statuses = crm_of(request).projector(setup=False).status()
        return render(
            request,
            "projections.html",
            title="Projections",
            statuses=statuses,
            head=statuses[0].head if statuses else 0,
        )


PAGES = (DashboardPage, ClientPages, AuditPages, LifecyclePage, FunnelPage, OperationsPages)
