"""Every error is an ``application/problem+json`` document (RFC 9457).

Domain and application errors map to their status; framework errors (malformed
JSON, unknown route, wrong method, oversized body) are rewritten in the same shape;
anything unexpected is a 500 whose ``correlation_id`` is also in the server log,
with no stack trace or SQL in the response.
"""

from __future__ import annotations

import logging
import uuid
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from adapters.telemetry import DATABASE_ERRORS, TRANSIENT_ERRORS
from api.http.middleware import SAFE_ID
from application.errors import (
    ApplicationError,
    ConcurrencyConflict,
    DuplicateContact,
    ExportLimitReached,
    IdempotencyKeyReused,
    NotFound,
    PermissionDenied,
    UnknownUser,
    VersionMismatch,
)
from domain.errors import DomainError

log = logging.getLogger("api")

PROBLEM = "application/problem+json"
TYPE_PREFIX = "urn:crm:problem:"


def correlation_id(request: Request[Any, Any, Any]) -> str:
    """The request's correlation id. Routing errors (404, 405) happen before any
    route middleware, so for them it is taken from the header or made here."""
    state = request.scope.setdefault("state", {})
    if "correlation_id" not in state:
        given = request.headers.get("x-correlation-id", "")
        state["correlation_id"] = given if SAFE_ID.fullmatch(given) else str(uuid.uuid4())
    return str(state["correlation_id"])


def problem(
    request: Request[Any, Any, Any],
    status: int,
    detail: str | None = None,
    *,
    code: str | None = None,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"{TYPE_PREFIX}{code}" if code else "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
        "instance": request.url.path,
        "correlation_id": correlation_id(request),
    }
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    headers = {**(headers or {}), "X-Correlation-ID": body["correlation_id"]}
    return Response(body, status_code=status, media_type=PROBLEM, headers=headers)


def domain_error(request: Request[Any, Any, Any], error: DomainError) -> Response[Any]:
    errors = [{"field": error.field, "message": error.message}] if error.field else None
    return problem(request, 422, error.message, code=error.code, errors=errors)


_STATUS: dict[type[ApplicationError], int] = {
    NotFound: 404,
    VersionMismatch: 412,
    ConcurrencyConflict: 409,
    DuplicateContact: 409,
    IdempotencyKeyReused: 422,
    UnknownUser: 422,
    PermissionDenied: 403,
    ExportLimitReached: 429,
}


def status_of(error: ApplicationError) -> int:
    """The HTTP status of an application error (the API's and the console's)."""
    return next((s for cls, s in _STATUS.items() if isinstance(error, cls)), 422)


def headers_of(error: ApplicationError) -> dict[str, str] | None:
    """The headers an application error's answer carries (when to try again)."""
    if isinstance(error, ExportLimitReached):
        return {"Retry-After": str(error.retry_after)}
    return None


def application_error(request: Request[Any, Any, Any], error: ApplicationError) -> Response[Any]:
    status = status_of(error)
    extra: dict[str, Any] = {}
    if isinstance(error, DuplicateContact):
        extra["existing_client_id"] = str(error.existing_client_id)
    if isinstance(error, VersionMismatch):
        extra["current_version"] = error.actual
    errors = (
        [{"field": error.field, "message": error.message}]
        if isinstance(error, UnknownUser)
        else None
    )
    return problem(
        request,
        status,
        error.message,
        code=error.code,
        errors=errors,
        headers=headers_of(error),
        **extra,
    )


def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    if isinstance(error, ValidationException) and isinstance(error.extra, list):
        errors = [
            {
                "field": _sent_name(request, item.get("key") or "body"),
                "message": item.get("message", ""),
                **({"source": item["source"]} if item.get("source") else {}),
            }
            for item in error.extra
            if isinstance(item, dict)
        ]
        return problem(
            request, 422, "the request has invalid fields", code="validation", errors=errors
        )
    status = error.status_code
    headers = dict(error.headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", 'Bearer realm="crm"')
    detail = error.detail if status < 500 or status == 503 else None
    return problem(request, status, detail, headers=headers or None)


def _sent_name(request: Request[Any, Any, Any], key: str) -> str:
    """The name the client sent for the route's parameter ``key``: ``from`` for the
    ``from_`` that Python needs, a header's own name; body fields as they are."""
    handler = request.scope.get("route_handler")
    field = handler.parsed_fn_signature.parameters.get(key) if handler is not None else None
    definition = getattr(field, "kwarg_definition", None)
    return str(getattr(definition, "name", None) or key)


def unexpected_error(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.error(
        "unexpected error on %s %s [correlation_id=%s]",
        request.method,
        request.url.path,
        correlation_id(request),
        exc_info=error,
        extra={"correlation_id": correlation_id(request)},
    )
    return problem(
        request,
        500,
        "the server failed to answer; quote the correlation id when reporting it",
        code="internal",
    )


RETRY_AFTER_SECONDS = 1


def database_unavailable(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    """The database could not be reached, or the connection broke mid-request (a
    restart, a failover, a session ended by an administrator): 503 with
    ``Retry-After``. A write cut off in flight may or may not have been recorded,
    so a retry must carry the same ``Idempotency-Key``: it then answers as the first
    attempt would have, and records nothing twice."""
    log.warning(
        "database unavailable on %s %s [correlation_id=%s]: %s",
        request.method,
        request.url.path,
        correlation_id(request),
        str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__,
        extra={"correlation_id": correlation_id(request)},
    )
    DATABASE_ERRORS.labels(process="api", kind=type(error).__name__).inc()
    detail = "the database cannot be reached just now; try again shortly"
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        detail += (
            "; the write may or may not have been recorded: retry it with the same "
            "Idempotency-Key, which records it at most once"
        )
    return problem(
        request,
        503,
        detail,
        code="database_unavailable",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def out_of_range(request: Request[Any, Any, Any], error: OverflowError) -> Response[Any]:
    """A date or number so far out that arithmetic on it overflows (year 1, 10**30)."""
    return problem(request, 422, f"a date or number is out of range: {error}", code="out_of_range")


HANDLERS: dict[type[Exception], Any] = {
    **dict.fromkeys(TRANSIENT_ERRORS, database_unavailable),
    OverflowError: out_of_range,
    DomainError: domain_error,
    ApplicationError: application_error,
    HTTPException: http_error,
    Exception: unexpected_error,
}
