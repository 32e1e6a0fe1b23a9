"""Signing in to the console with an API token, and the session cookie after it.

The token is sent once, in a form; the browser then holds only a random session id
in a cookie that scripts cannot read (``HttpOnly``), that no other site's page can
make it send (``SameSite=Strict``), that travels only over https when the console is
served over https (``Secure``), and that expires with the session. Every request
looks the session up (``adapters.sessions``): a revoked token ends it at once.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

import anyio.to_thread
from litestar import Request, Response, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotAuthorizedException
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template
from litestar.types import Receive, Scope, Send

from adapters.sessions import SESSION_SECONDS, SqlConsoleSessions
from api.bootstrap import Crm
from api.ui.security import check_form_token, safe_next, same_origin
from api.ui.views import render
from application.access import Principal

COOKIE = "crm_console"
PUBLIC = ("^/ui/login$", "^/ui/static/")
"""What may be opened without a session: the sign-in page and the style sheet."""
MAX_TOKEN = 200


class ConsoleAuthentication(AbstractAuthenticationMiddleware):
    """The user of the session named by the console's cookie, as a ``Principal`` (the
    same as the API's bearer token gives), or a ``NotAuthorizedException``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """As the base class; a request without a live session is sent to the sign-in
        form from here, so that the answer passes through the outer middleware (the
        security headers, the correlation id) as every other answer does."""
        try:
            await super().__call__(scope, receive, send)
        except NotAuthorizedException as error:
            request: Request[Any, Any, Any] = Request(scope, receive)
            answer = to_sign_in(request, error).to_asgi_response(app=None, request=request)
            await answer(scope, receive, send)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        session_id = connection.cookies.get(COOKIE, "")
        if not session_id:
            raise NotAuthorizedException("sign in to use the console")
        user = await anyio.to_thread.run_sync(sessions_of(connection).user, session_id)
        if user is None:
            raise NotAuthorizedException("the session has ended; sign in again")
        return AuthenticationResult(user=Principal(user.user_id, user.role), auth=session_id)


def sessions_of(connection: ASGIConnection[Any, Any, Any, Any]) -> SqlConsoleSessions:
    """The console's sessions, in the store of the app's product."""
    crm: Crm = connection.app.state["crm"]
    return SqlConsoleSessions(crm.db)


def session_cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> Cookie:
    return Cookie(
        key=COOKIE,
        value=value,
        path="/ui",
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


@get("/login", sync_to_thread=False)
def login_page(
    request: Request[Any, Any, Any],
    next_page: Annotated[str, QueryParameter(name="next", max_length=300)] = "",
) -> Template:
    """The sign-in form."""
    return render(
        request, "login.html", title="Sign in", next_page=safe_next(next_page), problem=None
    )


@post("/login", status_code=303, sync_to_thread=True)
def login(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Response[Any]:
    """Open a session for the API token in the form's ``token`` field, then go to the
    page asked for (the dashboard by default)."""
    same_origin(request)
    token = data.get("token", "").strip()
    target = safe_next(data.get("next"))
    opened = sessions_of(request).open(token) if token and len(token) <= MAX_TOKEN else None
    if opened is None:
        return render(
            request,
            "login.html",
            status_code=401,
            title="Sign in",
            next_page=target,
            problem="That token is unknown or was revoked.",
        )
    session_id, _ = opened
    return Redirect(
        target, status_code=303, cookies=[session_cookie(request, session_id, SESSION_SECONDS)]
    )


@post("/logout", status_code=303, sync_to_thread=True)
def logout(
    request: Request[Any, Any, Any],
    data: Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)],
) -> Redirect:
    """End the session and forget the cookie."""
    same_origin(request)
    session_id: str = request.auth
    check_form_token(session_id, data.get("form_token"))
    sessions_of(request).close(session_id)
    return Redirect("/ui/login", status_code=303, cookies=[session_cookie(request, "", 0)])


def to_sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    """Without a live session, a page sends to the sign-in form, which comes back to
    it afterwards; the stale cookie is dropped."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    back = safe_next(target, "") if request.method == "GET" else ""
    location = "/ui/login" + (f"?next={quote(back, safe='/')}" if back and back != "/ui/" else "")
    return Redirect(location, status_code=303, cookies=[session_cookie(request, "", 0)])
