"""Which ``crm`` commands may create a store: only ``demo``, ``serve``, ``import`` and
``users add``. Any other, run where there is no store (the wrong directory, a mistyped
schema), refuses with exit code 2 and leaves nothing behind, instead of reporting
on an empty store it has just made. And ``crm replay`` finds KPI modules in the
working directory, and the shipped ``examples`` from anywhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import psycopg
import pytest
from typer.testing import CliRunner, Result

from api.bootstrap import StoreMissing, bootstrap
from api.cli import app
from application.settings import Settings
from tests.conftest import POSTGRES_URL, TEST_MASTER_KEY

MISSING = "no store at ./crm.db — set CRM_DATABASE_URL or run from the directory that holds it"

READ_ONLY = [
    ["replay", "examples.kpis:RepeatPurchaseRate"],
    ["kpis"],
    ["status"],
    ["users", "list"],
    ["lifecycle"],
    ["audit", "verify"],
    ["project", "--once"],
    ["keys", "rotate"],
]


@pytest.fixture
def empty_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory, empty, with no CRM_* configuration: the defaults
    (``./crm.db``, ``./crm.key``) apply. ``crm replay`` puts the working directory
    on ``sys.path``; the test's own is restored afterwards."""
    for name in list(os.environ):
        if name.startswith("CRM_") and not name.startswith("CRM_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def crm(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def one_line(text: str) -> str:
    """Console output with its line wrapping undone."""
    return " ".join(text.split())


@pytest.mark.parametrize("command", READ_ONLY, ids=" ".join)
def test_a_command_that_reads_refuses_where_there_is_no_store_and_creates_nothing(
    empty_directory: Path, command: list[str]
) -> None:
    result = crm(*command)

    assert result.exit_code == 2, result.output
    assert MISSING in one_line(result.stderr)
    assert "Traceback" not in result.output
    assert sorted(path.name for path in empty_directory.iterdir()) == []


def test_users_add_creates_the_store_and_its_key_where_there_is_none(
    empty_directory: Path,
) -> None:
    added = crm("users", "add", "maria", "--role", "manager")

    assert added.exit_code == 0, added.output
    assert {"crm.db", "crm.key"} <= {path.name for path in empty_directory.iterdir()}
    listed = crm("users", "list")
    assert listed.exit_code == 0, listed.output
    assert "maria" in listed.stdout


def test_demo_creates_a_store_and_a_kpi_module_in_the_working_directory_replays_over_it(
    empty_directory: Path,
) -> None:
    demo = crm("demo", "--clients", "3")
    assert demo.exit_code == 0, demo.output
    assert (empty_directory / "crm.db").exists()
    assert (empty_directory / "crm.key").exists()

    module = f"my_kpis_{uuid.uuid4().hex[:8]}"  # a name no earlier import has cached
    (empty_directory / f"{module}.py").write_text(
        "from domain.client import Client\n\n\n"
        "class Registrations:\n"
        '    key = "registrations"\n'
        "    events = (Client.ClientRegistered,)\n\n"
        "    def initial(self):\n"
        "        return 0\n\n"
        "    def apply(self, state, recorded):\n"
        "        return state + 1\n\n"
        "    def result(self, state, as_of):\n"
        "        return state\n",
        encoding="utf-8",
    )
    replayed = crm("replay", f"{module}:Registrations", "--format", "json")

    assert replayed.exit_code == 0, replayed.output
    report = orjson.loads(replayed.stdout)
    assert report["key"] == "registrations"
    assert report["value"] >= 3  # the demo's clients (and any it merges away)


def test_the_shipped_examples_replay_from_a_directory_without_them(tmp_path: Path) -> None:
    """Run as a program, so that only the installed distribution can provide
    ``examples`` (pytest's own ``sys.path`` holds the checkout)."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'crm.db'}", key_file=str(tmp_path / "crm.key")
    )
    with bootstrap(settings):
        pass
    env = {name: value for name, value in os.environ.items() if not name.startswith("CRM_")}
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-c", "from api.cli import main; main()"]
    done = subprocess.run(
        [*command, "replay", "examples.kpis:RepeatPurchaseRate", "--format", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["key"] == "repeat_purchase_rate"


def test_bootstrap_without_create_refuses_a_missing_sqlite_file_before_making_the_key(
    tmp_path: Path,
) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'data' / 'crm.db'}",
        key_file=str(tmp_path / "crm.key"),
    )

    with pytest.raises(
        StoreMissing, match=re.escape(f"no store at {tmp_path / 'data' / 'crm.db'} — ")
    ):
        bootstrap(settings, create=False)
    assert list(tmp_path.iterdir()) == []


def test_a_fresh_postgresql_schema_is_refused_and_left_without_tables(
    empty_directory: Path, postgres_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CRM_DATABASE_URL", POSTGRES_URL)
    monkeypatch.setenv("CRM_DATABASE_SCHEMA", postgres_schema)
    monkeypatch.setenv("CRM_MASTER_KEY", TEST_MASTER_KEY)

    refused = crm("kpis")

    assert refused.exit_code == 2, refused.output
    assert f"(schema {postgres_schema}) — set CRM_DATABASE_URL" in one_line(refused.stderr)
    with psycopg.connect(POSTGRES_URL) as conn:
        tables = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (postgres_schema,),
        ).fetchall()
        schemas = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (postgres_schema,)
        ).fetchall()
    assert tables == []
    assert schemas == [], "the schema itself was created"

    added = crm("users", "add", "maria", "--role", "manager")
    assert added.exit_code == 0, added.output
    counted = crm("kpis")
    assert counted.exit_code == 0, counted.output
    assert "clients_total" in counted.stdout
