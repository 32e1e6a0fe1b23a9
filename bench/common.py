"""What every benchmark shares: options, the machine, printing, throw-away stores,
generated histories and subprocesses that are always stopped.

Everything talks to 127.0.0.1 only. A PostgreSQL store is a schema of its own
(``bench_<hex>``), dropped when the run ends, even on failure or Ctrl-C; a SQLite
store is a file in a temporary directory, removed likewise.
"""

from __future__ import annotations

import base64
import gc
import os
import platform
import secrets
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import psycopg
from eventsourcing.utils import get_topic

from api.bootstrap import Crm, bootstrap
from application.settings import Settings
from bench.generate import Generated, generate
from domain.client import Client

Backend = Literal["postgresql", "sqlite"]

POSTGRES_URL = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
"""The server the PostgreSQL benchmarks use (``BENCH_DATABASE_URL``; not ``CRM_*``,
which the product would refuse as an unknown setting)."""
HOST = "127.0.0.1"
MASTER_KEY = base64.b64encode(secrets.token_bytes(32)).decode()
"""One master key for the whole run (the stores are thrown away)."""
PYTHON = sys.executable
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Options:
    backend: Backend = "postgresql"
    quick: bool = False
    events: int | None = None
    """``--events``: the history size of rebuild, replay and http (default 1M, quick 10k)."""
    big: bool = False
    """``--big``: scale also at 5M events."""
    profile: bool = False
    """``--profile``: run the rebuild under cProfile and print its top costs."""
    repeats: int | None = None

    @property
    def history_events(self) -> int:
        return self.events or (10_000 if self.quick else 1_000_000)

    @property
    def runs(self) -> int:
        return self.repeats or (1 if self.quick else 3)


# ---------------------------------------------------------------------- printing


def title(name: str, parameters: Mapping[str, object]) -> None:
    print()
    print(f"== {name} " + "=" * max(0, 70 - len(name)))
    print("   " + ", ".join(f"{k}={v}" for k, v in parameters.items()))


def table(columns: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A plain, aligned text table (numbers right-aligned)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [
        max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)
    ]
    print("   " + "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row, raw in zip(cells, rows, strict=True):
        parts = [
            v.rjust(w) if isinstance(r, int | float) else v.ljust(w)
            for v, w, r in zip(row, widths, raw, strict=True)
        ]
        print("   " + "  ".join(parts))
    sys.stdout.flush()


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    return str(value)


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "-"


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def server_cpu_seconds(proc: Path = Path("/proc")) -> float | None:
    """CPU time (user + system, with the reaped backends') used so far by every
    PostgreSQL process of this machine, from ``/proc``; ``None`` where there is none
    to see (another machine's server, no ``/proc``). Differences of two readings are
    what the server spent between them, on the benchmark's work and anything else it
    did meanwhile (nothing else, on an idle machine)."""
    if not proc.is_dir():
        return None
    total, seen = 0.0, False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        reading = process_cpu(entry)
        if reading is None or reading[0] != "postgres":
            continue
        seen = True
        total += reading[1] + reading[2]
    return total if seen else None


def process_cpu(entry: Path) -> tuple[str, float, float] | None:
    """A process's name, the CPU seconds it used (user + system), and those of its
    children it has reaped, from ``/proc/PID/stat``; ``None`` if it is gone or not ours
    to read."""
    try:
        stat = (entry / "stat").read_text()
    except OSError:
        return None
    name, _, rest = stat.partition(" (")[2].rpartition(") ")
    fields = [int(field) for field in rest.split()[11:15]]  # utime stime cutime cstime
    ticks = os.sysconf("SC_CLK_TCK")
    return name, (fields[0] + fields[1]) / ticks, (fields[2] + fields[3]) / ticks


def server_cpu_since(before: float | None) -> float | None:
    """What the PostgreSQL processes spent since the reading ``before`` (``None`` if
    either reading is missing)."""
    after = server_cpu_seconds()
    return None if before is None or after is None else after - before


def per_event_micros(seconds: float | None, events: int) -> float | None:
    """CPU ``seconds`` per event, in microseconds (``None`` if not measured)."""
    return None if seconds is None or not events else seconds / events * 1e6


def note(text: str) -> None:
    print(f"   {text}", flush=True)


# ----------------------------------------------------------------------- machine


def machine(backend: Backend) -> dict[str, str]:
    """Where the figures come from."""
    info = {
        "cores": str(os.cpu_count()),
        "cpu": _cpu_model(),
        "memory": _memory(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "eventsourcing": version("eventsourcing"),
        "psycopg": version("psycopg"),
    }
    if backend == "postgresql":
        with psycopg.connect(POSTGRES_URL, connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        info["postgresql"] = str(row[0]) if row else "?"
    info["sqlite"] = sqlite3.sqlite_version
    return info


def print_machine(backend: Backend) -> None:
    title("machine", machine(backend))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) // 1024:,} MB"
    except OSError:
        pass
    return "?"


# ------------------------------------------------------------------------ stores


@dataclass
class Place:
    """A throw-away store: a PostgreSQL schema or a SQLite file."""

    backend: Backend
    directory: Path
    schema: str

    @property
    def url(self) -> str:
        if self.backend == "postgresql":
            return POSTGRES_URL
        return f"sqlite:///{self.directory / 'crm.db'}"

    @property
    def sqlite_path(self) -> Path:
        return self.directory / "crm.db"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.url,
            "database_schema": self.schema,
            "master_key": MASTER_KEY,
            "key_file": str(self.directory / "crm.key"),
            "log_level": "warning",
        }
        values.update(overrides)
        return Settings.model_validate(values)

    def environment(self, **overrides: str) -> dict[str, str]:
        """This process's environment for a ``crm`` subprocess on this store: every
        inherited ``CRM_*`` replaced (the product refuses unknown ones)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
        env.update(
            CRM_DATABASE_URL=self.url,
            CRM_DATABASE_SCHEMA=self.schema,
            CRM_MASTER_KEY=MASTER_KEY,
            CRM_KEY_FILE=str(self.directory / "crm.key"),
            CRM_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
        )
        env.update(overrides)
        return env


@contextmanager
def place(backend: Backend) -> Iterator[Place]:
    """A new, empty store, removed afterwards whatever happens."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    directory = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    try:
        if backend == "postgresql":
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
        yield Place(backend, directory, schema)
    finally:
        if backend == "postgresql":
            drop_schema(schema)
        shutil.rmtree(directory, ignore_errors=True)


def drop_schema(schema: str) -> None:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def postgres_connection(schema: str) -> psycopg.Connection[Any]:
    """A plain psycopg connection whose ``search_path`` is ``schema``."""
    conn = psycopg.connect(POSTGRES_URL)
    conn.execute(f'SET search_path TO "{schema}"')
    conn.commit()
    return conn


# -------------------------------------------------------------------- histories


@dataclass
class History:
    """A store holding a generated history, shared by the benchmarks of one run."""

    place: Place
    crm: Crm
    generated: Generated
    projected: Any = None
    """The rebuild's result once the read models are built (``bench.rebuild``)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def head(self) -> int:
        return self.crm.app.recorder.max_notification_id() or 0


class Histories:
    """Generated histories by (backend, size), made once per run and removed at its end."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self._made: dict[tuple[str, int], History] = {}

    def get(self, backend: Backend, events: int) -> History:
        key = (backend, events)
        if key not in self._made:
            where = self._stack.enter_context(place(backend))
            crm = self._stack.enter_context(bootstrap(where.settings()))
            note(f"generating {events:,} events ({backend}) ...")
            generated = generate(crm, events)
            note(
                f"generated {generated.events:,} events for {generated.clients:,} clients in "
                f"{generated.seconds:.1f} s ({generated.events_per_second:,.0f} events/s)"
            )
            crm.app.recorder.refresh_statistics()  # as autovacuum would after a bulk load
            # What the generator left alive is kept out of the cycle collector's walks,
            # so that what runs in this process next (raw reads, the replay) is
            # measured as in a process of its own (``crm replay``): with them, a replay
            # read 78,000 events/s here against 115,000 in a fresh process.
            gc.collect()
            gc.freeze()
            self._made[key] = History(where, crm, generated)
        return self._made[key]

    def close(self) -> None:
        self._stack.close()
        self._made.clear()

    def __enter__(self) -> Histories:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def client_ids(crm: Crm, limit: int) -> list[uuid.UUID]:
    """The first ``limit`` registered clients of the store."""
    rows = crm.db.query(
        "SELECT originator_id FROM events WHERE topic = %s LIMIT %s",
        (get_topic(Client.ClientRegistered), limit),
    )
    return [uuid.UUID(str(row[0])) for row in rows]


# ------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def stop(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    """Terminate ``process``; kill it if it has not ended after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def wait_for_port(process: subprocess.Popen[Any], port: int, log: Path, timeout: float) -> None:
    """Until something accepts connections on ``port`` (or ``process`` dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen within {timeout} s:\n{log.read_text()}")
