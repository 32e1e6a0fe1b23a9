"""Shared fixtures: an attributed command context, and the product on every store.

PostgreSQL tests run against ``CRM_TEST_DATABASE_URL`` (default: the local server),
each in a schema of its own that is dropped afterwards. Without a server they skip
with a message, unless ``CRM_REQUIRE_POSTGRES=1`` (set by CI), where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from api.bootstrap import Crm, bootstrap
from application.settings import Settings
from domain.envelope import Envelope, recording

POSTGRES_URL = os.environ.get("CRM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("CRM_REQUIRE_POSTGRES") == "1"
TEST_MASTER_KEY = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE="


@dataclass
class _PostgresState:
    checked: bool = False
    problem: str | None = None
    passed: int = 0


_postgres = _PostgresState()


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None if it can."""
    if not _postgres.checked:
        _postgres.checked = True
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as error:
            _postgres.problem = f"PostgreSQL at {POSTGRES_URL} is not reachable: {error}".strip()
    return _postgres.problem


def require_postgres() -> None:
    problem = postgres_unavailable()
    if problem is None:
        return
    if REQUIRE_POSTGRES:
        pytest.fail(f"{problem} (CRM_REQUIRE_POSTGRES=1: PostgreSQL tests must run)")
    pytest.skip(f"{problem}; set CRM_TEST_DATABASE_URL to run the PostgreSQL tests")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs on PostgreSQL, so ``-m postgres`` selects them all."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and "postgresql" in callspec.id.split("-")
        fixtures = getattr(item, "fixturenames", ())
        if on_postgres or {"postgres_schema", "own_database"} & set(fixtures):
            item.add_marker(pytest.mark.postgres)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and report.passed and "postgres" in report.keywords:
        _postgres.passed += 1


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI (``CRM_REQUIRE_POSTGRES=1``) a run in which no PostgreSQL test passed is a
    failure, whatever the reason."""
    if REQUIRE_POSTGRES and session.testscollected and not _postgres.passed and exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                "CRM_REQUIRE_POSTGRES=1 but no PostgreSQL test passed", red=True, bold=True
            )


@pytest.fixture
def postgres_schema() -> Iterator[str]:
    """A fresh schema for one test, dropped afterwards."""
    require_postgres()
    schema = f"test_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@dataclass
class OwnDatabase:
    """A database of one test's own on the test server: ending its sessions or
    refusing connections to it (as a restart, a failover or an outage would) touches
    nothing else running there."""

    name: str
    url: str

    def _admin(self, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def end_sessions(self) -> int:
        """``pg_terminate_backend`` every session of this database; how many."""
        rows = self._admin(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
            f" WHERE datname = '{self.name}' AND pid <> pg_backend_pid()"
        )
        return int(str(rows[0][0]))

    def sessions(self) -> int:
        rows = self._admin(f"SELECT COUNT(*) FROM pg_stat_activity WHERE datname = '{self.name}'")
        return int(str(rows[0][0]))

    def refuse_connections(self, refuse: bool = True) -> None:
        """New connections are refused (``ALLOW_CONNECTIONS false``) until told
        otherwise; ending the sessions too makes the database unreachable."""
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS {str(not refuse).lower()}')


@pytest.fixture
def own_database() -> Iterator[OwnDatabase]:
    """A new database for one test (see ``OwnDatabase``), dropped afterwards."""
    require_postgres()
    name = f"crm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = OwnDatabase(name, urlunsplit(urlsplit(POSTGRES_URL)._replace(path=f"/{name}")))
    try:
        yield database
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(backend: str, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "master_key": TEST_MASTER_KEY,
        "key_file": str(tmp_path / "crm.key"),
    }
    if backend == "memory":
        values["database_url"] = "memory:"
    elif backend == "sqlite":
        values["database_url"] = f"sqlite:///{tmp_path / 'crm.db'}"
    else:
        values["database_url"] = POSTGRES_URL
    values.update(overrides)
    return Settings.model_validate(values)


STORES = ["memory", "sqlite", "postgresql"]


@contextmanager
def fresh_product(backend: str, directory: Path, **overrides: object) -> Iterator[Crm]:
    """A new, empty product on ``backend`` (for hypothesis examples, which cannot use
    function-scoped fixtures); a PostgreSQL schema of its own is dropped afterwards."""
    schema = None
    if backend == "postgresql":
        require_postgres()
        schema = f"test_{uuid.uuid4().hex[:12]}"
        overrides = {"database_schema": schema, **overrides}
    folder = directory / uuid.uuid4().hex
    folder.mkdir()
    try:
        with bootstrap(make_settings(backend, folder, **overrides)) as product:
            yield product
    finally:
        if schema is not None:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def table_rows(crm: Crm, table: str) -> list[tuple[object, ...]]:
    """Every row of a table, sorted, with values made comparable across dialects."""
    rows = crm.db.query(f"SELECT * FROM {table}")
    return sorted(tuple(str(value) for value in row) for row in rows)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest) -> str:
    backend: str = request.param
    return backend


@pytest.fixture
def settings(store: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if store == "postgresql":
        schema = request.getfixturevalue("postgres_schema")
        return make_settings(store, tmp_path, database_schema=schema)
    return make_settings(store, tmp_path)


@pytest.fixture
def crm(settings: Settings) -> Iterator[Crm]:
    """The whole product, built by the composition root, on each store in turn."""
    with bootstrap(settings) as product:
        yield product


@pytest.fixture
def envelope() -> Envelope:
    return Envelope(
        actor_id="alice", actor_role="admin", source="api", correlation_id="test-correlation"
    )


@pytest.fixture
def attributed(envelope: Envelope) -> Iterator[Envelope]:
    """Run the test's aggregate commands attributed to ``envelope``."""
    with recording(envelope):
        yield envelope


def at(text: str) -> datetime:
    """An aware UTC instant from ISO text, e.g. ``at("2024-03-01T10:00")``."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed
