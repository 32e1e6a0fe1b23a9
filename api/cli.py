"""The ``crm`` command line."""

from __future__ import annotations

import getpass
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Annotated, Any, cast
from uuid import UUID

import typer
from eventsourcing.persistence import PersistenceError
from prometheus_client import REGISTRY, start_http_server
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from adapters.keys import MasterKeyError, generate_master_key
from adapters.read_models import registry
from adapters.telemetry import PoolCollector
from adapters.users import UserError
from api.bootstrap import Crm, StoreMissing, bootstrap, describe_store
from api.cli_import import register as register_import
from api.json import dumps
from api.logs import configure_logging
from application.access import ROLES
from application.settings import Settings, SettingsError
from domain.client import ERASURE_REASONS, Client, ErasureReason
from domain.envelope import Envelope
from projections.kpis import KEYS

app = typer.Typer(
    name="crm",
    no_args_is_help=True,
    add_completion=False,
    help="Event-sourced CRM core. Configuration: CRM_* environment variables "
    "(CRM_DATABASE_URL: sqlite:///crm.db by default, or postgresql://…).",
)
users_app = typer.Typer(no_args_is_help=True, help="Users and their API tokens.")
keys_app = typer.Typer(no_args_is_help=True, help="The master key that protects personal data.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail.")
subject_app = typer.Typer(
    no_args_is_help=True, help="A client's personal-data rights: export, erase, restrict, consent."
)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(subject_app, name="subject")
webhooks_app = typer.Typer(
    no_args_is_help=True, help="Webhook subscriptions (Standard Webhooks): push events out."
)
app.add_typer(webhooks_app, name="webhooks")
register_import(app)

DEMO_USER = "demo-admin"

out = Console()
err = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", help="table, or json for scripts (as the HTTP API).")
]


def _print_json(value: Any) -> None:
    sys.stdout.buffer.write(dumps(value, indent=True) + b"\n")


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _settings() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        raise _fail(str(error)) from None
    configure_logging(settings)
    return settings


@contextmanager
def _product(*, create: bool = False) -> Iterator[Crm]:
    """The product on the configured store, with configuration problems reported
    as one clear line instead of a traceback. Only the commands that make a store
    pass ``create``; for any other, a store that does not exist is such a problem."""
    settings = _settings()
    try:
        crm = bootstrap(settings, create=create)
    except StoreMissing as error:
        raise _fail(str(error)) from None
    except (MasterKeyError, PersistenceError, OSError) as error:
        raise _fail(f"cannot open {describe_store(settings)}: {error}") from None
    with crm:
        yield crm


@app.command()
def demo(
    clients: Annotated[int, typer.Option(min=1, max=100_000, help="Clients to invent.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same story).")] = 7,
) -> None:
    """Record a realistic two-year demo history on the configured store."""
    from eventsourcing.utils import get_topic

    from api.demo import load_demo

    with _product(create=True) as crm:
        before = crm.app.recorder.max_notification_id() or 0
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("recording clients", total=clients)
            report = load_demo(
                crm,
                clients_count=clients,
                seed=seed,
                progress=lambda done: progress.update(task, completed=done),
            )
        after = crm.app.recorder.max_notification_id() or 0
        counts = Counter(
            notification.topic.rsplit(".", 1)[-1]
            for notification in crm.app.recorder.select_notifications(
                start=before + 1, limit=after - before + 1
            )
        )
        table = Table(title=f"Demo history recorded in {describe_store(crm.settings)}")
        table.add_column("event")
        table.add_column("count", justify="right")
        for topic, count in counts.most_common():
            table.add_row(topic, str(count))
        out.print(table)
        out.print(
            f"{report.clients} clients, {report.deals} deals, {after - before} events "
            f"(positions {before + 1} to {after})."
        )
        crm.projector().catch_up()
        sample = crm.app.recorder.select_notifications(start=before + 1, limit=50)
        registered = get_topic(Client.ClientRegistered)
        client = next(n.originator_id for n in sample if n.topic == registered)
        token = crm.users.issue_token(DEMO_USER)
        if token is None:
            token = crm.users.add(DEMO_USER, "admin")
        settings = crm.settings
        out.print(
            "\nEvery read model is filled. Try:\n"
            "  crm lifecycle            clients per stage now (or --as-of 2025-01-01)\n"
            "  crm funnel               the default pipeline's funnel (--pipeline windows)\n"
            "  crm kpis                 the business KPIs\n"
            f"  crm audit show --client {client}\n"
            "  crm replay examples.kpis:RepeatPurchaseRate\n\n"
            f"Or start the API with `crm serve` and open "
            f"http://{settings.host}:{settings.port}/schema, using this admin token "
            f"(user {DEMO_USER}; `crm users token {DEMO_USER}` makes a new one):\n"
        )
        out.print(token, highlight=False)


def _instant(text: str | None, *, option: str) -> datetime | None:
    """An ISO 8601 instant or date from the command line (UTC if no offset)."""
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"{option} {text!r} is not an ISO 8601 date or instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _interrupt(*_: object) -> None:
    """SIGTERM as Ctrl-C: unwind, stopping what was started (an interrupted rebuild
    resumes on the next run)."""
    raise KeyboardInterrupt


def _model_names(text: str) -> list[str]:
    """``all``, or read model names separated by commas (each once, in order)."""
    if text.strip() == "all":
        return list(registry.NAMES)
    names = list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [name for name in names if name not in registry.NAMES]
    if unknown or not names:
        raise _fail(
            f"no read model {', '.join(map(repr, unknown)) or repr(text)}; "
            f"known: {', '.join(registry.NAMES)} (or all)"
        )
    return names


def _progress() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )


@app.command()
def project(
    *,
    once: Annotated[
        bool, typer.Option("--once", help="Catch up with the store, then exit.")
    ] = False,
    show_status: Annotated[
        bool, typer.Option("--status", help="Print each read model's position and lag.")
    ] = False,
    rebuild_names: Annotated[
        str | None,
        typer.Option(
            "--rebuild",
            metavar="NAMES",
            help="Rebuild read models beside the live ones, in one pass over the store, "
            "then swap them in: a name, names separated by commas, or all.",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --rebuild: share the models out over this many processes "
            "(up to one per core helps).",
        ),
    ] = 1,
    discard_names: Annotated[
        str | None,
        typer.Option("--discard", metavar="NAMES", help="Drop an interrupted rebuild."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="With --rebuild: events per transaction (default 5,000; fewer: shorter "
            "transactions).",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            metavar="PORT",
            help="Serve Prometheus metrics (retries, database errors) on this port of CRM_HOST.",
        ),
    ] = None,
) -> None:
    """Run the projection workers: keep every read model up to date with the store.

    Without options it catches up, then follows new events until interrupted
    (Ctrl-C, or SIGTERM: the batch in hand is finished first). It rides out the
    database's failures (a lost connection, a restart, a failover): it logs them,
    retries with a growing pause and carries on from where it stopped. It exits
    non-zero only on an error that retrying cannot fix. Run it beside `crm serve`;
    several may run at once safely.
    """
    with _product() as crm:
        if discard_names is not None:
            _discard(crm, _model_names(discard_names))
        elif rebuild_names is not None:
            _rebuild(crm, _model_names(rebuild_names), jobs, batch_size)
        elif show_status:
            _show_status(crm)
        else:
            _follow(crm, once=once, metrics_port=metrics_port)


def _rate(done: int, started: float) -> str:
    """Events per second since ``started`` (a ``time.perf_counter()``), for a progress bar."""
    elapsed = time.perf_counter() - started
    return f"{done / elapsed:,.0f}" if elapsed else "-"


def _discard(crm: Crm, names: list[str]) -> None:
    from adapters import projector as projection

    for name in names:
        projection.discard_rebuild(crm.db, partial(crm.read_model, name))
        out.print(f"discarded the rebuild of {name}")


def _rebuild(crm: Crm, names: list[str], jobs: int, batch_size: int | None) -> None:
    from api.rebuild import BATCH_SIZE, RebuildFailed, rebuild_groups

    groups = registry.groups(names, jobs)
    started = time.perf_counter()
    with _progress() as progress:
        tasks = [
            progress.add_task(f"rebuilding {', '.join(group)}", total=None, rate="-")
            for group in groups
        ]

        def advance(group: int, position: int, head: int) -> None:
            progress.update(
                tasks[group], completed=position, total=head, rate=_rate(position, started)
            )

        signal.signal(signal.SIGTERM, _interrupt)  # stop the processes too
        try:
            results = rebuild_groups(
                crm, groups, progress=advance, batch_size=batch_size or BATCH_SIZE
            )
        except RebuildFailed as error:
            raise _fail(f"rebuild failed: {error}") from None
    for result in results:
        rate = result.position / result.seconds if result.seconds else 0
        out.print(
            f"{', '.join(result.names)} rebuilt up to position {result.position} in "
            f"{result.seconds:.1f} s ({rate:,.0f} events/s) and swapped in"
        )
    if len(results) > 1:
        out.print(f"all done in {time.perf_counter() - started:.1f} s")


def _show_status(crm: Crm) -> None:
    table = Table()
    for column in ("read model", "position", "head", "behind (events)", "behind (s)"):
        table.add_column(column, justify="right" if column != "read model" else "left")
    for s in crm.projector().status():
        table.add_row(
            s.name, str(s.position), str(s.head), str(s.lag_events), f"{s.lag_seconds:.1f}"
        )
    out.print(table)


def _follow(crm: Crm, *, once: bool, metrics_port: int | None) -> None:
    """Catch up (``once``), or catch up and follow until stopped, healing after the
    database's failures."""
    from adapters import projector as projection

    projector = crm.projector()
    if metrics_port is not None:
        REGISTRY.register(PoolCollector(crm.pools))
        start_http_server(metrics_port, addr=crm.settings.host)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # after the batch in hand
    if not once:
        err.print("following new events (Ctrl-C or SIGTERM to stop)")
        from api import push

        pusher = push.run_in_background(crm, stop, own_models=False)  # webhooks, reminders
    with _progress() as progress:
        task = progress.add_task("catching up", total=projector.head(), rate="-")
        started = time.perf_counter()

        def report(position: int, head: int) -> None:
            progress.update(task, completed=position, total=head, rate=_rate(position, started))

        try:
            if once:
                projector.catch_up(progress=report, stop=stop)
            else:
                projection.follow_until_stopped(crm.projector, stop, on_batch=report)
        except KeyboardInterrupt:
            stop.set()
        except Exception as error:  # noqa: BLE001 - retrying cannot fix it: say which
            raise _fail(f"the projector stopped: {type(error).__name__}: {error}") from None
        finally:
            stop.set()
            if not once:
                pusher.join(timeout=10)  # the deliveries in hand are committed
    if once:
        out.print(f"read models at position {projector.head()}")


@app.command()
def health(
    ready: Annotated[
        bool,
        typer.Option(
            "--ready", help="Also require the read models within CRM_READY_MAX_LAG events."
        ),
    ] = False,
) -> None:
    """Exit 0 if the store answers (and, with --ready, the read models are current
    enough), 1 if not, saying why: a container's healthcheck."""
    with _product() as crm:
        readiness = crm.readiness()
    healthy = readiness.ready if ready else readiness.reachable
    if not healthy:
        err.print(f"not {'ready' if ready else 'healthy'}: {readiness.problem}")
        raise typer.Exit(code=1)
    out.print(
        f"ok: head {readiness.head_position}, read models at {readiness.read_models_position}"
    )


@app.command()
def replay(
    kpi: Annotated[str, typer.Argument(help="The KPI class, as module:ClassName.")],
    until: Annotated[
        str | None, typer.Option(help="Only events that happened up to this instant.")
    ] = None,
    position: Annotated[
        int | None, typer.Option(min=0, help="Only events up to this store position.")
    ] = None,
    output: FormatOption = Format.table,
) -> None:
    """Fold the stored history through a KPI class, in memory, and print its result
    next to the built-in KPI with the same key."""
    from adapters.read_models.kpis import KPI_MODELS, KpiQueries
    from adapters.replay import KpiLoadError, load_kpi
    from adapters.replay import replay as run_replay

    if until is not None and position is not None:
        raise _fail("give --until or --position, not both")
    as_of = _instant(until, option="--until")
    with _product() as crm:
        try:
            subject = load_kpi(kpi)
        except KpiLoadError as error:
            raise _fail(str(error)) from None
        with _progress() as progress:
            task = progress.add_task(f"replaying {subject.key}", total=None, rate="-")
            started = time.perf_counter()

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, rate=_rate(done, started))

            report = run_replay(crm.app, subject, until=as_of, position=position, progress=advance)
        current: Any = None
        built_in = subject.key in KEYS
        if built_in and position is None:
            projector = crm.projector(KPI_MODELS)
            projector.catch_up()
            current = KpiQueries(crm.db, crm.settings.lead_response).values(report.as_of)[
                subject.key
            ]
        if output == Format.json:
            _print_json(
                {
                    "key": report.key,
                    "value": report.value,
                    "built_in": current,
                    "as_of": report.as_of,
                    "position": report.position,
                    "events_read": report.events_read,
                    "events_folded": report.events_folded,
                    "seconds": report.seconds,
                    "events_per_second": report.events_per_second,
                }
            )
            return
        table = Table(title=f"{report.key} as of {report.as_of.isoformat(timespec='seconds')}")
        table.add_column("")
        table.add_column("value")
        table.add_row("replayed", _show(report.value))
        if built_in:
            shown = "(not comparable with --position)" if position is not None else _show(current)
            table.add_row("built-in (read models)", shown)
        out.print(table)
        out.print(
            f"{report.events_read} events read up to position {report.position}, "
            f"{report.events_folded} folded, in {report.seconds:.2f} s "
            f"({report.events_per_second:,.0f} events/s)"
        )


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


@app.command()
def lifecycle(
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO instant (default now).")] = None,
    output: FormatOption = Format.table,
) -> None:
    """Clients per lifecycle stage at an instant."""
    at = _instant(as_of, option="--as-of") or datetime.now(UTC)
    with _product() as crm:
        crm.projector(["lifecycle"]).catch_up()
        counts = crm.read_model("lifecycle").stage_counts(at)  # type: ignore[attr-defined]
        if output == Format.json:
            _print_json({"as_of": at, "counts": counts})
            return
        table = Table(title=f"Lifecycle as of {at.isoformat(timespec='seconds')}")
        table.add_column("stage")
        table.add_column("clients", justify="right")
        for stage, n in counts.items():
            table.add_row(stage, str(n))
        out.print(table)


@app.command()
def kpis(
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO instant (default now).")] = None,
    output: FormatOption = Format.table,
) -> None:
    """The business KPIs at an instant."""
    from adapters.read_models.kpis import KPI_MODELS, KpiQueries

    at = _instant(as_of, option="--as-of") or datetime.now(UTC)
    with _product() as crm:
        crm.projector(KPI_MODELS).catch_up()
        values = KpiQueries(crm.db, crm.settings.lead_response).values(at)
        if output == Format.json:
            _print_json({"as_of": at, **values})
            return
        table = Table(title=f"KPIs as of {at.isoformat(timespec='seconds')}")
        table.add_column("kpi")
        table.add_column("value")
        for key, value in values.items():
            table.add_row(key, _show(value))
        out.print(table)


def _add_bootstrap_admin(crm: Crm) -> None:
    """``CRM_BOOTSTRAP_ADMIN``: a fresh deployment's first admin, its token printed once."""
    name = crm.settings.bootstrap_admin
    if name is None:
        return
    try:
        token = crm.users.add_if_missing(name, "admin")
    except UserError as error:
        raise _fail(f"CRM_BOOTSTRAP_ADMIN: {error}") from None
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

    settings = _settings()
    with _product(create=True) as crm:  # create the tables and check the store and key once
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
def funnel(
    pipeline: Annotated[str, typer.Option(help="Pipeline name.")] = "default",
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO instant (default now).")] = None,
    output: FormatOption = Format.table,
) -> None:
    """The sales funnel of a pipeline at an instant."""
    from adapters.read_models.funnel import FunnelReadModel
    from domain.pipeline import pipeline_id

    at = _instant(as_of, option="--as-of") or datetime.now(UTC)
    with _product() as crm:
        crm.projector(["funnel"]).catch_up()
        model = crm.model(FunnelReadModel)
        report = model.funnel(pipeline_id(pipeline), at)
        if output == Format.json:
            _print_json(asdict(report))
            return
        table = Table(title=f"Funnel {pipeline!r} as of {at.date().isoformat()}")
        for column in ("stage", "reached", "current", "next %", "cumulative %", "avg days"):
            table.add_column(column, justify="left" if column == "stage" else "right")
        for s in report.stages:
            table.add_row(
                s.stage,
                str(s.reached),
                str(s.current),
                _percent(s.conversion_next),
                _percent(s.conversion_cumulative),
                "-" if s.avg_days_in_stage is None else f"{s.avg_days_in_stage:.1f}",
            )
        out.print(table)
        out.print(
            f"won {report.won}, lost {report.lost}, win rate {_percent(report.win_rate)}, "
            f"lost reasons: {_show(dict(report.lost_reasons))}, "
            f"average sales cycle {_show(report.avg_sales_cycle_days)} days"
        )


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


@audit_app.command("show")
def audit_show(
    client: Annotated[str | None, typer.Option(help="A client's id.")] = None,
    actor: Annotated[str | None, typer.Option(help="Who acted.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """A client's (or an actor's) audit trail: who changed which field, when, how.
    Showing personal values counts against the export limit and is recorded."""
    from uuid import UUID

    from adapters.read_models.audit import AuditReadModel
    from api.disclosure import entry_holds_personal
    from application.errors import ApplicationError

    try:
        client_id = UUID(client) if client else None
    except ValueError:
        raise _fail(f"{client!r} is not a client id") from None
    with _product() as crm:
        crm.projector(["audit"]).catch_up()
        model = crm.model(AuditReadModel)
        page = model.page(client_id=client_id, actor_id=actor, limit=limit)
        try:
            crm.exports.disclose(
                _cli_envelope(),
                personal=any(map(entry_holds_personal, page.entries)),
                kind="audit",
                format="table",
                filters={"client_id": client_id, "actor_id": actor, "limit": limit},
                up_to_position=page.entries[-1].position if page.entries else None,
            )
        except ApplicationError as error:
            raise _fail(error.message) from None
        table = Table(title="Audit trail")
        for column in ("pos", "occurred", "who", "source", "event", "field", "old", "new"):
            table.add_column(column, overflow="fold")
        for e in page.entries:
            table.add_row(
                str(e.position),
                e.occurred_at.strftime("%Y-%m-%d %H:%M"),
                f"{e.actor_id} ({e.actor_role})",
                e.source,
                e.event_type,
                e.field or "",
                e.old_value or "",
                e.new_value if e.field else (e.details or ""),
            )
        out.print(table)
        if page.next_cursor:
            out.print(f"(first {limit} entries; use --limit or the API's cursor for more)")


@audit_app.command("verify")
def audit_verify() -> None:
    """Recompute the hash chain over the stored events; name the first broken position
    (exit 1) or print the verified head (exit 0)."""
    from adapters.read_models.chain import verify

    with _product() as crm:
        try:
            crm.projector(["chain"]).catch_up()
        except (ValueError, PersistenceError) as error:  # a damaged store: verify says where
            err.print(f"could not chain the newest events ({error}); verifying the chain as is")
        report = verify(crm.db, crm.app.recorder)
    if not report.ok:
        err.print(
            f"[bold red]chain broken[/] at position {report.first_broken_position}: "
            f"{report.reason} ({report.checked} events before it verified)",
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
    pending = f"; {report.unchained} newer events not chained yet" if report.unchained else ""
    out.print(
        f"verified {report.checked} events; head position {report.head_position}, "
        f"link {report.head_link}{pending}",
        highlight=False,
        soft_wrap=True,
    )


@audit_app.command("head")
def audit_head() -> None:
    """Print the chain's head position and link (after chaining every stored event),
    to keep elsewhere as an anchor."""
    from adapters.read_models.chain import ChainReadModel

    with _product() as crm:
        crm.projector(["chain"]).catch_up()
        model = crm.model(ChainReadModel)
        position, link = model.head()
    out.print(f"{position} {link}", highlight=False, soft_wrap=True)


def _cli_envelope() -> Envelope:
    """Commands typed at the CLI are attributed to the operating-system user, with the
    admin role (who may run `crm` may read the store directly anyway)."""
    return Envelope(
        actor_id=getpass.getuser() or "cli",
        actor_role="admin",
        source="cli",
        correlation_id=f"cli:{uuid.uuid4()}",
    )


def _client_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise _fail(f"{text!r} is not a client id") from None


def _subject_command(command: object) -> None:
    from application.errors import ApplicationError
    from domain.errors import DomainError

    with _product() as crm:
        try:
            result = crm.app.execute(command, _cli_envelope())
        except (DomainError, ApplicationError) as error:
            raise _fail(error.message) from None
    out.print(
        f"done (client {result.id} is at version {result.version}, position {result.position})"
    )


@subject_app.command("export")
def subject_export(
    client: Annotated[str, typer.Argument(help="The client's id.")],
    output: Annotated[Path | None, typer.Option("--out", help="Write to a file.")] = None,
) -> None:
    """Everything held about one client, as JSON (the export is recorded)."""
    from api.subject import export_subject
    from application.errors import ApplicationError

    client_id = _client_id(client)
    with _product() as crm:
        crm.projector().catch_up()
        try:
            document = dumps(export_subject(crm, client_id, _cli_envelope()), indent=True)
        except ApplicationError as error:  # an unknown client, the export limit
            raise _fail(error.message) from None
    if output is None:
        sys.stdout.buffer.write(document + b"\n")
    else:
        output.write_bytes(document)
        err.print(f"written to {output}")


@subject_app.command("erase")
def subject_erase(
    client: Annotated[str, typer.Argument(help="The client's id.")],
    reason: Annotated[
        str,
        typer.Option(help=f"Why, kept in clear for auditors: one of {', '.join(ERASURE_REASONS)}."),
    ],
) -> None:
    """Erase a client's personal data for ever: their key is destroyed (with the keys of
    cards merged into theirs); dates, amounts and stages stay."""
    from application.clients import ErasePersonalData

    # Any other reason goes to the domain as it is, to be refused there.
    command = ErasePersonalData(client_id=_client_id(client), reason=cast("ErasureReason", reason))
    _subject_command(command)


@subject_app.command("restrict")
def subject_restrict(
    client: Annotated[str, typer.Argument(help="The client's id.")],
    reason: Annotated[str, typer.Option(help="Why.")],
) -> None:
    """Restrict processing: no marketing contacts, no new deals."""
    from application.clients import RestrictProcessing

    _subject_command(RestrictProcessing(client_id=_client_id(client), reason=reason))


@subject_app.command("lift")
def subject_lift(
    client: Annotated[str, typer.Argument(help="The client's id.")],
    reason: Annotated[str, typer.Option(help="Why.")],
) -> None:
    """Lift a restriction of processing."""
    from application.clients import LiftRestriction

    _subject_command(LiftRestriction(client_id=_client_id(client), reason=reason))


@subject_app.command("consent")
def subject_consent(
    client: Annotated[str, typer.Argument(help="The client's id.")],
    purpose: Annotated[
        str, typer.Argument(help="One of the declared purposes (CRM_CONSENT_PURPOSES).")
    ],
    withdraw: Annotated[
        bool, typer.Option("--withdraw", help="Record a withdrawal instead.")
    ] = False,
) -> None:
    """Record a consent for a purpose (or its withdrawal)."""
    from application.clients import GiveConsent, WithdrawConsent

    kind = WithdrawConsent if withdraw else GiveConsent
    _subject_command(kind(client_id=_client_id(client), purpose=purpose))


@app.command()
def status(output: FormatOption = Format.table) -> None:
    """Where the store is and how much it holds."""
    with _product() as crm:
        head = crm.app.recorder.max_notification_id() or 0
        if output == Format.json:
            _print_json(
                {
                    "store": describe_store(crm.settings),
                    "events": head,
                    "head_position": head,
                    "read_models_position": crm.projector(setup=False).position(),
                    "active_users": sum(user.active for user in crm.users.list()),
                }
            )
            return
        out.print(f"store:  {describe_store(crm.settings)}")
        out.print(f"events: {head} (head position {head})")
        out.print(f"users:  {sum(user.active for user in crm.users.list())} active")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name, e.g. maria (lower case).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
) -> None:
    """Create a user and print their API token (shown once, stored only as a hash)."""
    with _product(create=True) as crm:
        try:
            token = crm.users.add(name, role)
        except UserError as error:
            raise _fail(str(error)) from None
    err.print(f"user {name} ({role}) created; their token (keep it, it is not shown again):")
    out.print(token, highlight=False)


@users_app.command("token")
def users_token(name: str) -> None:
    """Give an active user a new token (printed once; the old one stops working)."""
    with _product() as crm:
        token = crm.users.issue_token(name)
    if token is None:
        raise _fail(f"no active user {name!r}")
    out.print(token, highlight=False)


@users_app.command("list")
def users_list() -> None:
    """List users, their roles and whether they are active."""
    with _product() as crm:
        table = Table()
        for column in ("user", "role", "active", "created"):
            table.add_column(column)
        for user in crm.users.list():
            table.add_row(user.user_id, user.role, "yes" if user.active else "no", user.created_at)
        out.print(table)


@users_app.command("revoke")
def users_revoke(name: str) -> None:
    """Deactivate a user; their token stops working at once."""
    with _product() as crm:
        if not crm.users.revoke(name):
            raise _fail(f"no active user {name!r}")
    out.print(f"user {name} revoked")


@keys_app.command("rotate")
def keys_rotate(
    new_key: Annotated[
        str | None,
        typer.Option("--new-key", help="The new master key (base64); a random one if absent."),
    ] = None,
) -> None:
    """Re-wrap every data key under a new master key (events are not touched).

    Stop the API and the projectors first, and start them again with the new key."""
    from adapters.keys import decode_master_key, write_key_file

    settings = _settings()
    text = new_key or generate_master_key()
    try:
        new_master = decode_master_key(text, origin="--new-key")
    except MasterKeyError as error:
        raise _fail(str(error)) from None
    with _product() as crm:
        count = crm.keys.rotate(new_master)
    if settings.master_key:
        err.print(f"re-wrapped {count} keys; set CRM_MASTER_KEY to the new master key:")
        out.print(text, highlight=False)
    else:
        write_key_file(Path(settings.key_file), text)
        err.print(f"re-wrapped {count} keys; the new master key replaced {settings.key_file}")


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random master key (for CRM_MASTER_KEY or a key file)."""
    out.print(generate_master_key(), highlight=False)


# ------------------------------------------------------------------ webhooks


def _subscription_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise _fail(f"{text!r} is not a subscription id") from None


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="The receiver's http(s) URL.")],
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            help="*, Aggregate.* or Aggregate.Event (Client.PurchaseMade, Deal.*, "
            "FollowUp.Due, Lead.Unanswered); repeat, or separate with commas. Default *.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    include_personal: Annotated[
        bool, typer.Option("--include-personal", help="Send personal fields too.")
    ] = False,
) -> None:
    """Subscribe a receiver; prints the subscription's id and its signing secret
    (shown once: keep it)."""
    from api.push import PersonalDataNotAllowed, create_subscription
    from application.errors import ApplicationError
    from domain.errors import DomainError

    patterns = [p.strip() for item in events or ["*"] for p in item.split(",") if p.strip()]
    with _product() as crm:
        try:
            created = create_subscription(
                crm,
                _cli_envelope(),
                url=url,
                events=patterns,
                description=description,
                include_personal=include_personal,
            )
        except (DomainError, ApplicationError) as error:
            raise _fail(error.message) from None
        except PersonalDataNotAllowed as error:
            raise _fail(str(error)) from None
    err.print(f"subscription {created.result.id} created; its signing secret (shown once):")
    out.print(f"{created.result.id} {created.secret}", highlight=False, soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list() -> None:
    """Every subscription: status, delivered position, lag, failures, last error."""
    from api.push import list_subscriptions

    with _product() as crm:
        crm.projector(["subscriptions"]).catch_up()
        found = list_subscriptions(crm)
    table = Table()
    for column in ("id", "url", "events", "status", "delivered", "lag", "failures", "last error"):
        table.add_column(column, overflow="fold")
    for s in found:
        table.add_row(
            str(s["id"]),
            s["url"],
            ", ".join(s["events"]),
            s["status"],
            str(s["delivered_position"]),
            str(s["lag"]),
            str(s["failures"]),
            s["last_error"] or "",
        )
    out.print(table)


def _webhook_command(command: object) -> None:
    from application.errors import ApplicationError
    from domain.errors import DomainError

    with _product() as crm:
        try:
            result = crm.app.execute(command, _cli_envelope())
        except (DomainError, ApplicationError) as error:
            raise _fail(error.message) from None
    out.print(f"done (subscription {result.id}, position {result.position})")


@webhooks_app.command("remove")
def webhooks_remove(subscription: Annotated[str, typer.Argument(help="Its id.")]) -> None:
    """Remove a subscription: deliveries stop, its secret is destroyed."""
    from application.subscriptions import RemoveSubscription

    _webhook_command(RemoveSubscription(subscription_id=_subscription_id(subscription)))


@webhooks_app.command("pause")
def webhooks_pause(subscription: Annotated[str, typer.Argument(help="Its id.")]) -> None:
    """Stop deliveries where they are."""
    from application.subscriptions import PauseSubscription

    _webhook_command(PauseSubscription(subscription_id=_subscription_id(subscription)))


@webhooks_app.command("resume")
def webhooks_resume(subscription: Annotated[str, typer.Argument(help="Its id.")]) -> None:
    """Deliver again from where deliveries stopped (after a pause or failing)."""
    from application.subscriptions import ResumeSubscription

    _webhook_command(ResumeSubscription(subscription_id=_subscription_id(subscription)))


@webhooks_app.command("replay")
def webhooks_replay(
    subscription: Annotated[str, typer.Argument(help="Its id.")],
    from_position: Annotated[int, typer.Option("--from", min=1, help="A store position.")],
) -> None:
    """Deliver every matching event again from a store position on."""
    from application.subscriptions import ReplaySubscription

    _webhook_command(
        ReplaySubscription(
            subscription_id=_subscription_id(subscription), from_position=from_position
        )
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

    with _product() as crm:
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


def main() -> None:
    app()
