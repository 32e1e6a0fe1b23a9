"""The API keeps its contract (issue 26): a bounded schemathesis run against a real
``crm serve`` over a fresh store, reading the document the server serves at
``/schema/openapi.json``.

Every operation, every phase schemathesis has (the documented examples; the coverage
phase's boundary and invalid values; fuzzing; stateful sequences that follow the
document's links: register → read → change), authenticated as an admin (who may
call everything), with a fixed seed and a bounded number of cases, and these checks
required to pass on every answer:

* ``not_a_server_error``: no 5xx; ``min_position`` is kept reachable by the hooks
  (``contract_hooks.py``), so a 503 here means the server or its database failed;
* ``status_code_conformance``: every status answered is declared for the operation;
* ``content_type_conformance``: every answer's media type is declared for its status;
* ``response_schema_conformance``: every JSON answer (problems included) matches its
  declared schema.

Nothing is excluded and no check is relaxed for any operation. On failure the
assertion shows schemathesis' report: each failure with the request that reproduces
it (``curl``) and the seed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.conftest import POSTGRES_URL, TEST_MASTER_KEY, require_postgres
from tests.e2e.server import Server, add_user, crm_environment, running_server

ROOT = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("schemathesis.toml")
"""The run's seed, bounds, phases and checks."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """``crm serve`` with its projector over a fresh PostgreSQL schema, and an admin's
    token; the schema is dropped afterwards."""
    require_postgres()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    environment = crm_environment(
        {
            "CRM_DATABASE_URL": POSTGRES_URL,
            "CRM_DATABASE_SCHEMA": schema,
            "CRM_MASTER_KEY": TEST_MASTER_KEY,
            "CRM_LOG_LEVEL": "warning",
            "CRM_ACCESS_LOG": "false",
        }
    )
    try:
        token = add_user(environment, tmp_path, "ada", "admin")
        with running_server(environment, tmp_path) as running:
            yield running, token
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _records(base_url: str, token: str) -> dict[str, str]:
    """A client with a follow-up and a deal, for the hooks to name in paths."""
    admin = {"Authorization": f"Bearer {token}"}
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with httpx.Client(base_url=base_url, headers=admin, timeout=30.0, trust_env=False) as http:
        client = http.post("/clients", json={"name": "Contract Client"}).json()["id"]
        task = http.post(f"/clients/{client}/follow-ups", json={"due_at": due}).json()["task_id"]
        deal = http.post("/deals", json={"client_id": client, "title": "Door", "amount": "9"})
    return {"client_id": client, "task_id": task, "deal_id": deal.json()["id"]}


def test_every_operation_answers_as_the_document_says(
    server: tuple[Server, str], tmp_path: Path
) -> None:
    running, token = server
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        f"--config-file={CONFIG}",
        "--no-color",
        "run",
        f"{running.base_url}/schema/openapi.json",
        f"--header=Authorization: Bearer {token}",
    ]
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),  # the hooks module
        "CONTRACT_BASE_URL": running.base_url,
        "CONTRACT_RECORDS": json.dumps(_records(running.base_url, token)),
    }
    started = time.monotonic()
    done = subprocess.run(  # noqa: PLW1510 - the return code is the assertion below
        command, cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600
    )
    report = done.stdout + done.stderr
    print(report[-3000:], f"\nschemathesis ran {time.monotonic() - started:.0f} s")
    assert done.returncode == 0, report[-20_000:] + "\n" + running.output()[-5000:]
    selected = re.search(r"Selected: (\d+)/(\d+)\s+Tested: (\d+)", report)
    assert selected is not None, report[-3000:]
    assert selected[1] == selected[2] == selected[3], "every operation is tested"
