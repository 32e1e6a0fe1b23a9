"""The console's defences that are not about who you are: response headers that keep
pages from being framed, sniffed or made to run anything but the app's own files,
form checks against cross-site requests, and where a sign-in may send you next."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any
from urllib.parse import urlsplit

from litestar import Request
from litestar.exceptions import PermissionDeniedException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
"""The console runs no script at all and loads only its own style sheet."""
SCHEMA_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self';"
    " frame-ancestors 'none'; base-uri 'none'"
)
"""Swagger UI: its own script and styles from this host (it sets inline styles),
the OpenAPI document fetched from this host, and "Try it out" calls to it."""
_COMMON = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
_NEXT = re.compile(r"/ui/(?!/)[A-Za-z0-9/_.-]*(\?[A-Za-z0-9_.:=&%+-]*)?")


def _headers_for(path: str) -> tuple[tuple[bytes, bytes], ...]:
    if path == "/ui" or path.startswith("/ui/"):
        static = path.startswith("/ui/static/")
        cache = b"public, max-age=3600" if static else b"no-store"
        return (*_COMMON, (b"content-security-policy", CONSOLE_CSP.encode()),
                (b"cache-control", cache))  # fmt: skip
    if path == "/schema" or path.startswith("/schema/"):
        return (*_COMMON, (b"content-security-policy", SCHEMA_CSP.encode()))
    return ()


def console_headers(app: ASGIApp) -> ASGIApp:
    """On every answer under ``/ui`` (pages, redirects, errors, files) and the OpenAPI
    pages: a strict ``Content-Security-Policy``, ``X-Frame-Options: DENY``,
    ``nosniff``, a same-origin referrer, and ``no-store`` on pages (they may hold
    personal data). Other routes are left as they are."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        added = _headers_for(str(scope.get("path", ""))) if scope["type"] == "http" else ()  # type: ignore[comparison-overlap]
        if not added:
            await app(scope, receive, send)
            return
        names = {name for name, _ in added}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = [*kept, *added]
            await send(message)

        await app(scope, receive, send_with_headers)

    return middleware


def same_origin(request: Request[Any, Any, Any]) -> None:
    """A form may only be posted from the console's own pages: a browser says where a
    request comes from (``Origin``, ``Sec-Fetch-Site``); anything else is refused. A
    client that sends neither (not a browser) is let through: it holds no cookie of a
    victim to abuse."""
    origin = request.headers.get("origin")
    # the host, not the scheme: behind a proxy that ends TLS the app sees http
    if origin is not None and urlsplit(origin).netloc != request.url.netloc:
        raise PermissionDeniedException("the form was sent from another site")
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise PermissionDeniedException("the form was sent from another site")


def form_token(session_id: str) -> str:
    """The token every form of a session carries: known to the page, not to another
    site (the session id it is made from is in an HttpOnly cookie)."""
    return hashlib.sha256(b"console-form:" + session_id.encode()).hexdigest()


def check_form_token(session_id: str, given: str | None) -> None:
    if given is None or not hmac.compare_digest(form_token(session_id), given):
        raise PermissionDeniedException("the form has expired; open the page again")


def safe_next(target: str | None, default: str = "/ui/") -> str:
    """Where to go after signing in: a console page, never another site."""
    return target if target and _NEXT.fullmatch(target) else default
