"""What every ``crm`` command shares: the consoles, errors as one line and exit code
2, the product on the configured store, output formats, instants, progress bars."""

from __future__ import annotations

import getpass
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adapters.keys import MasterKeyError
from api.bootstrap import Crm, StoreMissing, bootstrap, describe_store
from api.instants import parse_instant
from api.json import dumps
from api.logs import configure_logging
from application.settings import Settings, SettingsError
from domain.envelope import Envelope

if TYPE_CHECKING:
    from application.app import CommandResult

out = Console()
err = Console(stderr=True)


class Format(StrEnum):
    table = "table"
    json = "json"


FormatOption = Annotated[
    Format, typer.Option("--format", help="table, or json for scripts (as the HTTP API).")
]


def print_json(value: Any) -> None:
    sys.stdout.buffer.write(dumps(value, indent=True) + b"\n")


def fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def load_settings() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        raise fail(str(error)) from None
    configure_logging(settings)
    return settings


@contextmanager
def product(*, create: bool = False) -> Iterator[Crm]:
    """The product on the configured store, with configuration problems reported
    as one clear line instead of a traceback. Only the commands that make a store
    pass ``create``; for any other, a store that does not exist is such a problem."""
    settings = load_settings()
    try:
        crm = bootstrap(settings, create=create)
    except StoreMissing as error:
        raise fail(str(error)) from None
    except (MasterKeyError, PersistenceError, OSError) as error:
        raise fail(f"cannot open {describe_store(settings)}: {error}") from None
    with crm:
        yield crm


def instant(text: str | None, *, option: str) -> datetime | None:
    """An instant from the command line, read as the HTTP API reads one
    (``api.instants``: UTC if no offset, a date meaning its midnight UTC)."""
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as error:
        raise fail(f"{option} {error}") from None


def progress_bar() -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )


def rate(done: int, started: float) -> str:
    """Events per second since ``started`` (a ``time.perf_counter()``), for a progress bar."""
    elapsed = time.perf_counter() - started
    return f"{done / elapsed:,.0f}" if elapsed else "-"


def show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {show(v)}" for k, v in value.items()) or "-"
    return "-" if value is None else str(value)


def cli_envelope() -> Envelope:
    """Commands typed at the CLI are attributed to the operating-system user, with the
    admin role (who may run `crm` may read the store directly anyway)."""
    return Envelope(
        actor_id=getpass.getuser() or "cli",
        actor_role="admin",
        source="cli",
        correlation_id=f"cli:{uuid.uuid4()}",
    )


def execute(command: object) -> CommandResult:
    """Run one command as the CLI's user (``cli_envelope``); a refused one is one clear
    line and exit code 2."""
    from application.errors import ApplicationError
    from domain.errors import DomainError

    with product() as crm:
        try:
            return crm.app.execute(command, cli_envelope())
        except (DomainError, ApplicationError) as error:
            raise fail(error.message) from None
