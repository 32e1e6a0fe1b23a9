"""``crm audit``: the audit trail and its hash chain."""

from __future__ import annotations

from typing import Annotated

import typer
from eventsourcing.persistence import PersistenceError
from rich.table import Table

from api.cli.app import audit_app
from api.cli.common import cli_envelope, err, fail, out, product


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
        raise fail(f"{client!r} is not a client id") from None
    with product() as crm:
        crm.projector(["audit"]).catch_up()
        model = crm.model(AuditReadModel)
        page = model.page(client_id=client_id, actor_id=actor, limit=limit)
        try:
            crm.exports.disclose(
                cli_envelope(),
                personal=any(map(entry_holds_personal, page.entries)),
                kind="audit",
                format="table",
                filters={"client_id": client_id, "actor_id": actor, "limit": limit},
                up_to_position=page.entries[-1].position if page.entries else None,
            )
        except ApplicationError as error:
            raise fail(error.message) from None
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

    with product() as crm:
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

    with product() as crm:
        crm.projector(["chain"]).catch_up()
        model = crm.model(ChainReadModel)
        position, link = model.head()
    out.print(f"{position} {link}", highlight=False, soft_wrap=True)
