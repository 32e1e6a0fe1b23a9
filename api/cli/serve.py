"""``crm serve`` (the HTTP API) and ``crm deliver`` (webhooks and reminders)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer
from prometheus_client import REGISTRY, start_http_server

from adapters.telemetry import PoolCollector
from adapters.users import UserError
from api.bootstrap import Crm
from api.cli.app import app
from api.cli.common import err, fail, load_settings, product


def _add_bootstrap_admin(crm: Crm) -> None:
    """``CRM_BOOTSTRAP_ADMIN``: a fresh deployment's first admin, its token printed once."""
    name = crm.settings.bootstrap_admin
    if name is None:
        return
    try:
        token = crm.users.add_if_missing(name, "admin")
    except UserError as error:
        raise fail(f"CRM_BOOTSTRAP_ADMIN: {error}") from None
    if token is not None:
        err.print(
            f"created admin {name!r}; its token (shown once): {token}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface (default CRM_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default CRM_PORT).")] = None,
    workers: Annotated[int | None, typer.Option(help="Processes (default CRM_WORKERS).")] = None,
    projector: Annotated[
        bool,
        typer.Option(
            "--projector/--no-projector",
            help="Keep the read models current in this process too (off when a separate "
            "`crm project` runs).",
        ),
    ] = True,
) -> None:
    """Run the HTTP API (uvicorn). The interactive API page is at /schema."""
    import os

    from api.serving import serve as run_api

    settings = load_settings()
    with product(create=True) as crm:  # create the tables and check the store and key once
        _add_bootstrap_admin(crm)
    os.environ["CRM_EMBEDDED_PROJECTOR"] = "true" if projector else "false"
    bind_host = host or settings.host
    bind_port = port or settings.port
    err.print(f"API on http://{bind_host}:{bind_port}  (interactive page: /schema)")
    run_api(
        "api.http.app:app_from_environment",
        host=bind_host,
        port=bind_port,
        workers=workers or settings.workers,
        log_level=settings.log_level,
    )


@app.command()
def deliver(
    metrics_port: Annotated[
        int | None,
        typer.Option(metavar="PORT", help="Serve Prometheus metrics on this port of CRM_HOST."),
    ] = None,
) -> None:
    """Deliver webhooks and ring reminders (follow-ups due, leads unanswered) until
    interrupted, without projecting every read model: it keeps the subscriptions,
    work queue and leads models current itself. `crm project` and `crm serve` do
    this too; several may run at once on PostgreSQL (each subscription is delivered
    by one at a time)."""
    from api import push

    with product() as crm:
        if metrics_port is not None:
            REGISTRY.register(PoolCollector(crm.pools))
            start_http_server(metrics_port, addr=crm.settings.host)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        err.print("delivering webhooks (Ctrl-C or SIGTERM to stop)")
        try:
            push.deliver_until_stopped(crm, stop, own_models=True)
        except KeyboardInterrupt:
            stop.set()
