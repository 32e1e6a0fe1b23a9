"""``crm demo``: a realistic two-year history to try the product on."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from api.bootstrap import describe_store
from api.cli.app import app
from api.cli.common import err, out, product
from domain.client import Client

DEMO_USER = "demo-admin"


@app.command()
def demo(
    clients: Annotated[int, typer.Option(min=1, max=100_000, help="Clients to invent.")] = 60,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same story).")] = 7,
) -> None:
    """Record a realistic two-year demo history on the configured store."""
    from eventsourcing.utils import get_topic

    from api.demo import load_demo

    with product(create=True) as crm:
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
        crm.projector().catch_up()
        sample = crm.app.recorder.select_notifications(start=before + 1, limit=50)
        registered = get_topic(Client.ClientRegistered)
        client = next(n.originator_id for n in sample if n.topic == registered)
        token = crm.users.issue_token(DEMO_USER)
        if token is None:
            token = crm.users.add(DEMO_USER, "admin")
        settings = crm.settings
        out.print(
            "\nEvery read model is filled. Try:\n"
            "  crm lifecycle            clients per stage now (or --as-of 2025-01-01)\n"
            "  crm funnel               the default pipeline's funnel (--pipeline windows)\n"
            "  crm kpis                 the business KPIs\n"
            f"  crm audit show --client {client}\n"
            "  crm replay examples.kpis:RepeatPurchaseRate\n\n"
            f"Or start the API with `crm serve` and open "
            f"http://{settings.host}:{settings.port}/schema, using this admin token "
            f"(user {DEMO_USER}; `crm users token {DEMO_USER}` makes a new one):\n"
        )
        out.print(token, highlight=False)
