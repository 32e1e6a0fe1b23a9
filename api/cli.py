"""The ``crm`` command line."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from adapters.keys import MasterKeyError, generate_master_key
from adapters.users import ROLES, UserError
from api.bootstrap import Crm, bootstrap
from application.settings import Settings, SettingsError

app = typer.Typer(
    name="crm",
    no_args_is_help=True,
    add_completion=False,
    help="Event-sourced CRM core. Configuration: CRM_* environment variables "
    "(CRM_DATABASE_URL: sqlite:///crm.db by default, or postgresql://…).",
)
users_app = typer.Typer(no_args_is_help=True, help="Users and their API tokens.")
keys_app = typer.Typer(no_args_is_help=True, help="The master key that protects personal data.")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


def _settings() -> Settings:
    try:
        settings = Settings.from_env()
    except SettingsError as error:
        raise _fail(str(error)) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return settings


@contextmanager
def _product() -> Iterator[Crm]:
    """The product on the configured store, with configuration problems reported
    as one clear line instead of a traceback."""
    settings = _settings()
    try:
        crm = bootstrap(settings)
    except (MasterKeyError, PersistenceError, OSError) as error:
        raise _fail(f"cannot open {describe_store(settings)}: {error}") from None
    with crm:
        yield crm


def describe_store(settings: Settings) -> str:
    """The store's URL with any password hidden."""
    if settings.backend != "postgresql":
        return settings.database_url
    parts = urlsplit(settings.database_url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return f"{urlunsplit(parts)} (schema {settings.database_schema})"


@app.command()
def demo(
    clients: Annotated[int, typer.Option(min=1, max=100_000, help="Clients to invent.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same story).")] = 7,
) -> None:
    """Record a realistic two-year demo history on the configured store."""
    from api.demo import load_demo

    with _product() as crm:
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


@app.command()
def status() -> None:
    """Where the store is and how much it holds."""
    with _product() as crm:
        head = crm.app.recorder.max_notification_id() or 0
        out.print(f"store:  {describe_store(crm.settings)}")
        out.print(f"events: {head} (head position {head})")
        out.print(f"users:  {sum(user.active for user in crm.users.list())} active")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name, e.g. maria (lower case).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
) -> None:
    """Create a user and print their API token (shown once, stored only as a hash)."""
    with _product() as crm:
        try:
            token = crm.users.add(name, role)
        except UserError as error:
            raise _fail(str(error)) from None
    err.print(f"user {name} ({role}) created; their token (keep it, it is not shown again):")
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


@keys_app.command("generate")
def keys_generate() -> None:
    """Print a new random master key (for CRM_MASTER_KEY or a key file)."""
    out.print(generate_master_key(), highlight=False)


def main() -> None:
    app()
