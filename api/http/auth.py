"""Bearer-token authentication and role guards."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.http.support import reads_of
from application.access import Principal

PUBLIC_PATHS = ["^/health(/live|/ready)?$", "^/schema"]


class BearerTokenAuthentication(AbstractAuthenticationMiddleware):
    """``Authorization: Bearer <token>``; tokens are looked up by hash, so a revoked
    token stops working at once."""

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("send a token: Authorization: Bearer <token>")
        users = connection.app.state["crm"].users
        user = await reads_of(connection).run(users.token_query(token.strip()))
        if user is None:
            raise NotAuthorizedException("the token is unknown or was revoked")
        return AuthenticationResult(user=Principal(user.user_id, user.role), auth=None)


def allow(
    *roles: str,
) -> Callable[[ASGIConnection[Any, Any, Any, Any], BaseRouteHandler], Coroutine[Any, Any, None]]:
    """A guard letting only these roles through (403 for the others). A coroutine:
    litestar runs a plain function guard in a worker thread, a hop per request."""
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal: Principal = connection.user
        if principal.role not in allowed:
            raise PermissionDeniedException(
                f"the {principal.role} role may not do this ({', '.join(sorted(allowed))} may)"
            )

    return guard
