"""``crm project``: the projection workers, a rebuild, its discard, the read models' status."""

from __future__ import annotations

import signal
import threading
import time
from functools import partial
from typing import Annotated

import typer
from prometheus_client import REGISTRY, start_http_server
from rich.table import Table

from adapters.read_models import registry
from adapters.telemetry import PoolCollector
from api.bootstrap import Crm
from api.cli.app import app
from api.cli.common import err, fail, out, product, progress_bar, rate


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
        raise fail(
            f"no read model {', '.join(map(repr, unknown)) or repr(text)}; "
            f"known: {', '.join(registry.NAMES)} (or all)"
        )
    return names


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
    with product() as crm:
        if discard_names is not None:
            _discard(crm, _model_names(discard_names))
        elif rebuild_names is not None:
            _rebuild(crm, _model_names(rebuild_names), jobs, batch_size)
        elif show_status:
            _show_status(crm)
        else:
            _follow(crm, once=once, metrics_port=metrics_port)


def _discard(crm: Crm, names: list[str]) -> None:
    from adapters import projector as projection

    for name in names:
        projection.discard_rebuild(crm.db, partial(crm.read_model, name))
        out.print(f"discarded the rebuild of {name}")


def _rebuild(crm: Crm, names: list[str], jobs: int, batch_size: int | None) -> None:
    from api.rebuild import BATCH_SIZE, RebuildFailed, rebuild_groups

    groups = registry.groups(names, jobs)
    started = time.perf_counter()
    with progress_bar() as progress:
        tasks = [
            progress.add_task(f"rebuilding {', '.join(group)}", total=None, rate="-")
            for group in groups
        ]

        def advance(group: int, position: int, head: int) -> None:
            progress.update(
                tasks[group], completed=position, total=head, rate=rate(position, started)
            )

        signal.signal(signal.SIGTERM, _interrupt)  # stop the processes too
        try:
            results = rebuild_groups(
                crm, groups, progress=advance, batch_size=batch_size or BATCH_SIZE
            )
        except RebuildFailed as error:
            raise fail(f"rebuild failed: {error}") from None
    for result in results:
        per_second = result.position / result.seconds if result.seconds else 0
        out.print(
            f"{', '.join(result.names)} rebuilt up to position {result.position} in "
            f"{result.seconds:.1f} s ({per_second:,.0f} events/s) and swapped in"
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
    with progress_bar() as progress:
        task = progress.add_task("catching up", total=projector.head(), rate="-")
        started = time.perf_counter()

        def report(position: int, head: int) -> None:
            progress.update(task, completed=position, total=head, rate=rate(position, started))

        try:
            if once:
                projector.catch_up(progress=report, stop=stop)
            else:
                projection.follow_until_stopped(crm.projector, stop, on_batch=report)
        except KeyboardInterrupt:
            stop.set()
        except Exception as error:  # noqa: BLE001 - retrying cannot fix it: say which
            raise fail(f"the projector stopped: {type(error).__name__}: {error}") from None
        finally:
            stop.set()
            if not once:
                pusher.join(timeout=10)  # the deliveries in hand are committed
    if once:
        out.print(f"read models at position {projector.head()}")
