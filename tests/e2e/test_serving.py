"""``crm serve --workers N`` as a real process: connections opened together are spread
over the workers (each listens on a socket of its own); a worker that dies is
replaced; stopping the server stops every worker.

Which worker holds a connection is read from ``/proc`` (Linux only): the socket
inodes of each worker's open files against the established TCP connections of the
server's port.
"""

from __future__ import annotations

import http.client
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import TEST_MASTER_KEY
from tests.e2e.server import HOST, Server, crm_environment, running_server

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads connections from Linux's /proc"
)
CLIENTS = 16
ESTABLISHED = "01"
LISTEN = "0A"


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def tcp_inodes(port: int, state: str) -> set[str]:
    """Socket inodes of the TCP sockets in ``state`` whose local port is ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def port_of(server: Server) -> int:
    port = urlsplit(server.base_url).port
    assert port is not None
    return port


def workers(server: Server) -> set[int]:
    """The server's child processes listening on its port."""
    listening = tcp_inodes(port_of(server), LISTEN)
    return {pid for pid in children(server.process.pid) if socket_inodes(pid) & listening}


def connections_by_worker(server: Server) -> dict[int, int]:
    """How many of the server's established connections each worker holds."""
    established = tcp_inodes(port_of(server), ESTABLISHED)
    return {worker: len(socket_inodes(worker) & established) for worker in workers(server)}


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def health(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    return response.status


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    environment = crm_environment(
        {
            "CRM_DATABASE_URL": f"sqlite:///{tmp_path / 'crm.db'}",
            "CRM_MASTER_KEY": TEST_MASTER_KEY,
            "CRM_KEY_FILE": str(tmp_path / "crm.key"),
            "CRM_LOG_LEVEL": "warning",
        }
    )
    with running_server(environment, tmp_path, "--workers", "2", "--no-projector") as running:
        wait_for(lambda: len(workers(running)) == 2)
        yield running


def test_keep_alive_clients_connecting_together_are_spread_over_the_workers(
    server: Server,
) -> None:
    port = port_of(server)
    with ExitStack() as stack:
        clients = [http.client.HTTPConnection(HOST, port, timeout=10) for _ in range(CLIENTS)]
        for client in clients:
            stack.callback(client.close)
            client.connect()  # all connected before any request: one burst of accepts
        assert [health(client) for client in clients] == [200] * CLIENTS

        held = connections_by_worker(server)
    assert sum(held.values()) == CLIENTS
    # Shared by the kernel's hash of the addresses; both idle workers are used (the
    # chance that 16 land on one of two by the hash alone is 1 in 32,768).
    assert len(held) == 2
    assert all(count > 0 for count in held.values()), held


def test_a_worker_that_dies_is_replaced_and_stopping_the_server_stops_them_all(
    server: Server,
) -> None:
    first = workers(server)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)

    wait_for(lambda: len(workers(server) - {victim}) == 2)
    port = port_of(server)
    for _ in range(4):
        client = http.client.HTTPConnection(HOST, port, timeout=10)
        assert health(client) == 200
        client.close()

    started = children(server.process.pid)  # the workers and multiprocessing's helper
    server.process.terminate()
    server.process.wait(timeout=15)
    for worker in started:
        wait_for(lambda w=worker: not Path(f"/proc/{w}").exists(), timeout=15)
