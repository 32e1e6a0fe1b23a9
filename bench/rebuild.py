"""rebuild: every read model rebuilt from position zero, against raw read + decode.

What ``crm project --rebuild all`` does: every model of ``registry.NAMES`` rebuilt
in one pass beside the live tables, from position zero to the head of a generated
history, then swapped in (so the ``http`` and ``scale`` benchmarks query what was
just built); then again as ``--jobs N`` does, the models shared out over one
process per core. Each rebuild runs in a subprocess so that its peak resident
memory is its own (read with ``wait4``: the largest of the process and its
children). The baseline, in the same run, is the least any rebuild must do:
``SELECT`` the same rows page by page on a plain connection and ``orjson.loads``
each state.

``python -m bench.rebuild --child SETTINGS`` is the subprocess itself.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from adapters.read_models import registry
from api.bootstrap import bootstrap
from api.rebuild import BATCH_SIZE, rebuild_groups
from application.settings import Settings
from bench.common import (
    PYTHON,
    ROOT,
    Histories,
    History,
    Options,
    note,
    per_event_micros,
    postgres_connection,
    ratio,
    server_cpu_seconds,
    server_cpu_since,
    stop,
    table,
    title,
)

JOBS = os.cpu_count() or 1
"""Processes of the parallel rebuild: one per core."""
PAGE_SIZE = 5000
"""Rows per page of the raw baseline."""


@dataclass(frozen=True)
class Rebuilt:
    events: int
    seconds: float
    position: int
    peak_rss_mb: float
    client_cpu: float
    """CPU seconds of the rebuild process and its children (user + system)."""
    server_cpu: float | None
    """CPU seconds PostgreSQL's processes spent meanwhile (``None`` on SQLite, or a
    server on another machine)."""

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class RawRead:
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


# -------------------------------------------------------------- the subprocess


def child(arguments: dict[str, Any]) -> dict[str, Any]:
    """Rebuild every read model (``crm project --rebuild all --jobs N``); what it took."""
    with bootstrap(Settings.from_env()) as crm:  # the store: CRM_* from the parent
        groups = registry.groups(registry.NAMES, arguments["jobs"])
        profile = cProfile.Profile() if arguments.get("profile") else None
        started = time.perf_counter()
        if profile:
            profile.enable()
        results = rebuild_groups(crm, groups)
        if profile:
            profile.disable()
            profile.dump_stats(arguments["profile"])
        seconds = time.perf_counter() - started
        position = min(result.position for result in results)
    return {"events": position, "seconds": seconds, "position": position}


def project(history: History, *, jobs: int = 1, profile: Path | None = None) -> Rebuilt:
    """Rebuild every read model of ``history`` in a subprocess (and its children, with
    ``jobs`` > 1); the rebuilt tables are the live ones afterwards."""
    arguments = {"jobs": jobs, "profile": str(profile) if profile else None}
    server_before = server_cpu_seconds() if history.place.backend == "postgresql" else None
    process = subprocess.Popen(
        [PYTHON, "-m", "bench.rebuild", "--child", json.dumps(arguments)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env=history.place.environment(),
    )
    try:
        assert process.stdout is not None
        output = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"the rebuild subprocess exited with {process.returncode}")
    done = json.loads(output.decode().strip().splitlines()[-1])
    return Rebuilt(
        done["events"],
        done["seconds"],
        done["position"],
        usage.ru_maxrss / 1024,
        client_cpu=usage.ru_utime + usage.ru_stime,
        server_cpu=server_cpu_since(server_before),
    )


def ensure_projected(history: History) -> Rebuilt:
    """The read models of ``history``, built once per run."""
    if history.projected is None:
        history.projected = project(history)
    result: Rebuilt = history.projected
    return result


# ------------------------------------------------------------------ baseline


def raw_read(history: History, topics: list[str] | None = None) -> RawRead:
    """``SELECT`` the events page by page on a plain connection, ``orjson.loads`` each
    state (only ``topics`` if given): the floor under any rebuild or replay."""
    started = time.perf_counter()
    if history.place.backend == "postgresql":
        where = " AND topic = ANY(%s)" if topics else ""
        sql = (
            "SELECT notification_id, originator_id, originator_version, topic, state"
            f" FROM events WHERE notification_id > %s{where} ORDER BY notification_id LIMIT %s"
        )
        with postgres_connection(history.place.schema) as conn:
            rows = _read_pages(
                lambda after: conn.execute(
                    sql, (after, topics, PAGE_SIZE) if topics else (after, PAGE_SIZE)
                ).fetchall()
            )
    else:
        marks = ", ".join("?" * len(topics or []))
        where = f" AND topic IN ({marks})" if topics else ""
        sql = (
            "SELECT rowid, originator_id, originator_version, topic, state"
            f" FROM events WHERE rowid > ?{where} ORDER BY rowid LIMIT ?"
        )
        lite = sqlite3.connect(history.place.sqlite_path)
        try:
            rows = _read_pages(
                lambda after: lite.execute(sql, (after, *(topics or []), PAGE_SIZE)).fetchall()
            )
        finally:
            lite.close()
    return RawRead(rows, time.perf_counter() - started)


def _read_pages(fetch: Callable[[int], list[Any]]) -> int:
    """Fetch pages of ``PAGE_SIZE`` rows (position first, state fifth) after each
    page's last position, decoding every state; how many rows were read."""
    rows = after = 0
    while True:
        page = fetch(after)
        for row in page:
            orjson.loads(row[4])
        rows += len(page)
        if len(page) < PAGE_SIZE:
            return rows
        after = page[-1][0]


# -------------------------------------------------------------------- the run


def print_profile(path: Path, lines: int = 20) -> None:
    for order in ("tottime", "cumulative"):
        note(f"cProfile of the rebuild, top {lines} by {order}:")
        stats = pstats.Stats(str(path), stream=sys.stdout)
        stats.strip_dirs().sort_stats(order).print_stats(lines)


def run(options: Options, histories: Histories) -> None:
    history = histories.get(options.backend, options.history_events)
    title(
        "rebuild",
        {
            "backend": options.backend,
            "events": f"{history.head:,}",
            "read models": ", ".join(registry.NAMES),
            "batch": BATCH_SIZE,
            "parallel": f"--jobs {JOBS}",
            "baseline page": PAGE_SIZE,
        },
    )
    raw = raw_read(history)
    profile = history.place.directory / "rebuild.prof" if options.profile else None
    rebuilt = project(history, profile=profile)
    history.projected = rebuilt
    parallel = project(history, jobs=JOBS) if JOBS > 1 else None
    rows: list[list[Any]] = [
        [
            "raw SELECT + orjson.loads",
            raw.rows,
            raw.seconds,
            raw.rows_per_second,
            "1.00x",
            None,
            None,
            None,
        ]
    ]
    for what, result in (
        ("rebuild (all models, 1 process)", rebuilt),
        ("rebuild (--jobs {JOBS})", parallel),
    ):
        if result is not None:
            rows.append(
                [
                    what.format(JOBS=JOBS),
                    result.events,
                    result.seconds,
                    result.events_per_second,
                    ratio(result.events_per_second, raw.rows_per_second),
                    result.peak_rss_mb,
                    per_event_micros(result.client_cpu, result.events),
                    per_event_micros(result.server_cpu, result.events),
                ]
            )
    columns = ["what", "events", "seconds", "events/s", "vs raw", "peak RSS MB"]
    table([*columns, "CPU µs/event", "server µs/event"], rows)
    note("peak RSS: the rebuild subprocess's maximum resident set (wait4 ru_maxrss)")
    note(
        "CPU µs/event: user + system time of the rebuild's processes (wait4); server:"
        " of every PostgreSQL process of this machine meanwhile. Both share the"
        f" {os.cpu_count()} cores: at 50,000 events/s they would have"
        f" {(os.cpu_count() or 1) * 20} µs per event between them"
    )
    if profile:
        print_profile(profile)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))), flush=True)
    else:
        sys.exit("usage: python -m bench.rebuild --child JSON (run by python -m bench rebuild)")
