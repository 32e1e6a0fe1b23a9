"""ASGI middleware: correlation ids."""

from __future__ import annotations

import re
import uuid

from litestar.types import ASGIApp, Message, Receive, Scope, Send

SAFE_ID = re.compile(r"[A-Za-z0-9._:/-]{1,128}")


def correlation(app: ASGIApp) -> ASGIApp:
    """Take ``X-Correlation-ID`` from the request (or make one), keep it in the
    request state for the envelope and the logs, and echo it on the response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # type: ignore[comparison-overlap]
            await app(scope, receive, send)
            return
        given = _header(scope, b"x-correlation-id")
        value = given if given and SAFE_ID.fullmatch(given) else str(uuid.uuid4())
        scope.setdefault("state", {})["correlation_id"] = value

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(key.lower() == b"x-correlation-id" for key, _ in headers):
                    headers.append((b"x-correlation-id", value.encode()))
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_with_id)

    return middleware


def _header(scope: Scope, name: bytes) -> str | None:
    for key, raw in scope.get("headers", []):
        if key.lower() == name:
            try:
                return str(raw.decode("latin-1")).strip()
            except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes any byte
                return None
    return None
