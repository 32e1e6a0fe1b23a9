"""The ``crm`` command line: one module per command group, each adding its commands
to ``app`` when imported here; ``crm --help`` lists them in this order."""

from __future__ import annotations

# isort: off
from api.cli import importing, demo, project, reports, serve  # noqa: F401
from api.cli import audit, keys, subject, users, webhooks  # noqa: F401

# isort: on
from api.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    app()
