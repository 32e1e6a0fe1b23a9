"""The benchmark suite still runs: ``python -m bench append --quick --backend sqlite``.

Not a timed test: it only checks that the run ends well and prints its baseline, and
that its reading of the server's CPU time counts what the server spends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from api.bootstrap import Crm
from bench.common import server_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]


def test_quick_append_benchmark_on_sqlite_runs_and_names_its_baseline() -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "append", "--quick", "--backend", "sqlite"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "== machine" in done.stdout
    assert "raw" in done.stdout
    assert "INSERT + COMMIT" in done.stdout
    assert "crm own" in done.stdout


@pytest.mark.parametrize("store", ["postgresql"])
def test_the_servers_cpu_reading_counts_what_a_query_made_it_spend(crm: Crm) -> None:
    """What the benchmarks print as the server's CPU per event (a local server),
    also once the backend that spent it has ended (as a rebuild's have)."""
    before = server_cpu_seconds()
    started = time.perf_counter()
    with psycopg.connect(crm.settings.database_url) as conn:  # its own backend
        conn.execute("SELECT COUNT(*) FROM generate_series(1, 4000000)")  # CPU-bound
    wall = time.perf_counter() - started
    time.sleep(0.2)  # the backend has ended and been reaped
    spent = server_cpu_seconds()
    assert before is not None
    assert spent is not None
    # one backend cannot spend more CPU than the wall time (plus a tick each side),
    # and it spent some of it: the query is CPU-bound
    assert 0.1 * wall < spent - before < wall + 0.05
