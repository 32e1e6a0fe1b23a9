"""``/subscriptions``: webhook subscriptions (admins only). Each route parses, calls
``api.push`` or one use case, and maps the result."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from litestar import Controller, Request, Response, delete, get, post
from litestar.exceptions import PermissionDeniedException
from litestar.params import FromPath, JSONBody
from pydantic import Field

from api.http.auth import requires
from api.http.schemas import Body, Line, Written, examples
from api.http.support import (
    MinPosition,
    crm_of,
    envelope,
    idempotency_key,
    run_command,
    wait_for_position,
)
from api.push import PersonalDataNotAllowed, create_subscription, list_subscriptions
from application.access import Permission
from application.subscriptions import (
    PauseSubscription,
    RemoveSubscription,
    ReplaySubscription,
    ResumeSubscription,
)

EventType = Annotated[str, Field(min_length=1, max_length=130)]


class SubscriptionBody(Body):
    model_config = examples(
        {"url": "https://hooks.example.com/crm", "events": ["Client.*", "Deal.DealWon"]},
    )

    url: Annotated[str, Field(min_length=1, max_length=2000)]
    events: Annotated[list[EventType], Field(min_length=1, max_length=100)] = ["*"]
    description: Line = ""
    include_personal: bool = False


class ReplayBody(Body):
    model_config = examples({"from_position": 1})

    from_position: Annotated[int, Field(ge=1, le=2**63 - 1)]


class SubscriptionRoutes(Controller):
    path = "/subscriptions"
    tags = ["webhooks"]
    guards = [requires(Permission.ADMIN)]

    @post("/", status_code=201, sync_to_thread=True, summary="Subscribe a receiver to events")
    def create(
        self, request: Request[Any, Any, Any], data: JSONBody[SubscriptionBody]
    ) -> Response[dict[str, Any]]:
        """Subscribe a receiver: `events` are `*`, `Aggregate.*` or `Aggregate.Event`
        (`Client.PurchaseMade`, `Deal.*`, `FollowUp.Due`, `Lead.Unanswered`). The
        answer holds the signing `secret` (Standard Webhooks, `whsec_…`), shown this
        once: keep it. A destination on a private network is refused (422) unless
        CRM_WEBHOOK_ALLOW_PRIVATE; `include_personal` needs the permission to read
        personal data (403)."""
        crm = crm_of(request)
        try:
            created = create_subscription(
                crm,
                envelope(request),
                url=data.url,
                events=list(data.events),
                description=data.description,
                include_personal=data.include_personal,
                idempotency_key=idempotency_key(request),
            )
        except PersonalDataNotAllowed as error:
            raise PermissionDeniedException(str(error)) from None
        result = created.result
        return Response(
            {
                "id": result.id,
                "secret": created.secret,
                "url": data.url.strip(),
                "events": list(dict.fromkeys(data.events)),
                "description": data.description,
                "include_personal": data.include_personal,
                "status": "active",
                "version": result.version,
                "position": result.position,
            },
            status_code=201,
            headers={"Location": f"/subscriptions/{result.id}"},
        )

    @get("/", sync_to_thread=True, summary="The webhook subscriptions")
    def list_all(
        self, request: Request[Any, Any, Any], min_position: int | None = MinPosition
    ) -> list[dict[str, Any]]:
        """Every subscription with its status, delivered position, lag (events behind
        the store's head), deliveries, failures and last error; never a secret."""
        crm = crm_of(request)
        wait_for_position(crm, min_position)
        return list_subscriptions(crm)

    @get("/{subscription_id:uuid}", sync_to_thread=True, summary="A webhook subscription")
    def get_one(
        self,
        request: Request[Any, Any, Any],
        subscription_id: FromPath[UUID],
        min_position: int | None = MinPosition,
    ) -> dict[str, Any]:
        """One subscription (404 if unknown or removed)."""
        crm = crm_of(request)
        wait_for_position(crm, min_position)
        (found,) = list_subscriptions(crm, subscription_id)
        return found

    @delete(
        "/{subscription_id:uuid}",
        status_code=200,
        sync_to_thread=True,
        summary="Remove a webhook subscription",
    )
    def remove(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[UUID]
    ) -> Response[Written]:
        """Remove a subscription: deliveries stop and its secret is destroyed."""
        return run_command(request, RemoveSubscription(subscription_id=subscription_id), None)

    @post(
        "/{subscription_id:uuid}/pause",
        status_code=200,
        sync_to_thread=True,
        summary="Pause a webhook subscription",
    )
    def pause(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[UUID]
    ) -> Response[Written]:
        """Stop deliveries where they are, until resumed."""
        return run_command(request, PauseSubscription(subscription_id=subscription_id), None)

    @post(
        "/{subscription_id:uuid}/resume",
        status_code=200,
        sync_to_thread=True,
        summary="Resume a webhook subscription",
    )
    def resume(
        self, request: Request[Any, Any, Any], subscription_id: FromPath[UUID]
    ) -> Response[Written]:
        """Deliver again from where deliveries stopped (after a pause or `failing`)."""
        return run_command(request, ResumeSubscription(subscription_id=subscription_id), None)

    @post(
        "/{subscription_id:uuid}/replay",
        status_code=200,
        sync_to_thread=True,
        summary="Deliver a subscription's events again",
    )
    def replay(
        self,
        request: Request[Any, Any, Any],
        subscription_id: FromPath[UUID],
        data: JSONBody[ReplayBody],
    ) -> Response[Written]:
        """Deliver every matching event again from store position `from_position` on
        (same `webhook-id` as before, so receivers can drop what they have)."""
        return run_command(
            request,
            ReplaySubscription(subscription_id=subscription_id, from_position=data.from_position),
            None,
        )
