"""scale: rebuild and query costs at growing history sizes (100k, 1M; 5M with --big).

At each size: the rebuild of every read model (events/s, peak RSS, against raw read
+ decode, as in ``bench.rebuild``; a rebuild already made at that size in this run
is reused), and the latency of read-model queries called in process (no HTTP): the
client card, lifecycle counts as of an instant, the funnel as of an instant, and
one client's audit page.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from adapters.read_models.audit import AuditReadModel
from adapters.read_models.directory import DirectoryReadModel
from adapters.read_models.funnel import FunnelReadModel
from adapters.read_models.lifecycle import LifecycleReadModel
from bench.common import (
    Histories,
    History,
    Options,
    client_ids,
    note,
    percentile,
    ratio,
    table,
    title,
)
from bench.rebuild import ensure_projected, raw_read
from domain.pipeline import DEFAULT_PIPELINE, pipeline_id


def queries(history: History, rng: random.Random) -> dict[str, Callable[[], Any]]:
    crm = history.crm
    ids = client_ids(crm, 2000)
    now = datetime.now(UTC)
    pipeline = pipeline_id(DEFAULT_PIPELINE)
    directory = crm.model(DirectoryReadModel)
    lifecycle = crm.model(LifecycleReadModel)
    funnel = crm.model(FunnelReadModel)
    audit = crm.model(AuditReadModel)

    def instant() -> datetime:
        return now - timedelta(days=rng.uniform(0, 3 * 365))

    return {
        "card": lambda: directory.card(rng.choice(ids)),
        "lifecycle counts as of": lambda: lifecycle.stage_counts(instant()),
        "funnel as of": lambda: funnel.funnel(pipeline, instant()),
        "audit page of a client": lambda: audit.page(client_id=rng.choice(ids)),
    }


def timed(call: Callable[[], Any], times: int) -> list[float]:
    latencies = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


def run(options: Options, histories: Histories) -> None:
    sizes = [20_000, 40_000] if options.quick else [100_000, 1_000_000]
    if options.big:
        sizes.append(5_000_000)
    calls = 20 if options.quick else 200
    title(
        "scale",
        {
            "backend": options.backend,
            "sizes": " / ".join(f"{n:,}" for n in sizes),
            "query calls each": calls,
        },
    )
    rebuild_rows: list[list[Any]] = []
    query_rows: list[list[Any]] = []
    for size in sizes:
        history = histories.get(options.backend, size)
        raw = raw_read(history)
        rebuilt = ensure_projected(history)
        rebuild_rows.append(
            [
                history.head,
                rebuilt.seconds,
                rebuilt.events_per_second,
                raw.rows_per_second,
                ratio(rebuilt.events_per_second, raw.rows_per_second),
                rebuilt.peak_rss_mb,
            ]
        )
        for name, call in queries(history, random.Random(size)).items():
            call()  # warm up
            latencies = timed(call, calls)
            query_rows.append(
                [
                    history.head,
                    name,
                    percentile(latencies, 50) * 1000,
                    percentile(latencies, 99) * 1000,
                ]
            )
        note(f"{size:,} done")
    table(
        ["events", "rebuild s", "rebuild ev/s", "raw ev/s", "vs raw", "peak RSS MB"],
        rebuild_rows,
    )
    table(["events", "query (in process)", "p50 ms", "p99 ms"], query_rows)
