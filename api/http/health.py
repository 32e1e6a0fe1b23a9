"""Health for people and orchestrators: ``/health`` (what the store holds),
``/health/live`` (the process answers) and ``/health/ready`` (it can serve)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from api.http.contract import documented
from api.http.problems import RETRY_AFTER_SECONDS, problem
from api.http.support import crm_of, read_models_position

READY_ANSWERS = {
    503: "not ready: the database does not answer, or the read models are more than "
    "CRM_READY_MAX_LAG events behind the store's head (`detail` says which)"
}


@get("/health", tags=["operations"], sync_to_thread=True, summary="What the store holds")
def health(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The store answers; the head position and how far the read models got."""
    crm = crm_of(request)
    head = crm.app.recorder.max_notification_id() or 0
    return {
        "status": "ok",
        "store": crm.settings.backend,
        "head_position": head,
        "read_models_position": read_models_position(crm),
    }


@get(
    "/health/live",
    tags=["operations"],
    summary="Liveness, for orchestrators",
    opt=documented(touches_database=False),
)
async def live() -> dict[str, str]:
    """Liveness: the process is up and its event loop answers. Touches no database,
    so a database outage does not get the API restarted (it answers 503 meanwhile)."""
    return {"status": "ok"}


@get(
    "/health/ready",
    tags=["operations"],
    sync_to_thread=True,
    summary="Readiness, for orchestrators and load balancers",
    opt=documented(READY_ANSWERS),
)
def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    """Readiness: the database answers and the read models are within
    ``CRM_READY_MAX_LAG`` events of the store's head; else 503 saying which."""
    readiness = crm_of(request).readiness()
    if not readiness.ready:
        return problem(
            request,
            503,
            readiness.problem,
            code="not_ready",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return Response(
        {
            "status": "ready",
            "head_position": readiness.head_position,
            "read_models_position": readiness.read_models_position,
        }
    )
