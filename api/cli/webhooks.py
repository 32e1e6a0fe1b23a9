"""``crm webhooks``: webhook subscriptions (Standard Webhooks)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import typer
from rich.table import Table

from api.cli.app import webhooks_app
from api.cli.common import cli_envelope, err, execute, fail, out, product


def _subscription_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise fail(f"{text!r} is not a subscription id") from None


@webhooks_app.command("add")
def webhooks_add(
    url: Annotated[str, typer.Argument(help="The receiver's http(s) URL.")],
    events: Annotated[
        list[str] | None,
        typer.Option(
            "--events",
            help="*, Aggregate.* or Aggregate.Event (Client.PurchaseMade, Deal.*, "
            "FollowUp.Due, Lead.Unanswered); repeat, or separate with commas. Default *.",
        ),
    ] = None,
    description: Annotated[str, typer.Option(help="What it is for.")] = "",
    include_personal: Annotated[
        bool, typer.Option("--include-personal", help="Send personal fields too.")
    ] = False,
) -> None:
    """Subscribe a receiver; prints the subscription's id and its signing secret
    (shown once: keep it)."""
    from api.push import PersonalDataNotAllowed, create_subscription
    from application.errors import ApplicationError
    from domain.errors import DomainError

    patterns = [p.strip() for item in events or ["*"] for p in item.split(",") if p.strip()]
    with product() as crm:
        try:
            created = create_subscription(
                crm,
                cli_envelope(),
                url=url,
                events=patterns,
                description=description,
                include_personal=include_personal,
            )
        except (DomainError, ApplicationError) as error:
            raise fail(error.message) from None
        except PersonalDataNotAllowed as error:
            raise fail(str(error)) from None
    err.print(f"subscription {created.result.id} created; its signing secret (shown once):")
    out.print(f"{created.result.id} {created.secret}", highlight=False, soft_wrap=True)


@webhooks_app.command("list")
def webhooks_list() -> None:
    """Every subscription: status, delivered position, lag, failures, last error."""
    from api.push import list_subscriptions

    with product() as crm:
        crm.projector(["subscriptions"]).catch_up()
        found = list_subscriptions(crm)
    table = Table()
    for column in ("id", "url", "events", "status", "delivered", "lag", "failures", "last error"):
        table.add_column(column, overflow="fold")
    for s in found:
        table.add_row(
            str(s["id"]),
            s["url"],
            ", ".join(s["events"]),
            s["status"],
            str(s["delivered_position"]),
            str(s["lag"]),
            str(s["failures"]),
            s["last_error"] or "",
        )
    out.print(table)


def _webhook_command(command: object) -> None:
    result = execute(command)
    out.print(f"done (subscription {result.id}, position {result.position})")


@webhooks_app.command("remove")
def webhooks_remove(subscription: Annotated[str, typer.Argument(help="Its id.")]) -> None:
    """Remove a subscription: deliveries stop, its secret is destroyed."""
    from application.subscriptions import RemoveSubscription

    _webhook_command(RemoveSubscription(subscription_id=_subscription_id(subscription)))


@webhooks_app.command("pause")
def webhooks_pause(subscription: Annotated[str, typer.Argument(help="Its id.")]) -> None:
    """Stop deliveries where they are."""
    from application.subscriptions import PauseSubscription

    _webhook_command(PauseSubscription(subscription_id=_subscription_id(subscription)))


@webhooks_app.command("resume")
def webhooks_resume(subscription: Annotated[str, typer.Argument(help="Its id.")]) -> None:
    """Deliver again from where deliveries stopped (after a pause or failing)."""
    from application.subscriptions import ResumeSubscription

    _webhook_command(ResumeSubscription(subscription_id=_subscription_id(subscription)))


@webhooks_app.command("replay")
def webhooks_replay(
    subscription: Annotated[str, typer.Argument(help="Its id.")],
    from_position: Annotated[int, typer.Option("--from", min=1, help="A store position.")],
) -> None:
    """Deliver every matching event again from a store position on."""
    from application.subscriptions import ReplaySubscription

    _webhook_command(
        ReplaySubscription(
            subscription_id=_subscription_id(subscription), from_position=from_position
        )
    )
