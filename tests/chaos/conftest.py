"""Chaos on real processes and a real PostgreSQL database of the test's own
(``own_database``): the API killed with SIGKILL, every database session ended with
``pg_terminate_backend``, a projector killed mid-rebuild. The load is bounded in
count and time and talks to 127.0.0.1 only."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.bootstrap import Crm, bootstrap
from tests.conftest import TEST_MASTER_KEY, OwnDatabase, make_settings
from tests.e2e.server import (
    CLI,
    HOST,
    STARTUP_SECONDS,
    Server,
    add_user,
    crm_environment,
    free_port,
    wait_until_healthy,
)

LOAD_SECONDS = 90.0
"""No writer goes on longer than this, whatever happens."""


@pytest.fixture
def environment(own_database: OwnDatabase) -> dict[str, str]:
    return crm_environment(
        {
            "CRM_DATABASE_URL": own_database.url,
            "CRM_MASTER_KEY": TEST_MASTER_KEY,
            "CRM_LOG_LEVEL": "warning",
            "CRM_POOL_SIZE": "4",
        }
    )


@pytest.fixture
def admin_token(environment: dict[str, str], tmp_path: Path) -> str:
    return add_user(environment, tmp_path, "ada", "admin")  # makes the store too


class Process:
    """A ``crm`` command run in the background, its output in a log file; always
    ended by the fixture that made it."""

    def __init__(self, environment: dict[str, str], directory: Path, *args: str) -> None:
        self.environment = environment
        self.directory = directory
        self.args = args
        self.log = directory / f"{args[0]}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [*CLI, *self.args],
                env=self.environment,
                cwd=self.directory,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.started += 1

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


class Api(Process):
    """``crm serve`` on a port that stays the same across restarts."""

    def __init__(self, environment: dict[str, str], directory: Path, *options: str) -> None:
        self.port = free_port()
        super().__init__(
            environment, directory, "serve", "--host", HOST, "--port", str(self.port), *options
        )
        self.base_url = f"http://{HOST}:{self.port}"

    def start(self) -> None:
        super().start()
        assert self.process is not None
        wait_until_healthy(Server(self.process, self.base_url, self.log), STARTUP_SECONDS)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Every process a test starts, stopped at its end whatever happened."""
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


@dataclass
class Rig:
    """What a chaos test works with: a database of its own, the ``crm`` environment
    pointing at it, an admin's token, a working directory, and the processes it
    starts (each stopped at the test's end, whatever happened)."""

    database: OwnDatabase
    environment: dict[str, str]
    token: str
    directory: Path
    processes: list[Process]

    def api(self, *options: str) -> Api:
        """``crm serve OPTIONS``, started."""
        api = Api(self.environment, self.directory, *options)
        self.processes.append(api)
        api.start()
        return api

    def process(self, *args: str, start: bool = True, **settings: str) -> Process:
        """``crm ARGS`` in the background with extra ``CRM_*`` ``settings``."""
        process = Process({**self.environment, **settings}, self.directory, *args)
        self.processes.append(process)
        if start:
            process.start()
        return process

    def product(self) -> Crm:
        """The product in this process, on the rig's database."""
        return bootstrap(
            make_settings("postgresql", self.directory, database_url=self.database.url)
        )


@pytest.fixture
def rig(
    own_database: OwnDatabase,
    environment: dict[str, str],
    admin_token: str,
    tmp_path: Path,
    processes: list[Process],
) -> Rig:
    return Rig(own_database, environment, admin_token, tmp_path, processes)


@dataclass
class Load:
    """``writers`` threads, each registering ``per_writer`` clients over HTTP, each
    under an ``Idempotency-Key`` of its own and retried with that key until it is
    answered 2xx: after a transport error (the server killed, the connection reset),
    or a 503 (the database out of reach). Every answer's status is counted."""

    base_url: str
    token: str
    writers: int = 16
    per_writer: int = 40
    read_back: bool = False
    """Also read each new card with ``min_position`` (read-your-writes through the
    projector), retrying a 503 likewise."""
    acknowledged: dict[str, str] = field(default_factory=dict)
    """idempotency key → client id, for each write answered 2xx"""
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    unexpected: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, during: Callable[[Load], None]) -> None:
        """Run the writers, and ``during(self)`` beside them (the chaos)."""
        deadline = time.monotonic() + LOAD_SECONDS
        threads = [
            threading.Thread(target=self._write, args=(n, deadline)) for n in range(self.writers)
        ]
        for thread in threads:
            thread.start()
        try:
            during(self)
        finally:
            for thread in threads:
                thread.join(timeout=LOAD_SECONDS + 30)

    def wait_for_acks(self, count: int, *, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} acknowledged"
            time.sleep(0.01)

    @property
    def total(self) -> int:
        return self.writers * self.per_writer

    def _send(
        self, http: httpx.Client, deadline: float, send: Callable[[], httpx.Response]
    ) -> httpx.Response | None:
        while time.monotonic() < deadline:
            try:
                response = send()
            except httpx.TransportError:
                with self._lock:
                    self.transport_errors += 1
                time.sleep(0.05)
                continue
            with self._lock:
                self.statuses[response.status_code] += 1
            if response.status_code == 503:
                time.sleep(0.05)
                continue
            return response
        return None

    def _write(self, writer: int, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(
            base_url=self.base_url, headers=headers, timeout=10.0, trust_env=False
        ) as http:
            for n in range(self.per_writer):
                key = f"chaos-{writer}-{n}"
                body: dict[str, Any] = {"name": f"Writer {writer} client {n}"}
                written = self._send(
                    http,
                    deadline,
                    partial(http.post, "/clients", json=body, headers={"Idempotency-Key": key}),
                )
                if written is None or written.status_code != 201:
                    self._unexpected(key, written)
                    return
                answer = written.json()
                with self._lock:
                    self.acknowledged[key] = answer["id"]
                if self.read_back:
                    path = f"/clients/{answer['id']}?min_position={answer['position']}"
                    card = self._send(http, deadline, partial(http.get, path))
                    if card is None or card.status_code != 200:
                        self._unexpected(path, card)
                        return

    def _unexpected(self, what: str, response: httpx.Response | None) -> None:
        with self._lock:
            self.unexpected.append(
                f"{what}: "
                + (
                    "no answer before the deadline"
                    if response is None
                    else f"{response.status_code} {response.text[:300]}"
                )
            )
