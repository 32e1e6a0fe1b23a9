"""The benchmark suite still runs: ``python -m bench append --quick --backend sqlite``.

Not a timed test: it only checks that the run ends well and prints its baseline.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
