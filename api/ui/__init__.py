"""The web console at ``/ui`` for auditors and analysts (SPEC §8 "Console"): signed in
with an API token, read-only, server-rendered, every asset served by the app itself.

``console(crm)`` is the router to register; ``templates()`` the app's template
configuration; ``console_headers`` the middleware that puts the security headers on
every answer under ``/ui`` and ``/schema``; ``LocalSwaggerPlugin`` the OpenAPI page
without a CDN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from litestar import Request, Router
from litestar.exceptions import ClientException
from litestar.middleware import DefineMiddleware
from litestar.static_files import create_static_files_router
from litestar.types import ExceptionHandlersMap

from adapters import postgres
from adapters.sessions import SqlConsoleSessions
from api.bootstrap import Crm
from api.http.hygiene import unstorable_parameters
from api.ui.auth import PUBLIC, ConsoleAuthentication, login, login_page, logout
from api.ui.errors import HANDLERS
from api.ui.pages import PAGES
from api.ui.schema import LocalSwaggerPlugin
from api.ui.security import console_headers
from api.ui.views import templates

STATIC = Path(__file__).parent / "static"
PATHS = "^/ui(/|$)"
"""The console's paths, which the API's bearer-token check leaves alone."""

__all__ = ["PATHS", "LocalSwaggerPlugin", "console", "console_headers", "templates"]


async def _check_query(request: Request[Any, Any, Any]) -> None:
    """Before every console page (instead of the API's JSON checks: the console's
    forms are not JSON): text the store cannot hold is refused."""
    bad = unstorable_parameters(request.query_params.multi_items())
    if bad:
        raise ClientException(
            "these values hold a character that cannot be read: " + ", ".join(bad)
        )


def console(crm: Crm) -> Router:
    """The console's routes over ``crm``, its sessions' table made if missing."""
    sessions = SqlConsoleSessions(crm.db)
    if crm.settings.backend == "postgresql":  # API workers starting together take turns
        with postgres.ddl_lock(crm.settings.database_url, crm.settings.database_schema):
            sessions.create_tables()
    else:
        sessions.create_tables()
    return Router(  # registering copies the router deeply: nothing with a lock inside
        path="/ui",
        route_handlers=[
            login_page,
            login,
            logout,
            *PAGES,
            create_static_files_router(path="/static", directories=[STATIC]),
        ],
        middleware=[DefineMiddleware(ConsoleAuthentication, exclude=list(PUBLIC))],
        before_request=_check_query,
        exception_handlers=cast("ExceptionHandlersMap", HANDLERS),
        include_in_schema=False,
    )
