"""``/deals`` and ``/pipelines``."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, JSONBody

from adapters.read_models.deals import DealsReadModel
from api.disclosure import DEAL_FIELDS, redact
from api.http import schemas
from api.http.auth import requires
from api.http.contract import HONOURS_IF_MATCH, documented
from api.http.support import (
    MinPosition,
    crm_of,
    envelope,
    etag,
    idempotency_key,
    if_match,
    principal,
    run_command,
    wait_for_position,
    written,
)
from application import deals, pipelines
from application.access import Permission

OPEN_DEAL_ANSWERS = {
    404: "no client `client_id` (for a manager: none of theirs), or no pipeline `pipeline_id`"
}


def _deals(request: Request[Any, Any, Any]) -> DealsReadModel:
    return crm_of(request).model(DealsReadModel)


class DealRoutes(Controller):
    path = "/deals"
    tags = ["deals"]
    opt = dict(HONOURS_IF_MATCH)

    @post(
        "/",
        guards=[requires(Permission.WRITE_OWN)],
        status_code=201,
        sync_to_thread=True,
        summary="Open a deal",
        opt=documented(OPEN_DEAL_ANSWERS),
    )
    def open_deal(
        self, request: Request[Any, Any, Any], data: JSONBody[schemas.OpenDealBody]
    ) -> Response[schemas.Written]:
        """Open a deal for a client, in the first stage of its pipeline (the default
        pipeline unless `pipeline_id` is given)."""
        command = deals.OpenDeal(
            client_id=data.client_id,
            title=data.title,
            amount=data.amount,
            currency=data.currency or crm_of(request).settings.currency,
            pipeline_id=data.pipeline_id,
            owner_id=data.owner_id,
            stage=data.stage,
        )
        return run_command(request, command, data.occurred_at, status=201, location="/deals/")

    @post(
        "/{deal_id:uuid}/stage",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Move a deal to another stage",
    )
    def move(
        self,
        request: Request[Any, Any, Any],
        deal_id: FromPath[UUID],
        data: JSONBody[schemas.StageBody],
    ) -> Response[schemas.Written]:
        """Move the deal to another stage of its pipeline."""
        command = deals.MoveDealStage(
            deal_id=deal_id, stage=data.stage, expected_version=if_match(request)
        )
        return run_command(request, command, data.occurred_at)

    @post(
        "/{deal_id:uuid}/win",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Win a deal",
    )
    def win(
        self,
        request: Request[Any, Any, Any],
        deal_id: FromPath[UUID],
        data: JSONBody[schemas.WinBody | None] = None,
    ) -> Response[schemas.Written]:
        """Win the deal: the client's purchase is recorded in the same transaction."""
        body = data or schemas.WinBody()
        command = deals.WinDeal(
            deal_id=deal_id, amount=body.amount, cost=body.cost, expected_version=if_match(request)
        )
        return run_command(request, command, body.occurred_at)

    @post(
        "/{deal_id:uuid}/lose",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Lose a deal",
    )
    def lose(
        self,
        request: Request[Any, Any, Any],
        deal_id: FromPath[UUID],
        data: JSONBody[schemas.LoseDealBody],
    ) -> Response[schemas.Written]:
        """Lose the deal, for one of the known reasons."""
        command = deals.LoseDeal(
            deal_id=deal_id, reason=data.reason, note=data.note, expected_version=if_match(request)
        )
        return run_command(request, command, data.occurred_at)

    @post(
        "/{deal_id:uuid}/reopen",
        guards=[requires(Permission.WRITE_OWN)],
        sync_to_thread=True,
        status_code=200,
        summary="Reopen a won or lost deal",
    )
    def reopen(
        self,
        request: Request[Any, Any, Any],
        deal_id: FromPath[UUID],
        data: JSONBody[schemas.ReopenBody | None] = None,
    ) -> Response[schemas.Written]:
        """Reopen a won or lost deal in the stage it was closed from."""
        body = data or schemas.ReopenBody()
        command = deals.ReopenDeal(deal_id=deal_id, expected_version=if_match(request))
        return run_command(request, command, body.occurred_at)

    @get(
        "/{deal_id:uuid}",
        guards=[requires(Permission.READ_MODELS)],
        sync_to_thread=True,
        summary="A deal's card",
    )
    def card(
        self,
        request: Request[Any, Any, Any],
        deal_id: FromPath[UUID],
        min_position: int | None = MinPosition,
    ) -> Response[dict[str, Any]]:
        """The deal as it stands; the `ETag` is its version. Its title, personal data,
        only with the read_personal permission (else left out, named in `redacted`)."""
        wait_for_position(crm_of(request), min_position)
        deal = _deals(request).card(deal_id)
        if deal is None or not principal(request).sees(deal.owner_id):
            raise NotFoundException(f"no deal {deal_id}")
        body = schemas.DealOut(
            id=deal.deal_id,
            client_id=deal.client_id,
            pipeline_id=deal.pipeline_id,
            title=deal.title,
            amount=deal.amount,
            currency=deal.currency,
            owner_id=deal.owner_id,
            stage=deal.stage,
            status=deal.status,
            opened_at=deal.opened_at,
            updated_at=deal.updated_at,
            version=deal.version,
        )
        disclose = principal(request).may(Permission.READ_PERSONAL)
        sent = redact(body.model_dump(), DEAL_FIELDS, disclose=disclose)
        return Response(sent, headers={"ETag": etag(deal.version)})


class PipelineRoutes(Controller):
    path = "/pipelines"
    tags = ["deals"]

    @post(
        "/",
        guards=[requires(Permission.ADMIN)],
        status_code=201,
        sync_to_thread=True,
        summary="Define or redefine a pipeline",
        responses={200: ResponseSpec(schemas.Written, description="A pipeline redefined")},
    )
    def define(
        self, request: Request[Any, Any, Any], data: JSONBody[schemas.PipelineBody]
    ) -> Response[schemas.Written]:
        """Define a pipeline, or redefine the stages of the one with that name (stages
        may be added or reordered, never removed)."""
        command = pipelines.DefinePipeline(name=data.name, stages=tuple(data.stages))
        result = crm_of(request).app.execute(
            command, envelope(request), idempotency_key=idempotency_key(request)
        )
        return written(result, status=201 if result.version == 1 else 200)

    @get(
        "/", guards=[requires(Permission.READ_MODELS)], sync_to_thread=True, summary="The pipelines"
    )
    def list_pipelines(
        self, request: Request[Any, Any, Any], min_position: int | None = MinPosition
    ) -> list[schemas.PipelineOut]:
        """Every pipeline with its stages in order."""
        wait_for_position(crm_of(request), min_position)
        return [
            schemas.PipelineOut(
                id=p.pipeline_id, name=p.name, stages=list(p.stages), version=p.version
            )
            for p in _deals(request).pipelines()
        ]
