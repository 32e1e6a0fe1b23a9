"""The litestar application, built around one ``Crm`` object graph."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import orjson
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ExceptionHandlersMap

from adapters.projector import follow_until_stopped
from adapters.sql import ThreadedReads
from api import push
from api.bootstrap import Crm, bootstrap
from api.http.auth import PUBLIC_PATHS, BearerTokenAuthentication
from api.http.clients import ClientRoutes
from api.http.contract import ContractDocument
from api.http.deals import DealRoutes, PipelineRoutes
from api.http.health import health, live, ready
from api.http.hygiene import (
    MAX_JSON_DEPTH,
    too_deep,
    unstorable_fields,
    unstorable_parameters,
)
from api.http.imports import IMPORT_MEDIA_TYPES, import_spreadsheet
from api.http.metrics import REQUESTS, metrics, projection_registry
from api.http.middleware import correlation, pinned_reads, schema_pages_not_found_as_problems
from api.http.params import INSTANT_DECODER, InstantSchema
from api.http.problems import HANDLERS
from api.http.reads import ReadRoutes
from api.http.subscriptions import SubscriptionRoutes
from api.http.support import OrjsonResponse
from api.logs import configure_logging
from api.ui import PATHS as CONSOLE_PATHS
from api.ui import LocalSwaggerPlugin, console, console_headers, templates
from application.settings import Settings

log = logging.getLogger("api")

MAX_BODY_BYTES = 1024 * 1024
"""Request bodies over 1 MiB are refused (413): no command needs more."""


def _unstorable(names: list[str], source: str) -> ValidationException:
    """A 422 naming each parameter or body field that holds text the store cannot keep."""
    return ValidationException(
        extra=[
            {
                "key": name,
                "message": "holds a character the store cannot keep (NUL or a lone surrogate)",
                "source": source,
            }
            for name in names
        ]
    )


async def check_input(request: Request[Any, Any, Any]) -> None:
    """Before any route: query parameters with text the store cannot hold (NUL) are
    refused (422 naming them), then the body is checked (``require_json``)."""
    bad = unstorable_parameters(request.query_params.multi_items())
    if bad:
        raise _unstorable(bad, "query")
    await require_json(request)


async def require_json(request: Request[Any, Any, Any]) -> None:
    """A write with a body must send well-formed JSON: 415 for another content type,
    400 for a body that is not UTF-8 JSON or nests deeper than ``MAX_JSON_DEPTH``
    (found before anything decodes it), 422 naming each field whose text the store
    cannot hold; so nothing malformed reaches the framework's own decoding."""
    if request.method not in ("POST", "PATCH", "PUT"):
        return
    length = request.headers.get("content-length", "")
    chunked = "chunked" in request.headers.get("transfer-encoding", "").lower()
    if not chunked and length in ("", "0"):
        return
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.url.path == "/imports":  # the body is a spreadsheet, read by the import
        if media not in IMPORT_MEDIA_TYPES:
            raise HTTPException(
                status_code=415,
                detail="send the file as text/csv or a workbook's media type: "
                + ", ".join(sorted(IMPORT_MEDIA_TYPES)),
            )
        return
    if media != "application/json" and not media.endswith("+json"):
        raise HTTPException(
            status_code=415, detail="send the body as JSON (Content-Type: application/json)"
        )
    body = await request.body()
    if not body:
        return
    if too_deep(body):
        raise ClientException(
            f"the body nests arrays and objects more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        value = orjson.loads(body)  # rejects invalid UTF-8 and lone surrogates
    except orjson.JSONDecodeError as error:
        raise ClientException(f"the body is not valid JSON: {error}") from None
    if b"\\u0000" in body:  # the only way to write NUL in valid JSON
        bad = unstorable_fields(value)
        if bad:
            raise _unstorable(bad, "body")


def _follow_store(crm: Crm, stop: threading.Event) -> None:
    """Keep the read models up to date until ``stop``, healing after the database's
    failures (``follow_until_stopped``). An error that retrying cannot fix stops the
    projector, not the API: it is logged, and tried again after a minute (the reads
    go on answering, with ``/health/ready`` reporting the lag)."""
    while not stop.is_set():
        try:
            follow_until_stopped(crm.projector, stop, idle_wait=0.5, process="api")
        except Exception:
            log.exception("the embedded projector stopped; trying again in 60 s")
            stop.wait(60)


def create_app(crm: Crm | None = None) -> Litestar:
    """The API over ``crm`` (built from the environment if not given). With the
    ``embedded_projector`` setting, the app also keeps the read models current."""
    owned = crm is None
    product = crm or bootstrap()
    # The store's own reads while the app runs (``Crm.reads``); worker threads outside.
    threaded = ThreadedReads(product.db)
    product.projector()  # the read models' tables exist before the first read

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = pusher = None
        if product.settings.embedded_projector:
            worker = threading.Thread(
                target=_follow_store, args=(product, stop), name="crm-projector", daemon=True
            )
            worker.start()
            pusher = push.run_in_background(product, stop, own_models=False)  # webhooks, reminders
        try:
            async with product.reads() as reads:
                app.state["reads"] = reads
                try:
                    yield
                finally:
                    app.state["reads"] = threaded
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=10)
            if pusher is not None:
                pusher.join(timeout=10)
            if owned:
                product.close()

    return Litestar(
        route_handlers=[
            ClientRoutes,
            DealRoutes,
            PipelineRoutes,
            ReadRoutes,
            import_spreadsheet,
            SubscriptionRoutes,
            health,
            live,
            ready,
            metrics,
            console(product),
        ],
        state=State(
            {
                "crm": product,
                "reads": threaded,
                "metrics": projection_registry(product),
            }
        ),
        middleware=[
            console_headers,
            *([pinned_reads(product.router)] if product.router else []),
            schema_pages_not_found_as_problems,
            correlation(access_log=product.settings.access_log),
            DefineMiddleware(BearerTokenAuthentication, exclude=[*PUBLIC_PATHS, CONSOLE_PATHS]),
            REQUESTS.middleware,
        ],
        exception_handlers=cast("ExceptionHandlersMap", HANDLERS),
        type_decoders=[INSTANT_DECODER],
        plugins=[InstantSchema()],
        before_request=check_input,
        request_max_body_size=MAX_BODY_BYTES,
        response_class=OrjsonResponse,
        template_config=templates(),
        logging_config=None,  # the process's own (api.logs), set up by its entry point
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(
            title="crm-core",
            version="0.1.0",
            description=(
                "Event-sourced CRM core. Every write answers with the position of its "
                "last event; pass it as `min_position` to a read to see your write. "
                "Errors are application/problem+json (RFC 9457)."
            ),
            path="/schema",
            render_plugins=[
                LocalSwaggerPlugin(path="/swagger"),
                ContractDocument(),  # /schema/openapi.json, which the page reads
            ],
            use_handler_docstrings=True,
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="A token from `crm users add NAME --role ROLE`",
                    )
                }
            ),
            security=[{"bearer": []}],
        ),
    )


def app_from_environment() -> Litestar:
    """For ASGI servers: ``uvicorn --factory api.http.app:app_from_environment``; the
    process logs as the settings say (``api.logs``)."""
    configure_logging(Settings.from_env())
    return create_app()
