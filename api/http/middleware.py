"""ASGI middleware: correlation ids and the access log; problems for the schema pages."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

import orjson
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapters.replicas import ReplicaRouter

SAFE_ID = re.compile(r"[A-Za-z0-9._:/-]{1,128}")


def correlation(*, access_log: bool) -> Callable[[ASGIApp], ASGIApp]:
    """Take ``X-Correlation-ID`` from the request (or make one), keep it in the
    request state for the envelope and the logs, and echo it on the response; with
    ``access_log``, log one line per request (logger ``crm.access``, level info) with
    the correlation id, method, route, path, status and duration."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":  # type: ignore[comparison-overlap]
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            given = _header(scope, b"x-correlation-id")
            value = given if given and SAFE_ID.fullmatch(given) else str(uuid.uuid4())
            scope.setdefault("state", {})["correlation_id"] = value
            status = 0

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = list(message.get("headers", []))
                    if not any(key.lower() == b"x-correlation-id" for key, _ in headers):
                        headers.append((b"x-correlation-id", value.encode()))
                    message["headers"] = headers
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                if access_log and ACCESS.isEnabledFor(logging.INFO):
                    _log_access(scope, value, status, time.perf_counter() - started)

        return middleware

    return wrap


ACCESS = logging.getLogger("crm.access")


def _log_access(scope: Scope, correlation_id: str, status: int, seconds: float) -> None:
    method, path = scope.get("method", ""), scope.get("path", "")
    route = scope.get("path_template", path)
    milliseconds = round(seconds * 1000, 2)
    ACCESS.info(
        "%s %s %s %.1f ms [correlation_id=%s]",
        method,
        path,
        status or "-",
        milliseconds,
        correlation_id,
        extra={
            "correlation_id": correlation_id,
            "method": method,
            "route": route,
            "path": path,
            "status": status or None,
            "duration_ms": milliseconds,
        },
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, raw in scope.get("headers", []):
        if key.lower() == name:
            try:
                return str(raw.decode("latin-1")).strip()
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
                return None
    return None


def schema_pages_not_found_as_problems(app: ASGIApp) -> ASGIApp:
    """The OpenAPI pages answer an unknown page under ``/schema`` with an HTML 404 of
    their own, bypassing the exception handlers: rewrite it as a problem document."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""  # type: ignore[comparison-overlap]
        if not str(path).startswith("/schema/"):
            await app(scope, receive, send)
            return
        rewriting = False

        async def send_problem(message: Message) -> None:
            nonlocal rewriting
            if message["type"] == "http.response.start" and message["status"] == 404:
                rewriting = True
                body = orjson.dumps(
                    {
                        "type": "about:blank",
                        "title": "Not Found",
                        "status": 404,
                        "detail": f"no page {path}",
                        "instance": path,
                    }
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [
                            (b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            if not rewriting:
                await send(message)

        await app(scope, receive, send_problem)

    return middleware


def pinned_reads(router: ReplicaRouter) -> Callable[[ASGIApp], ASGIApp]:
    """Every read of a request, its token check and ``min_position`` wait included,
    from one place: a replica, or the primary (``ReplicaRouter.pinned``)."""

    def wrap(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            with router.pinned():
                await app(scope, receive, send)

        return middleware

    return wrap
