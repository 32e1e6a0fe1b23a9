"""http: the API under a bounded load on 127.0.0.1, against a trivial endpoint.

``crm serve --no-projector`` runs as a subprocess on a free port, over a generated
history whose read models were built first (``bench.rebuild``). A load generator of
16 threads, each with its own keep-alive ``http.client`` connection, sends a fixed
number of requests per endpoint (reads first, then the command) and times each.
The ceiling, in the same run: a minimal Litestar app (``bench.trivial_app``, one
route answering ``{}``) served as ``crm serve`` serves the API (``api.serving``), with
the same worker count, driven the same way.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.common import (
    HOST,
    PYTHON,
    ROOT,
    Histories,
    History,
    Options,
    client_ids,
    free_port,
    note,
    percentile,
    ratio,
    stop,
    table,
    title,
    wait_for_port,
)
from bench.rebuild import ensure_projected

CONCURRENCY = 16
WORKERS = os.cpu_count() or 1
"""uvicorn processes, for the ceiling and the API alike: one per core, as in production."""
CLI = (PYTHON, "-c", "from api.cli import main; main()")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None


@dataclass
class Load:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int = 0
    first_error: str = ""
    statuses: dict[int, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0
    """CPU the load generator itself used (this process)."""

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def load(
    port: int,
    requests: Sequence[Request],
    headers: dict[str, str],
    budget: float = 60.0,
    *,
    senders: int = CONCURRENCY,
) -> Load:
    """Send ``requests`` over ``senders`` connections (thread ``t`` sends every
    ``t``-th one, in order), stopping early after ``budget`` seconds; the wall time and
    each request's latency."""
    ready = threading.Barrier(senders + 1)
    latencies: list[list[float]] = [[] for _ in range(senders)]
    statuses: dict[int, int] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def sender(t: int) -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        try:
            ready.wait()
            deadline = time.perf_counter() + budget
            for request in requests[t::senders]:
                started = time.perf_counter()
                if started > deadline:
                    break
                conn.request(request.method, request.path, body=request.body, headers=headers)
                response = conn.getresponse()
                body = response.read()
                latencies[t].append(time.perf_counter() - started)
                with lock:
                    statuses[response.status] = statuses.get(response.status, 0) + 1
                    if response.status >= 300 and not errors:
                        errors.append(
                            f"{request.method} {request.path}: {response.status} {body[:300]!r}"
                        )
        finally:
            conn.close()

    threads = [threading.Thread(target=sender, args=(t,), daemon=True) for t in range(senders)]
    for thread in threads:
        thread.start()
    ready.wait()
    started, cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.join()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    failed = sum(n for status, n in statuses.items() if status >= 300)
    return Load(
        sum(map(len, latencies)),
        seconds,
        [x for xs in latencies for x in xs],
        failed,
        errors[0] if errors else "",
        statuses,
        cpu,
    )


@contextmanager
def server(command: Sequence[str], environment: dict[str, str], log: Path) -> Iterator[int]:
    """``command`` (given ``--port``) listening on a free port of 127.0.0.1; always
    stopped afterwards."""
    port = free_port()
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(process, port, log, timeout=60)
        yield port
    finally:
        stop(process)


def reads(history: History, per_endpoint: int) -> dict[str, list[Request]]:
    rng = random.Random(7)
    ids = client_ids(history.crm, 2000)
    now = datetime.now(UTC)

    def instant() -> str:
        at = now - timedelta(days=rng.uniform(0, 3 * 365))
        return at.strftime("%Y-%m-%dT%H:%M:%SZ")

    def some(make: object) -> list[Request]:
        return [make() for _ in range(per_endpoint)]  # type: ignore[operator]

    return {
        "GET /clients/{id}": some(lambda: Request("GET", f"/clients/{rng.choice(ids)}")),
        "GET /lifecycle?as_of=": some(lambda: Request("GET", f"/lifecycle?as_of={instant()}")),
        "GET /funnel?as_of=": some(lambda: Request("GET", f"/funnel?as_of={instant()}")),
        "GET /audit?client_id=": some(
            lambda: Request("GET", f"/audit?client_id={rng.choice(ids)}")
        ),
    }


def commands(history: History, count: int) -> list[Request]:
    """``POST /clients/{id}/purchases``, each sender on clients of its own (request
    ``i`` goes to sender ``i % CONCURRENCY`` and to a client only that sender uses)."""
    ids = client_ids(history.crm, CONCURRENCY * 8)
    body = json.dumps({"amount": "12.50", "cost": "7.10"}).encode()
    return [Request("POST", f"/clients/{ids[i % len(ids)]}/purchases", body) for i in range(count)]


def run(options: Options, histories: Histories) -> None:
    history = histories.get(options.backend, options.history_events)
    per_endpoint = 200 if options.quick else 2000
    warm_up = 32 if options.quick else 160
    budget = 10.0 if options.quick else 60.0
    title(
        "http",
        {
            "backend": options.backend,
            "events": f"{history.head:,}",
            "concurrent clients": CONCURRENCY,
            "requests per endpoint": f"{per_endpoint:,}, or as many as fit in {budget:.0f} s",
            "warm-up per endpoint": warm_up,
            "uvicorn workers": WORKERS,
            "generator": "threads with keep-alive http.client connections",
        },
    )
    ensure_projected(history)
    token = history.crm.users.add(f"bench{uuid.uuid4().hex[:8]}", "admin")
    auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    results: dict[str, Load] = {}
    log = history.place.directory / "server.log"

    trivial = [PYTHON, "-m", "bench.trivial_app", "--host", HOST, "--workers", str(WORKERS)]
    with server(trivial, history.place.environment(), log) as port:
        load(port, [Request("GET", "/")] * warm_up, {})
        empty = [Request("GET", "/")] * per_endpoint
        results["ceiling: trivial GET /"] = load(port, empty, {}, budget)

    environment = history.place.environment(CRM_WORKERS=str(WORKERS))
    crm_serve = [*CLI, "serve", "--no-projector", "--host", HOST]
    with server(crm_serve, environment, log) as port:
        for name, requests in reads(history, per_endpoint + warm_up).items():
            load(port, requests[:warm_up], auth)
            results[name] = load(port, requests[warm_up:], auth, budget)
        writes = commands(history, per_endpoint + warm_up)
        load(port, writes[:warm_up], auth)
        results["POST /clients/{id}/purchases"] = load(port, writes[warm_up:], auth, budget)

    ceiling = results["ceiling: trivial GET /"]
    table(
        ["endpoint", "requests", "req/s", "vs ceiling", "p50 ms", "p99 ms", "errors", "gen CPU"],
        [
            [
                name,
                r.requests,
                r.per_second,
                ratio(r.per_second, ceiling.per_second),
                r.p(50),
                r.p(99),
                r.errors,
                f"{r.cpu_seconds / r.seconds:.0%}" if r.seconds else "-",
            ]
            for name, r in results.items()
        ],
    )
    note("gen CPU: the load generator's own CPU time over the wall time (2 cores = 200%)")
    for name, r in results.items():
        if r.first_error:
            note(f"{name}: first error: {r.first_error}")
