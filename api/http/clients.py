"""``/clients``: register and change clients, and read their cards, lifecycle,
history and personal-data exports. Each route parses, calls one use case or query,
and maps the result."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from litestar import Controller, Request, Response, get, patch, post
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody, Parameter
from litestar.response import Stream

from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.read_models.paging import page_of
from api.disclosure import CARD_FIELDS, holds_personal, redact, redact_event
from api.http import schemas
from api.http.auth import requires
from api.http.contract import EXPORT_LIMIT, HONOURS_IF_MATCH, documented
from api.http.params import AsOf, Cursor, Instant, Limit, after_cursor, as_of_now, plain
from api.http.problems import problem
from api.http.support import (
    MinPosition,
    crm_of,
    envelope,
    etag,
    if_match,
    principal,
    reach_position,
    reads_of,
    run_command,
    wait_for_position,
)
from api.subject import client_events, export_subject
from application import clients
from application.access import Permission
from domain.client import Client
from domain.errors import InvalidValue
from domain.lifecycle import Stage, StageName
from domain.values import personal_fields
from projections.directory import ClientCard

LOOKUP_ANSWERS = {
    400: "neither or both of `phone` and `email` are given",
    404: "no client holds the phone or email (`looked_up` is what was looked up: the phone "
    "in E.164, the email lower-cased), or the value cannot be one (`detail` says why)",
}

CSV_COLUMNS = (
    "client_id", "name", "kind", "company", "phones", "emails", "owner_id", "stage",
    "registered_at", "last_contact_at", "last_purchase_at", "purchases_count", "revenue",
    "margin", "open_follow_ups", "restricted", "erased",
)  # fmt: skip


def _directory(request: Request[Any, Any, Any]) -> DirectoryReadModel:
    return crm_of(request).model(DirectoryReadModel)


def _lifecycle(request: Request[Any, Any, Any]) -> LifecycleReadModel:
    return crm_of(request).model(LifecycleReadModel)


def _card_body(card: ClientCard, stage: Stage | None) -> dict[str, Any]:
    """The card's fields as sent, with ``stage``."""
    # A shallow copy (the values are immutable), not asdict's deep one.
    body = {field.name: getattr(card, field.name) for field in fields(card)}
    body.pop("merged_into", None)
    body["id"] = body.pop("client_id")
    body["stage"] = stage.value if stage else None
    return body


def _single_card(
    request: Request[Any, Any, Any], card: ClientCard, stage: Stage | None
) -> dict[str, Any]:
    """One card as sent: with its personal values to a caller with read_personal
    (unrecorded: one card is not a bulk read), without them to the others."""
    disclose = principal(request).may(Permission.READ_PERSONAL)
    return redact(_card_body(card, stage), CARD_FIELDS, disclose=disclose)


def _visible(
    request: Request[Any, Any, Any], client_id: UUID, card: ClientCard | None
) -> ClientCard:
    if card is None or not principal(request).sees(card.owner_id):
        raise NotFoundException(f"no client {client_id}")
    return card


def _visible_card(request: Request[Any, Any, Any], client_id: UUID) -> ClientCard:
    return _visible(request, client_id, _directory(request).card(client_id))


async def _read_visible_card(request: Request[Any, Any, Any], client_id: UUID) -> ClientCard:
    """``_visible_card`` on the event loop."""
    card = await reads_of(request).run(_directory(request).card_query(client_id))
    return _visible(request, client_id, card)


class ClientRoutes(Controller):
    path = "/clients"
    tags = ["clients"]
    opt = dict(HONOURS_IF_MATCH)

    # ---------------------------------------------------------------- writes

    @post(
        "/",
        guards=[requires(Permission.WRITE_OWN)],
        status_code=201,
        sync_to_thread=True,
        summary="Register a client (a lead)",
    )
    def register(
        self, request: Request[Any, Any, Any], data: JSONBody[schemas.RegisterClientBody]
    ) -> Response[schemas.Written]:
        """Register a lead. Without `owner_id` a manager takes it; an admin's lead goes
        to the next active manager in turn."""
        command = clients.RegisterClient(
            name=data.name,
            kind=data.kind,
            company=data.company,
            phones=tuple(data.phones),
            emails=tuple(data.emails),
            address=data.address,
            channel=data.channel,
            attributes=data.attributes,
            owner_id=data.owner_id,
        )
        return run_command(request, command, data.occurred_at, status=201, location="/clients/")

    @patch(
        "/{client_id:uuid}",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        summary="Change a client's profile fields",
    )
    def change(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.ChangeClientBody],
    ) -> Response[schemas.Written]:
        """Change profile fields; each changed field is audited with old and new value.
        Send `If-Match: "<version>"` to refuse the change if the card moved on."""
        return run_command(
            request,
            clients.ChangeClientDetails(
                client_id=client_id, changes=data.changes(), expected_version=if_match(request)
            ),
            data.occurred_at,
        )

    @post(
        "/{client_id:uuid}/contacts",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Record a contact with a client",
    )
    def contact(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.ContactBody],
    ) -> Response[schemas.Written]:
        """Record a call, email, meeting, SMS, chat or visit."""
        command = clients.RecordContact(
            client_id=client_id,
            channel=data.channel,
            direction=data.direction,
            summary=data.summary,
            outcome=data.outcome,
            purpose=data.purpose,
            expected_version=if_match(request),
        )
        return run_command(request, command, data.occurred_at)

    @post(
        "/{client_id:uuid}/purchases",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Record a client's purchase",
    )
    def purchase(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.PurchaseBody],
    ) -> Response[schemas.Written]:
        """Record money that came in (a lost client who buys again has returned)."""
        command = clients.RecordPurchase(
            client_id=client_id,
            amount=data.amount,
            cost=data.cost,
            currency=data.currency or crm_of(request).settings.currency,
            expected_version=if_match(request),
        )
        return run_command(request, command, data.occurred_at)

    @post(
        "/{client_id:uuid}/loss",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Mark a client lost",
    )
    def loss(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.LossBody],
    ) -> Response[schemas.Written]:
        """The client left, and why."""
        command = clients.MarkClientLost(
            client_id=client_id,
            reason=data.reason,
            note=data.note,
            expected_version=if_match(request),
        )
        return run_command(request, command, data.occurred_at)

    @post(
        "/{client_id:uuid}/owner",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Hand a client over to another manager",
    )
    def assign_owner(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.OwnerBody],
    ) -> Response[schemas.Written]:
        """Hand the client over to another manager."""
        command = clients.AssignOwner(
            client_id=client_id,
            owner_id=data.owner_id,
            reason=data.reason,
            expected_version=if_match(request),
        )
        return run_command(request, command, data.occurred_at)

    @post(
        "/{client_id:uuid}/follow-ups",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=201,
        summary="Schedule a follow-up",
    )
    def follow_up(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.FollowUpBody],
    ) -> Response[schemas.Written]:
        """Schedule a call-back; the answer's `task_id` names it."""
        command = clients.ScheduleFollowUp(
            client_id=client_id,
            due_at=data.due_at,
            assignee_id=data.assignee_id,
            note=data.note,
            expected_version=if_match(request),
        )
        return run_command(request, command, data.occurred_at, status=201)

    @post(
        "/{client_id:uuid}/follow-ups/{task_id:uuid}/complete",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Complete a follow-up",
    )
    def complete(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        task_id: FromPath[UUID],
        data: JSONBody[schemas.FollowUpDoneBody | None] = None,
    ) -> Response[schemas.Written]:
        """Mark a follow-up done."""
        body = data or schemas.FollowUpDoneBody()
        command = clients.CompleteFollowUp(
            client_id=client_id, task_id=task_id, note=body.note, expected_version=if_match(request)
        )
        return run_command(request, command, body.occurred_at)

    @post(
        "/{client_id:uuid}/follow-ups/{task_id:uuid}/cancel",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Cancel a follow-up",
    )
    def cancel(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        task_id: FromPath[UUID],
        data: JSONBody[schemas.FollowUpDoneBody | None] = None,
    ) -> Response[schemas.Written]:
        """Cancel a follow-up that is no longer needed."""
        body = data or schemas.FollowUpDoneBody()
        command = clients.CancelFollowUp(
            client_id=client_id,
            task_id=task_id,
            reason=body.note,
            expected_version=if_match(request),
        )
        return run_command(request, command, body.occurred_at)

    @post(
        "/{client_id:uuid}/merge",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Merge a duplicate card into this client",
    )
    def merge(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.MergeBody],
    ) -> Response[schemas.Written]:
        """Merge a duplicate card of the same person into this one."""
        command = clients.MergeClients(
            survivor_id=client_id,
            duplicate_id=data.duplicate_id,
            expected_version=if_match(request),
        )
        return run_command(request, command, None)

    @post(
        "/{client_id:uuid}/erasure",
        guards=[requires(Permission.ADMIN)],
        sync_to_thread=True,
        status_code=200,
        summary="Erase a client's personal data",
    )
    def erasure(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.ErasureBody],
    ) -> Response[schemas.Written]:
        """Erase the client's personal data (the reason is kept for auditors, so it
        must not contain personal data)."""
        command = clients.ErasePersonalData(
            client_id=client_id, reason=data.reason, expected_version=if_match(request)
        )
        return run_command(request, command, None)

    @post(
        "/{client_id:uuid}/restriction",
        guards=[requires(Permission.ADMIN)],
        sync_to_thread=True,
        status_code=200,
        summary="Restrict a client's processing, or lift it",
    )
    def restriction(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.RestrictionBody],
    ) -> Response[schemas.Written]:
        """Restrict processing (no marketing, no new deals) or lift the restriction."""
        kind = clients.RestrictProcessing if data.restricted else clients.LiftRestriction
        command = kind(client_id=client_id, reason=data.reason, expected_version=if_match(request))
        return run_command(request, command, None)

    @post(
        "/{client_id:uuid}/consents",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Record a consent given or withdrawn",
    )
    def consents(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        data: JSONBody[schemas.ConsentBody],
    ) -> Response[schemas.Written]:
        """Record that consent for a purpose was given, or withdrawn."""
        kind = clients.GiveConsent if data.given else clients.WithdrawConsent
        command = kind(
            client_id=client_id, purpose=data.purpose, expected_version=if_match(request)
        )
        return run_command(request, command, None)

    # ----------------------------------------------------------------- reads

    @get(
        "/",
        guards=[requires(Permission.READ_MODELS)],
        sync_to_thread=True,
        summary="The client directory (JSON pages, or a CSV export)",
        opt=documented(EXPORT_LIMIT),
    )
    def directory(
        self,
        request: Request[Any, Any, Any],
        stage: FromQuery[StageName | None] = None,
        owner_id: FromQuery[str | None] = None,
        last_contact_before: FromQuery[Instant | None] = None,
        last_contact_after: FromQuery[Instant | None] = None,
        q: str | None = Parameter(default=None, max_length=200, description="Text search"),
        as_of: Instant | None = AsOf,
        limit: int = Limit,
        cursor: str | None = Cursor,
        format: FromQuery[Literal["json", "csv"]] = "json",  # noqa: A002
        min_position: int | None = MinPosition,
    ) -> Response[Any]:
        """The client directory, newest first, with filters and cursor pagination.
        Personal values only with the read_personal permission (a page holding some is
        counted against the export limit and recorded; without it they are left out
        and named in `redacted`, and `q`, which searches them, is refused).
        `format=csv` exports every matching card (export permission; recorded). Stages
        are as of `as_of` (default now), named in the answer, `projected` when later."""
        crm = crm_of(request)
        user = principal(request)
        if q is not None:  # a text search reads names, phones and emails
            user.require(Permission.READ_PERSONAL)
        wait_for_position(crm, min_position)
        at, projected = as_of_now(as_of)
        filters: dict[str, Any] = {
            "stage": stage,
            "owner_id": owner_id,
            "last_contact_before": plain(last_contact_before),
            "last_contact_after": plain(last_contact_after),
            "text": q,
            "at": at,
            "visible_to": user.user_id if user.own_records_only else None,
        }
        if format == "csv":
            return self._export_csv(request, filters)
        try:
            page = _directory(request).search(limit=limit, cursor=cursor, **filters)
        except ValueError as error:
            raise ClientException(str(error)) from None
        cards = [
            _card_body(card, stage) for card, stage in zip(page.cards, page.stages, strict=True)
        ]
        disclose = crm.exports.disclose(
            envelope(request),
            personal=any(holds_personal(card, CARD_FIELDS) for card in cards),
            kind="clients",
            filters={**filters, "cursor": cursor, "limit": limit},
        )
        items = [redact(card, CARD_FIELDS, disclose=disclose) for card in cards]
        return Response(
            {"items": items, "next_cursor": page.next_cursor, "as_of": at, "projected": projected}
        )

    def _export_csv(
        self, request: Request[Any, Any, Any], filters: dict[str, Any]
    ) -> Response[Any]:
        crm_of(request).exports.export(
            envelope(request), kind="clients", format="csv", filters=filters
        )
        directory = _directory(request)

        def rows() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(CSV_COLUMNS)
            cursor = None
            while True:
                page = directory.search(limit=500, cursor=cursor, **filters)
                for card, stage in zip(page.cards, page.stages, strict=True):
                    body = _card_body(card, stage)
                    writer.writerow(_csv_value(body, column) for column in CSV_COLUMNS)
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
                if page.next_cursor is None:
                    return
                cursor = page.next_cursor

        return Stream(
            rows(),
            media_type="text/csv",  # litestar adds "; charset=utf-8" to text types
            headers={"Content-Disposition": 'attachment; filename="clients.csv"'},
        )

    @get(
        "/lookup",
        guards=[requires(Permission.READ_MODELS)],
        summary="Find the client holding a phone or email",
        opt=documented(LOOKUP_ANSWERS),
    )
    async def lookup(
        self,
        request: Request[Any, Any, Any],
        phone: str | None = Parameter(default=None, max_length=40),
        email: str | None = Parameter(default=None, max_length=254),
        min_position: int | None = MinPosition,
    ) -> Response[dict[str, Any]]:
        """The telephony popup: the card holding this phone (any formatting; a national
        number read as `CRM_DEFAULT_COUNTRY`'s) or email (any case). Finding nothing is
        a 404 saying what was looked up (`looked_up`: the phone in E.164, the email
        lower-cased) or why the value cannot be a phone or email. A leading space
        before the digits is read as the `+` of an unencoded query string."""
        if (phone is None) == (email is None):
            raise ClientException("give exactly one of phone or email")
        await reach_position(request, min_position)
        directory = _directory(request)
        sent = phone if phone is not None else email
        hint = ""
        if phone is not None and phone[:1] == " " and phone.lstrip()[:1].isdigit():
            phone = "+" + phone.lstrip()  # a '+' sent unencoded arrives as a space
            hint = " (the leading space was read as a '+': send it as %2B)"
        try:
            kind, looked_up = directory.read_contact_point(phone, email)
        except InvalidValue as error:
            detail = f"no client found: {error.message}{hint}"
            return problem(request, 404, detail, code="not_found")
        query = directory.lookup_query(phone=phone, email=email, at=datetime.now(UTC))
        staged = None if query is None else await reads_of(request).run(query)
        if staged is None or not principal(request).sees(staged[0].owner_id):
            read_from = f" (read from {sent!r}{_as_national(directory, phone)})"
            detail = f"no client holds the {kind} {looked_up}"
            detail += read_from if sent != looked_up else ""
            return problem(request, 404, detail + hint, code="not_found", looked_up=looked_up)
        card, stage = staged
        return Response(_single_card(request, card, stage), headers={"ETag": etag(card.version)})

    # Keyed reads run on the event loop (``Crm.reads``): no worker thread per request.

    @get("/{client_id:uuid}", guards=[requires(Permission.READ_MODELS)], summary="A client's card")
    async def card(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        min_position: int | None = MinPosition,
    ) -> Response[dict[str, Any]]:
        """The client's card; the `ETag` is its version, for `If-Match` on writes."""
        await reach_position(request, min_position)
        query = _directory(request).staged_card_query(client_id, datetime.now(UTC))
        staged = await reads_of(request).run(query)
        card = _visible(request, client_id, staged[0] if staged else None)
        stage = staged[1] if staged else None
        return Response(_single_card(request, card, stage), headers={"ETag": etag(card.version)})

    @get(
        "/{client_id:uuid}/lifecycle",
        guards=[requires(Permission.READ_MODELS)],
        summary="A client's lifecycle stages",
    )
    async def lifecycle(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        min_position: int | None = MinPosition,
    ) -> list[schemas.StageIntervalOut]:
        """The client's lifecycle stages over time."""
        await reach_position(request, min_position)
        await _read_visible_card(request, client_id)
        intervals = await reads_of(request).run(_lifecycle(request).intervals_query(client_id))
        return [
            schemas.StageIntervalOut(
                stage=i.stage.value, valid_from=i.valid_from, valid_to=i.valid_to, reason=i.reason
            )
            for i in intervals
        ]

    @get(
        "/{client_id:uuid}/history",
        guards=[requires(Permission.READ_MODELS)],
        sync_to_thread=True,
        summary="A client's events",
        opt=documented(EXPORT_LIMIT),
    )
    def history(
        self,
        request: Request[Any, Any, Any],
        client_id: FromPath[UUID],
        limit: int = Limit,
        cursor: str | None = Cursor,
    ) -> dict[str, Any]:
        """The client's events with their envelopes, oldest first, a page at a time.
        Personal values only with the read_personal permission (a page holding some is
        then counted against the export limit and recorded); without it they are left
        out and named in `redacted`."""
        crm = crm_of(request)
        after = after_cursor(cursor, 1, lambda key: int(key[0]))
        page = page_of(
            client_events(crm, client_id, after=after or 0, limit=limit + 1),
            limit,
            lambda event: (str(event["version"]),),
        )
        events = page.items
        if principal(request).own_records_only:
            _visible_card(request, client_id)
        # A client's stream holds the client's events only, nested in ``Client``.
        classes = [getattr(Client, event["event_type"]) for event in events]
        disclose = crm.exports.disclose(
            envelope(request),
            personal=any(
                holds_personal(event["payload"], personal_fields(cls))
                for event, cls in zip(events, classes, strict=True)
            ),
            kind="history",
            filters={"client_id": client_id, "cursor": cursor, "limit": limit},
            client_id=client_id,
        )
        items = [
            redact_event(event, cls, disclose=disclose)
            for event, cls in zip(events, classes, strict=True)
        ]
        return {"items": items, "next_cursor": page.next_cursor}

    @get(
        "/{client_id:uuid}/export",
        guards=[requires(Permission.EXPORT)],
        sync_to_thread=True,
        summary="Everything held about a client (subject access)",
        opt=documented(EXPORT_LIMIT),
    )
    def export(self, request: Request[Any, Any, Any], client_id: FromPath[UUID]) -> dict[str, Any]:
        """Everything held about one client (the subject access right): the events,
        the card, the lifecycle, the consents and the audit trail. The export itself
        is recorded, before it is sent."""
        return export_subject(crm_of(request), client_id, envelope(request))


def _as_national(directory: DirectoryReadModel, phone: str | None) -> str:
    """How a phone without a country code was read, for the answer that found nothing."""
    if phone is None or phone.strip().startswith(("+", "00")) or not directory.default_country:
        return ""
    return f" as a national number of {directory.default_country}, CRM_DEFAULT_COUNTRY"


def _csv_value(body: dict[str, Any], column: str) -> Any:
    value = body["id" if column == "client_id" else column]
    if isinstance(value, list | tuple):
        return ";".join(value)
    return "" if value is None else value
