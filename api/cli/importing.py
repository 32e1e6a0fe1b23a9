"""``crm import FILE``: clients and purchases from a workbook or CSV file, every row or
none (or, with ``--skip-invalid``, every good row).

``register(app)`` adds the command to a Typer app; importing this module adds it to
``crm``'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from adapters.csv_import import (
    DEFAULT_ACTOR,
    ImportFileError,
    ImportReport,
    Options,
    import_file,
    parse_column_option,
)
from api.cli.app import app
from api.cli.common import err, fail, out, product
from application.imports import ProgressCallback
from application.phones import SUPPORTED_COUNTRIES
from domain.errors import DomainError

MAX_PROBLEMS_SHOWN = 1000
"""A file with a wrong column can have a problem on every row; the first thousand
say enough (``--report`` writes them all)."""


class Kind(StrEnum):
    clients = "clients"
    purchases = "purchases"


class DateFormat(StrEnum):
    DMY = "DMY"
    MDY = "MDY"
    YMD = "YMD"


def register(target: typer.Typer) -> None:
    """Add the ``import`` command to ``target``."""
    target.command("import")(import_command)


def import_command(  # noqa: PLR0917 - typer reads options from parameters
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help=".xlsx, .xls, .ods, or .csv/.tsv/.txt (any common delimiter and encoding), "
            "with a header line.",
            show_default=False,
        ),
    ],
    kind: Annotated[
        Kind | None,
        typer.Option(
            help="What the file (every sheet imported) holds. Default: from each sheet's "
            "header (an amount column: purchases; a name column: clients).",
            show_default=False,
        ),
    ] = None,
    sheet: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME",
            help="Import only this sheet of a workbook (repeatable).",
            show_default=False,
        ),
    ] = None,
    column: Annotated[
        list[str] | None,
        typer.Option(
            metavar="HEADER=FIELD",
            help='Map a column the header table does not know: "Місто=attr.city" (custom '
            'attribute), "Tel. 2=phones", "Примітка=-" (leave out). Repeatable.',
            show_default=False,
        ),
    ] = None,
    country: Annotated[
        str | None,
        typer.Option(
            metavar="CC",
            help="Read national phone numbers as numbers of this country (UA, DE…). "
            "Default: CRM_DEFAULT_COUNTRY.",
            show_default=False,
        ),
    ] = None,
    date_format: Annotated[
        DateFormat | None,
        typer.Option(
            help="The order of day, month and year in dates such as 01/02/2024, for a "
            "column whose values do not settle it.",
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str, typer.Option(metavar="NAME", help="Who the recorded events are attributed to.")
    ] = DEFAULT_ACTOR,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check every row and report; record nothing.")
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option(
            "--skip-invalid",
            help="Record the good rows even if others have problems (see --rejects).",
        ),
    ] = False,
    rejects: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.csv",
            help="Write the rows not imported, unchanged, with a problem column, to fix "
            "and import again.",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE.csv",
            help="Write every problem (sheet, line, column, value, problem) as CSV.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Import clients and purchases from a spreadsheet: every row, or none.

    Every row is checked first, by the same rules as the API's commands; if any row has
    a problem, nothing is recorded and each problem is listed with its line (the
    header of a CSV file is line 1; a workbook's lines are its row numbers). Otherwise
    the whole file, every sheet, is recorded in one transaction. With --skip-invalid
    the good rows are recorded and the others listed (and written to --rejects).
    Importing the same file again records nothing. Exit code 2 when rows were left
    out or the file cannot be read, 0 otherwise.
    """
    try:
        columns = dict(parse_column_option(option) for option in column or ())
    except ValueError as error:
        raise fail(f"--column {error}") from None
    if country and country.upper() not in SUPPORTED_COUNTRIES:
        raise fail(f"--country {country!r}: not a country code with a numbering plan (UA, DE…)")
    try:
        data = file.read_bytes()
    except OSError as error:
        raise fail(f"cannot read {file}: {error.strerror or error}") from None
    options = Options(
        kind=kind.value if kind else None,
        actor=actor,
        sheets=tuple(sheet or ()),
        columns=columns,
        country=country.upper() if country else None,
        date_format=date_format.value if date_format else None,
        dry_run=dry_run,
        skip_invalid=skip_invalid,
    )
    with product(create=True) as crm, _progress_bar(err) as progress:
        try:
            result = import_file(crm.app, data, options=options, progress=progress)
        except ImportFileError as error:
            raise fail(f"{file}: {error}") from None
        except DomainError as error:
            raise fail(f"--actor: {error.message}") from None
    if report is not None:
        result.write_problems(report)
    if rejects is not None and result.outcome.rejected:
        for path in result.write_rejects(rejects):
            err.print(f"rejected rows written to {path}", markup=False, highlight=False)
    _print_report(result, file, out, err)
    if not result.ok:
        raise typer.Exit(code=2)


@contextmanager
def _progress_bar(console: Console) -> Iterator[ProgressCallback]:
    """A bar per stage (checking, then recording) on stderr, with rows per second;
    nothing when stderr is not a terminal."""
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        tasks: dict[str, TaskID] = {}

        def update(stage: str, done: int, total: int | None) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(f"{stage} rows", total=total, rate="")
            task = tasks[stage]
            progress.update(task, completed=done, total=total)
            speed = progress.tasks[task].speed
            if speed:
                progress.update(task, rate=f"{speed:,.0f} rows/s")

        yield update


def _print_report(report: ImportReport, file: Path, out: Console, err: Console) -> None:
    def say(console: Console, text: str) -> None:
        # File contents may hold square brackets: print them, do not read them as markup.
        console.print(text, markup=False, highlight=False, soft_wrap=True)

    def rows(counts: dict[str, int]) -> str:
        nouns = {"clients": ("client", "clients"), "purchases": ("purchase", "purchases")}
        parts = [
            f"{n} {nouns[kind][0] if n == 1 else nouns[kind][1]}" for kind, n in counts.items()
        ]
        return " and ".join(parts) or "no rows"

    outcome = report.outcome
    if report.problems:
        for problem in report.problems[:MAX_PROBLEMS_SHOWN]:
            say(out, str(problem))
        hidden = len(report.problems) - MAX_PROBLEMS_SHOWN
        if hidden > 0:
            say(out, f"… and {hidden} more problems")
    if report.problems and not outcome.recorded and not (report.skip_invalid and report.dry_run):
        bad_rows = len(outcome.rejected)
        if report.failed_while_recording:
            summary = "recording was refused"
        elif bad_rows:
            summary = f"{bad_rows} of {report.rows} rows have problems"
        else:
            summary = "the file's header has problems"
        say(err, f"error: {file}: {summary}; nothing was imported")
    elif report.already_imported:
        say(
            out,
            f"{file} was already imported ({rows(report.counts())}, correlation id "
            f"{report.correlation_id}); nothing recorded",
        )
    elif report.rows == 0:
        say(out, f"nothing to import: {file} has a header but no rows")
    elif report.dry_run:
        left = f"; {len(outcome.rejected)} rows would be left out" if outcome.rejected else ""
        say(
            out,
            f"dry run: {rows(report.counts())} in {file} can be imported{left}; nothing recorded",
        )
    else:
        say(
            out,
            f"imported {rows(report.counts())} from {file} "
            f"(up to position {report.position}, correlation id {report.correlation_id})",
        )
        if outcome.rejected:
            say(err, f"error: {file}: {len(outcome.rejected)} of {report.rows} rows were left out")


register(app)
