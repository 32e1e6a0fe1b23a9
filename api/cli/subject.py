"""``crm subject``: a client's personal-data rights (export, erase, restrict, consent)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, cast
from uuid import UUID

import typer

from api.cli.app import subject_app
from api.cli.common import cli_envelope, err, execute, fail, out, product
from api.json import dumps
from domain.client import ERASURE_REASONS, ErasureReason


def _client_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise fail(f"{text!r} is not a client id") from None


def _subject_command(command: object) -> None:
    result = execute(command)
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
    with product() as crm:
        crm.projector().catch_up()
        try:
            document = dumps(export_subject(crm, client_id, cli_envelope()), indent=True)
        except ApplicationError as error:  # an unknown client, the export limit
            raise fail(error.message) from None
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
