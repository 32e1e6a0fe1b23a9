"""What the store says: health, status, lifecycle, KPIs (and a KPI replayed), the funnel."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table

from api.bootstrap import describe_store
from api.cli.app import app
from api.cli.common import (
    Format,
    FormatOption,
    err,
    fail,
    instant,
    out,
    print_json,
    product,
    progress_bar,
    rate,
    show,
)
from api.instants import is_projection
from projections.kpis import KEYS


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
    with product() as crm:
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
        raise fail("give --until or --position, not both")
    as_of = instant(until, option="--until")
    with product() as crm:
        try:
            subject = load_kpi(kpi)
        except KpiLoadError as error:
            raise fail(str(error)) from None
        with progress_bar() as progress:
            task = progress.add_task(f"replaying {subject.key}", total=None, rate="-")
            started = time.perf_counter()

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, rate=rate(done, started))

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
            print_json(
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
        table.add_row("replayed", show(report.value))
        if built_in:
            shown = "(not comparable with --position)" if position is not None else show(current)
            table.add_row("built-in (read models)", shown)
        out.print(table)
        out.print(
            f"{report.events_read} events read up to position {report.position}, "
            f"{report.events_folded} folded, in {report.seconds:.2f} s "
            f"({report.events_per_second:,.0f} events/s)"
        )


@app.command()
def lifecycle(
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO instant (default now).")] = None,
    output: FormatOption = Format.table,
) -> None:
    """Clients per lifecycle stage at an instant."""
    at = instant(as_of, option="--as-of") or datetime.now(UTC)
    with product() as crm:
        crm.projector(["lifecycle"]).catch_up()
        counts = crm.read_model("lifecycle").stage_counts(at)  # type: ignore[attr-defined]
        if output == Format.json:
            print_json({"as_of": at, "projected": _projected(at), "counts": counts})
            return
        table = Table(title=f"Lifecycle as of {_as_of(at)}")
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

    at = instant(as_of, option="--as-of") or datetime.now(UTC)
    with product() as crm:
        crm.projector(KPI_MODELS).catch_up()
        values = KpiQueries(crm.db, crm.settings.lead_response).values(at)
        if output == Format.json:
            print_json({"as_of": at, "projected": _projected(at), **values})
            return
        table = Table(title=f"KPIs as of {_as_of(at)}")
        table.add_column("kpi")
        table.add_column("value")
        for key, value in values.items():
            table.add_row(key, show(value))
        out.print(table)


@app.command()
def funnel(
    pipeline: Annotated[str, typer.Option(help="Pipeline name.")] = "default",
    as_of: Annotated[str | None, typer.Option("--as-of", help="ISO instant (default now).")] = None,
    output: FormatOption = Format.table,
) -> None:
    """The sales funnel of a pipeline at an instant."""
    from adapters.read_models.funnel import FunnelReadModel
    from domain.pipeline import pipeline_id

    at = instant(as_of, option="--as-of") or datetime.now(UTC)
    with product() as crm:
        crm.projector(["funnel"]).catch_up()
        model = crm.model(FunnelReadModel)
        report = model.funnel(pipeline_id(pipeline), at)
        if not report.stages:  # every pipeline has a stage: there is none of that name
            raise fail(f"no pipeline {pipeline!r}")
        if output == Format.json:
            print_json({**asdict(report), "projected": _projected(at)})
            return
        table = Table(title=f"Funnel {pipeline!r} as of {_as_of(at, timespec='date')}")
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
            f"lost reasons: {show(dict(report.lost_reasons))}, "
            f"average sales cycle {show(report.avg_sales_cycle_days)} days"
        )


def _projected(at: datetime) -> bool:
    """An answer as of a later instant than now is a projection (``api.instants``)."""
    return is_projection(at, datetime.now(UTC))


def _as_of(at: datetime, timespec: str = "seconds") -> str:
    """The instant in a table's title, marked when the table is a projection."""
    shown = at.date().isoformat() if timespec == "date" else at.isoformat(timespec=timespec)
    return f"{shown} (projected: after now)" if _projected(at) else shown


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.0f}%"


@app.command()
def status(output: FormatOption = Format.table) -> None:
    """Where the store is and how much it holds."""
    with product() as crm:
        head = crm.app.recorder.max_notification_id() or 0
        if output == Format.json:
            print_json(
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
