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
from bench.common import process_cpu, server_cpu_seconds

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


def fake_process(proc: Path, pid: int, name: str, ticks: tuple[int, int, int, int]) -> None:
    """A ``/proc/PID/stat`` line: pid, (name), state, then fields 4 to 17, of which
    14-17 are utime, stime, cutime, cstime in clock ticks."""
    (proc / str(pid)).mkdir()
    fields = ["0"] * 10 + [str(t) for t in ticks] + ["0"] * 5
    (proc / str(pid) / "stat").write_text(f"{pid} ({name}) S {' '.join(fields)}\n")


def test_the_servers_cpu_reading_sums_every_postgres_process_and_its_reaped_backends(
    tmp_path: Path,
) -> None:
    """The figure the benchmarks print as the server's CPU: counted on a /proc of the
    test's own making, so nothing else running on the machine moves it."""
    tick = 1 / os.sysconf("SC_CLK_TCK")
    fake_process(tmp_path, 10, "postgres", (100, 50, 30, 20))  # the postmaster: reaped 50
    fake_process(tmp_path, 11, "postgres", (7, 3, 0, 0))  # a live backend
    fake_process(tmp_path, 12, "python3", (999, 999, 999, 999))  # not the server
    fake_process(tmp_path, 13, "post gres) (x", (1, 1, 1, 1))  # a name with ") (" in it
    (tmp_path / "14").mkdir()  # ended meanwhile: no stat to read
    (tmp_path / "self").mkdir()

    assert server_cpu_seconds(tmp_path) == pytest.approx((150 + 50 + 10) * tick)
    assert server_cpu_seconds(tmp_path / "14") is None  # no server to see


@pytest.mark.parametrize("store", ["postgresql"])
def test_a_backends_cpu_reading_counts_what_its_query_spent(crm: Crm) -> None:
    """Read from the backend's own /proc entry while it lives: what it spent on one
    CPU-bound query, and no more than the time it took (one process, one core)."""
    with psycopg.connect(crm.settings.database_url) as conn:  # its own backend
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]  # type: ignore[index]
        entry = Path("/proc") / str(pid)
        if not entry.is_dir():
            pytest.skip("the server runs on another machine: its processes are not in /proc")
        before = process_cpu(entry)
        started = time.perf_counter()
        conn.execute("SELECT COUNT(*) FROM generate_series(1, 4000000)")  # CPU-bound
        wall = time.perf_counter() - started
        after = process_cpu(entry)
    assert before is not None
    assert after is not None
    assert after[0] == "postgres"
    spent = after[1] - before[1]
    assert 0 < spent <= wall + 2 / os.sysconf("SC_CLK_TCK")
