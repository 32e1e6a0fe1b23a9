"""``crm import FILE``: clients or purchases from a CSV file, every row or none.

``register(app)`` adds the command to the ``crm`` typer app (``api/cli.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn

from adapters.csv_import import (
    DEFAULT_ACTOR,
    ImportFileError,
    ImportReport,
    ProgressCallback,
    import_file,
)
from domain.errors import DomainError

MAX_PROBLEMS_SHOWN = 1000
"""A file with a wrong column can have a problem on every row; the first thousand
say enough."""


class Kind(StrEnum):
    clients = "clients"
    purchases = "purchases"


def register(app: typer.Typer) -> None:
    """Add the ``import`` command to ``app``."""
    app.command("import")(import_csv)


def import_csv(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="UTF-8 CSV, comma-separated, with a header line.",
            show_default=False,
        ),
    ],
    kind: Annotated[
        Kind | None,
        typer.Option(
            help="What the file holds. Default: from the header "
            "(a name column: clients; an amount column: purchases).",
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str, typer.Option(metavar="NAME", help="Who the recorded events are attributed to.")
    ] = DEFAULT_ACTOR,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; record nothing.")
    ] = False,
) -> None:
    """Import clients or purchases from a CSV file: every row, or none.

    Every row is checked first; if any row has a problem, nothing is recorded and
    each problem is listed with its line number (the header is line 1). Otherwise
    the whole file is recorded in one transaction. Importing the same file again
    records nothing. Exit code 2 when the file has problems (nothing is recorded
    then), 0 otherwise.
    """
    from api.cli import _fail, _product, err, out  # deferred: api.cli registers this module

    try:
        data = file.read_bytes()
    except OSError as error:
        raise _fail(f"cannot read {file}: {error.strerror or error}") from None
    with _product(create=True) as crm, _progress_bar(err) as progress:
        try:
            report = import_file(
                crm.app,
                data,
                kind=kind.value if kind else None,
                actor=actor,
                dry_run=dry_run,
                progress=progress,
            )
        except ImportFileError as error:
            raise _fail(f"{file}: {error}") from None
        except DomainError as error:
            raise _fail(f"--actor: {error.message}") from None
    _print_report(report, file, out, err)
    if not report.ok:
        raise typer.Exit(code=2)


@contextmanager
def _progress_bar(console: Console) -> Iterator[ProgressCallback]:
    """A bar per stage (validating, then recording) on stderr."""
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"{stage} rows", total=total)
            progress.update(tasks[stage], completed=done, total=total)

        yield update


def _print_report(report: ImportReport, file: Path, out: Console, err: Console) -> None:
    def say(console: Console, text: str) -> None:
        # File contents may hold square brackets: print them, do not read them as markup.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def rows(n: int) -> str:
        noun = {"clients": "client", "purchases": "purchase"}.get(report.kind or "", "row")
        return f"{n} {noun}{'' if n == 1 else 's'}"

    if report.problems:
        for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
            say(out, str(problem))
        hidden = len(report.problems) - MAX_PROBLEMS_SHOWN
        if hidden > 0:
            say(out, f"… and {hidden} more problems")
        bad_rows = len({p.line for p in report.problems if p.line is not None and p.line > 1})
        if report.failed_while_recording:
            summary = "recording was refused"
        elif bad_rows:
            summary = f"{bad_rows} of {report.rows} rows have problems"
        else:
            summary = "the file's header has problems"
        say(err, f"error: {file}: {summary}; nothing was imported")
    elif report.already_imported:
        first = f"{rows(len(report.results))}, " if report.results else ""
        say(
            out,
            f"{file} was already imported ({first}correlation id {report.correlation_id}); "
            "nothing recorded",
        )
    elif report.rows == 0:
        say(out, f"nothing to import: {file} has a header but no rows")
    elif report.dry_run:
        say(out, f"dry run: {rows(report.rows)} in {file} can be imported; nothing recorded")
    else:
        say(
            out,
            f"imported {rows(len(report.results))} from {file} "
            f"(up to position {report.position}, correlation id {report.correlation_id})",
        )
