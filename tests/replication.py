"""A throw-away PostgreSQL primary and streaming replica of the tests' own, made with
``initdb`` and ``pg_basebackup -R`` in temporary directories on free ports (the shared
test server's configuration is never touched). The server refuses to run as root, so
as root its binaries run as the ``postgres`` user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.conftest import REQUIRE_POSTGRES
from tests.e2e.server import free_port

SERVER_USER = "postgres"


def binaries() -> Path | None:
    """The PostgreSQL server's binaries (``initdb``, ``pg_ctl``, ``pg_basebackup``)."""
    found = shutil.which("pg_config")
    if found:
        done = subprocess.run([found, "--bindir"], capture_output=True, text=True, check=False)
        candidate = Path(done.stdout.strip())
        if (candidate / "initdb").exists():
            return candidate
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return versions[0].parent if versions else None


@dataclass
class Server:
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


class Cluster:
    """Runs the server's binaries, as ``postgres`` when this process is root."""

    def __init__(self, bindir: Path, base: Path) -> None:
        self.bindir = bindir
        self.base = base
        self.servers: list[Server] = []

    def run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}")

    def start(self, directory: Path, port: int) -> Server:
        log = self.base / f"{directory.name}.log"
        options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.base}"
        self.run("pg_ctl", "-D", str(directory), "-l", str(log), "-o", options, "-w", "start")
        server = Server(directory, port)
        self.servers.append(server)
        return server

    def stop(self, server: Server) -> None:
        self.run("pg_ctl", "-D", str(server.directory), "-m", "immediate", "-w", "stop")
        self.servers.remove(server)


@dataclass
class Pair:
    cluster: Cluster
    primary: Server
    replica: Server

    def wait_for_replay(self, timeout: float = 30.0) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            lsn = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.replica.url, autocommit=True) as conn:
            while not conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
            ).fetchone()[0]:  # type: ignore[index]
                assert time.monotonic() < deadline, "the replica did not catch up"
                time.sleep(0.02)


@contextmanager
def streaming_pair() -> Iterator[Pair]:
    """A primary and its streaming replica, both stopped and deleted afterwards;
    skipped with a message where the server's binaries are absent (required in CI)."""
    bindir = binaries()
    if bindir is None:
        message = "PostgreSQL's server binaries (initdb, pg_basebackup) are not installed"
        if REQUIRE_POSTGRES:
            pytest.fail(f"{message} (CRM_REQUIRE_POSTGRES=1)")
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="crm-replication-"))
    if os.geteuid() == 0:
        account = pwd.getpwnam(SERVER_USER)
        os.chown(base, account.pw_uid, account.pw_gid)
    cluster = Cluster(bindir, base)
    try:
        primary_dir, replica_dir = base / "primary", base / "replica"
        cluster.run("initdb", "-D", str(primary_dir), "-A", "trust", "-U", "postgres", "--no-sync")
        with (primary_dir / "postgresql.conf").open("a") as conf:
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        primary = cluster.start(primary_dir, free_port())
        cluster.run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
            *("-D", str(replica_dir), "-R", "-X", "stream", "--no-sync"),
        )
        replica = cluster.start(replica_dir, free_port())
        yield Pair(cluster, primary, replica)
    finally:
        for server in list(cluster.servers):
            with suppress(RuntimeError):
                cluster.stop(server)
        shutil.rmtree(base, ignore_errors=True)
