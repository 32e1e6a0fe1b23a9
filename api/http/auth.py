"""Bearer-token authentication and the permission guard of every route."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection, Request
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult

from api.http.support import reads_of
from application.access import Permission, Principal

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


@dataclass(frozen=True)
class Requires:
    """A route guard: only roles with ``permission`` pass (``ROLE_PERMISSIONS``); the
    others get the one 403 of ``PermissionDenied``. A coroutine: litestar runs a plain
    guard in a worker thread, a hop per request."""

    permission: Permission

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
    ) -> None:
        if isinstance(connection, Request) and connection.method == "OPTIONS":
            # litestar's own answer (the Allow header, nothing else), which the
            # authentication middleware lets through unauthenticated; a guard set on a
            # controller reaches it too, and would find no user (a 500).
            return
        principal: Principal = connection.user
        principal.require(self.permission)


def requires(permission: Permission) -> Requires:
    """The guard of a route that needs ``permission``; every route but the public
    ones declares exactly one (a test walks the app's routes)."""
    return Requires(permission)
