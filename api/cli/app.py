"""The ``crm`` Typer app and its command groups; the command modules add to them."""

from __future__ import annotations

import typer

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
webhooks_app = typer.Typer(
    no_args_is_help=True, help="Webhook subscriptions (Standard Webhooks): push events out."
)
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(audit_app, name="audit")
app.add_typer(subject_app, name="subject")
app.add_typer(webhooks_app, name="webhooks")
