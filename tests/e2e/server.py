"""A real ``crm`` process for end-to-end tests: the command line in a subprocess, and
``crm serve`` started on a free port of 127.0.0.1 and always stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"
CLI = (sys.executable, "-c", "from api.cli import main; main()")
STARTUP_SECONDS = 30.0
STOP_SECONDS = 10.0


def crm_environment(settings: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with every inherited ``CRM_*`` variable replaced by
    ``settings``: the product refuses unknown ``CRM_*`` names (such as the test
    suite's ``CRM_REQUIRE_POSTGRES``), and must not pick up a developer's store."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    environment.update(settings)
    return environment


def run_cli(environment: Mapping[str, str], directory: Path, *args: str) -> str:
    """Run ``crm ARGS`` to completion; its standard output (a failure raises)."""
    done = subprocess.run(  # noqa: PLW1510 - the return code is checked below, with output
        [*CLI, *args],
        env=dict(environment),
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise AssertionError(
            f"crm {' '.join(args)} exited with {done.returncode}:\n{done.stdout}{done.stderr}"
        )
    return done.stdout


def add_user(environment: Mapping[str, str], directory: Path, name: str, role: str) -> str:
    """``crm users add NAME --role ROLE``; the token it prints."""
    token = run_cli(environment, directory, "users", "add", name, "--role", role).strip()
    assert token, f"crm users add {name} printed no token"
    assert len(token.split()) == 1, f"crm users add {name} printed more than a token: {token!r}"
    return token


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def output(self) -> str:
        """What the server printed so far (standard output and error)."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def wait_until_healthy(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base_url, timeout=2.0, trust_env=False) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(
                    f"crm serve exited with {server.process.returncode} before it answered:\n"
                    + server.output()
                )
            try:
                if http.get("/health/live").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"crm serve did not answer /health/live in {timeout} s:\n{server.output()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the process; kill it if it has not ended after ``STOP_SECONDS``."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_SECONDS)


@contextmanager
def running_server(
    environment: Mapping[str, str], directory: Path, *options: str
) -> Iterator[Server]:
    """``crm serve [OPTIONS]`` on a free port of 127.0.0.1, answering ``/health``;
    stopped on exit whatever happens inside."""
    port = free_port()
    log = directory / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*CLI, "serve", "--host", HOST, "--port", str(port), *options],
            env=dict(environment),
            cwd=directory,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(process, f"http://{HOST}:{port}", log)
    try:
        wait_until_healthy(server, STARTUP_SECONDS)
        yield server
    finally:
        stop(process)
