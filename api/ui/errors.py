"""Errors as pages: the console answers in HTML what the API answers as problem
documents, with the same statuses (a missing session sends to the sign-in form)."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

from adapters.telemetry import TRANSIENT_ERRORS
from api.http.problems import correlation_id, headers_of, status_of
from api.ui.auth import to_sign_in
from api.ui.views import render
from application.errors import ApplicationError

log = logging.getLogger("api")


def _page(
    request: Request[Any, Any, Any],
    status: int,
    detail: str,
    headers: dict[str, str] | None = None,
) -> Response[Any]:
    page = render(
        request,
        "error.html",
        status_code=status,
        title=HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        correlation_id=correlation_id(request),
    )
    if headers:
        page.headers.update(headers)
    return page


def http_error(request: Request[Any, Any, Any], error: HTTPException) -> Response[Any]:
    if isinstance(error, ValidationException):
        fields = sorted(
            {str(item.get("key")) for item in error.extra or [] if isinstance(item, dict)}
        )
        detail = "These values are not valid: " + (", ".join(fields) or "the request")
        return _page(request, 400, detail)
    status = error.status_code
    detail = error.detail if status < 500 or status == 503 else HTTPStatus(status).description
    return _page(request, status, detail, dict(error.headers or {}))


def application_error(request: Request[Any, Any, Any], error: ApplicationError) -> Response[Any]:
    return _page(request, status_of(error), error.message, headers_of(error))


def out_of_range(request: Request[Any, Any, Any], error: OverflowError) -> Response[Any]:
    return _page(request, 422, f"A date is out of range: {error}")


def unavailable(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    detail = "The database cannot be reached just now; try again shortly."
    return _page(request, 503, detail, {"Retry-After": "1"})


def unexpected(request: Request[Any, Any, Any], error: Exception) -> Response[Any]:
    log.error(
        "unexpected error on %s %s [correlation_id=%s]",
        request.method,
        request.url.path,
        correlation_id(request),
        exc_info=error,
        extra={"correlation_id": correlation_id(request)},
    )
    detail = "The console failed to answer; quote the correlation id when reporting it."
    return _page(request, 500, detail)


HANDLERS: dict[type[Exception], Any] = {
    **dict.fromkeys(TRANSIENT_ERRORS, unavailable),
    NotAuthorizedException: to_sign_in,
    OverflowError: out_of_range,
    ApplicationError: application_error,
    HTTPException: http_error,
    Exception: unexpected,
}
