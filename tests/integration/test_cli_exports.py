"""The command line reads personal data through the same use case as the API
(``application.exports``): ``crm audit show`` and ``crm subject export`` are recorded
as ``DataExported`` and count against the same export limit."""

from __future__ import annotations

import os
from pathlib import Path
from uuid import UUID

import pytest
from typer.testing import CliRunner, Result

from api.bootstrap import bootstrap
from api.cli import app
from application.clients import RegisterClient
from application.settings import Settings
from domain.access import DataAccess
from tests.conftest import TEST_MASTER_KEY
from tests.e2e.conftest import admin_envelope


def crm(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> UUID:
    """A store in the working directory with one client, and an export limit of 2."""
    for name in list(os.environ):
        if name.startswith("CRM_") and not name.startswith("CRM_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CRM_MASTER_KEY", TEST_MASTER_KEY)
    monkeypatch.setenv("CRM_EXPORT_RATE_PER_HOUR", "2")
    with bootstrap(Settings.from_env()) as product:
        return product.app.execute(
            RegisterClient(name="Ann Console", phones=("+493011122233",)), admin_envelope()
        ).id


def _exports() -> list[DataAccess.DataExported]:
    with bootstrap(Settings.from_env()) as product:
        events = [
            product.app.mapper.to_domain_event(n)
            for n in product.app.recorder.select_notifications(start=1, limit=1000)
        ]
    return [e for e in events if isinstance(e, DataAccess.DataExported)]


def test_reading_the_audit_trail_at_the_console_is_recorded(client: UUID) -> None:
    shown = crm("audit", "show", "--client", str(client))

    assert shown.exit_code == 0, shown.output
    assert "Console" in shown.output  # the name, in a table that may wrap it
    (recorded,) = _exports()
    assert (recorded.kind, recorded.format, recorded.source) == ("audit", "table", "cli")
    assert recorded.filters["client_id"] == str(client)


def test_console_exports_count_against_the_export_limit(client: UUID) -> None:
    assert crm("subject", "export", str(client)).exit_code == 0
    assert crm("audit", "show", "--client", str(client)).exit_code == 0

    refused = crm("subject", "export", str(client))

    assert refused.exit_code == 2
    assert "at most 2 exports and bulk reads of personal data an hour" in " ".join(
        refused.stderr.split()
    )
    assert [e.kind for e in _exports()] == ["subject", "audit"]
