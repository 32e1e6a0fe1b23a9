"""``crm users``: users and their API tokens."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from adapters.users import UserError
from api.cli.app import users_app
from api.cli.common import err, fail, out, product
from application.access import ROLES


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="User name, e.g. maria (lower case).")],
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")],
) -> None:
    """Create a user and print their API token (shown once, stored only as a hash)."""
    with product(create=True) as crm:
        try:
            token = crm.users.add(name, role)
        except UserError as error:
            raise fail(str(error)) from None
    err.print(f"user {name} ({role}) created; their token (keep it, it is not shown again):")
    out.print(token, highlight=False)


@users_app.command("token")
def users_token(name: str) -> None:
    """Give an active user a new token (printed once; the old one stops working)."""
    with product() as crm:
        token = crm.users.issue_token(name)
    if token is None:
        raise fail(f"no active user {name!r}")
    out.print(token, highlight=False)


@users_app.command("list")
def users_list() -> None:
    """List users, their roles and whether they are active."""
    with product() as crm:
        table = Table()
        for column in ("user", "role", "active", "created"):
            table.add_column(column)
        for user in crm.users.list():
            table.add_row(user.user_id, user.role, "yes" if user.active else "no", user.created_at)
        out.print(table)


@users_app.command("revoke")
def users_revoke(name: str) -> None:
    """Deactivate a user; their token stops working at once."""
    with product() as crm:
        if not crm.users.revoke(name):
            raise fail(f"no active user {name!r}")
    out.print(f"user {name} revoked")
