"""``--format json`` on the commands that report figures, so a script can check a
migrated base: the same figures as the table, in the HTTP API's shapes."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from api.bootstrap import bootstrap
from api.cli import app
from application import clients
from application.settings import Settings
from domain.envelope import Envelope
from tests.conftest import TEST_MASTER_KEY

T = "2026-06-01T00:00:00Z"


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, envelope: Envelope) -> Path:
    """Two clients registered in January 2026, one of whom bought twice (100 and 50,
    cost 60 and 20) in February: a known history."""
    for name in list(os.environ):
        if name.startswith("CRM_") and not name.startswith("CRM_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CRM_MASTER_KEY", TEST_MASTER_KEY)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    settings = Settings.model_validate({"master_key": TEST_MASTER_KEY})
    with bootstrap(settings) as crm:

        def when(day: str) -> Envelope:
            return replace(envelope, occurred_at=datetime.fromisoformat(f"{day}T10:00:00+00:00"))

        ann = crm.app.execute(clients.RegisterClient(name="Ann"), when("2026-01-05")).id
        crm.app.execute(clients.RegisterClient(name="Bob"), when("2026-01-06"))
        for day, amount, cost in (("2026-02-01", "100", "60"), ("2026-02-10", "50", "20")):
            crm.app.execute(
                clients.RecordPurchase(
                    client_id=ann, amount=Decimal(amount), cost=Decimal(cost), currency="EUR"
                ),
                when(day),
            )
    return tmp_path


def json_of(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, [*args, "--format", "json"])
    assert result.exit_code == 0, result.output
    parsed: dict[str, object] = orjson.loads(result.stdout)
    return parsed


def test_lifecycle_as_json_counts_the_stages(store: Path) -> None:
    # Ann paid on 1 and 10 Feb: 'new' (two purchases, not yet three); by 1 June more
    # than 90 days passed since 10 Feb: dead. Bob never paid: potential.
    assert json_of("lifecycle", "--as-of", "2026-03-01T00:00:00Z")["counts"] == {
        "potential": 1,
        "new": 1,
        "loyal": 0,
        "dead": 0,
        "returned": 0,
    }
    assert json_of("lifecycle", "--as-of", T)["counts"]["dead"] == 1  # type: ignore[index]


def test_kpis_as_json_give_exact_money_as_strings(store: Path) -> None:
    kpis = json_of("kpis", "--as-of", "2026-03-01T00:00:00Z")
    assert kpis["as_of"] == "2026-03-01T00:00:00Z"
    assert kpis["clients_total"] == 2
    assert Decimal(str(kpis["avg_check"])) == Decimal(75)  # (100 + 50) / 2
    assert Decimal(str(kpis["avg_margin"])) == Decimal(35)  # (40 + 30) / 2
    assert kpis["avg_purchases_per_client"] == 2.0  # one paying client, two purchases


def test_funnel_and_status_as_json(store: Path) -> None:
    funnel = json_of("funnel", "--as-of", T)
    assert [stage["stage"] for stage in funnel["stages"]] == [  # type: ignore[attr-defined]
        "attraction",
        "interest",
        "evaluation",
    ]
    assert funnel["won"] == 0
    status = json_of("status")
    assert status["events"] == status["head_position"]
    assert status["events"] >= 4 + 1  # the four recorded here, and the default pipeline's
    assert status["active_users"] == 0


def test_a_format_other_than_table_or_json_is_refused(store: Path) -> None:
    result = CliRunner().invoke(app, ["kpis", "--format", "xml"])
    assert result.exit_code == 2
    assert "xml" in result.output


def test_a_date_alone_means_its_midnight_utc_as_over_http(store: Path) -> None:
    by_date = json_of("lifecycle", "--as-of", "2026-03-01")
    assert by_date == json_of("lifecycle", "--as-of", "2026-03-01T00:00:00Z")
    assert by_date["as_of"] == "2026-03-01T00:00:00Z"


def test_the_funnel_of_an_unknown_pipeline_is_refused_naming_it(store: Path) -> None:
    result = CliRunner().invoke(app, ["funnel", "--pipeline", "nope"])
    assert result.exit_code == 2
    assert "no pipeline 'nope'" in result.output


def test_figures_as_of_a_future_instant_are_marked_as_a_projection(store: Path) -> None:
    for command in ("lifecycle", "kpis", "funnel"):
        assert json_of(command, "--as-of", "2026-03-01")["projected"] is False, command
        assert json_of(command, "--as-of", "2999-01-01")["projected"] is True, command
    table = CliRunner().invoke(app, ["lifecycle", "--as-of", "2999-01-01"])
    assert "(projected: after now)" in " ".join(table.stdout.split())  # titles wrap
