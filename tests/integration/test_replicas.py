"""Reads from a PostgreSQL streaming replica (``CRM_READ_DATABASE_URL``), on a real
primary and replica of the tests' own (``tests.replication``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from litestar.testing import TestClient

from api.bootstrap import Crm, bootstrap
from api.http.app import create_app
from tests.conftest import make_settings
from tests.replication import Pair, streaming_pair

pytestmark = pytest.mark.postgres


@pytest.fixture
def pair() -> Iterator[Pair]:
    with streaming_pair() as made:
        yield made


@pytest.fixture
def crm(pair: Pair, tmp_path: Path) -> Iterator[Crm]:
    settings = make_settings(
        "postgresql",
        tmp_path,
        database_url=pair.primary.url,
        read_database_url=pair.replica.url,
        replica_max_lag=0.5,
        embedded_projector=True,
    )
    with bootstrap(settings) as product:
        yield product


def register(http: TestClient[Any], token: str, name: str) -> dict[str, Any]:
    answer = http.post(
        "/clients", json={"name": name}, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 201, answer.text
    written: dict[str, Any] = answer.json()
    return written


def card(http: TestClient[Any], token: str, written: dict[str, Any]) -> Any:
    return http.get(
        f"/clients/{written['id']}?min_position={written['position']}",
        headers={"Authorization": f"Bearer {token}"},
    )


def test_reads_go_to_the_replica_see_ones_own_writes_and_go_on_with_the_primary_gone(
    pair: Pair, crm: Crm
) -> None:
    assert crm.router is not None
    token = crm.users.add("ada", "admin")
    pair.wait_for_replay()  # the user reached the replica
    crm.router.check()
    assert crm.router.pick().name == pair.replica.url  # every request is pinned to it
    with TestClient(create_app(crm), raise_server_exceptions=False) as http:
        written = register(http, token, "Ann Lee")

        read = card(http, token, written)  # waits for the replica's tracked positions

        assert read.status_code == 200, read.text
        assert read.json()["name"] == "Ann Lee"
        pair.wait_for_replay()
        pair.cluster.stop(pair.primary)
        crm.router.check()

        assert card(http, token, written).status_code == 200  # the replica answers alone
        refused = http.post(
            "/clients", json={"name": "Bo"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 503


def test_a_replica_behind_or_down_is_skipped_for_the_primary(pair: Pair, crm: Crm) -> None:
    assert crm.router is not None
    token = crm.users.add("ada", "admin")
    pair.wait_for_replay()
    with TestClient(create_app(crm), raise_server_exceptions=False) as http:
        with psycopg.connect(pair.replica.url, autocommit=True) as replica:
            replica.execute("SELECT pg_wal_replay_pause()")
            written = register(http, token, "Ann Lee")  # the replica will not see it
            deadline_passed = False
            for _ in range(100):
                crm.router.check()
                if crm.router.pick() is crm.router.primary:
                    deadline_passed = True
                    break
                time.sleep(0.05)
            assert deadline_passed, "a paused replica was never skipped"

            read = card(http, token, written)

            assert read.status_code == 200, read.text  # from the primary
            replica.execute("SELECT pg_wal_replay_resume()")
        pair.wait_for_replay()
        crm.router.check()
        assert crm.router.pick().name == pair.replica.url  # used again once caught up

        pair.cluster.stop(pair.replica)
        crm.router.check()
        assert crm.router.pick() is crm.router.primary
        assert card(http, token, written).status_code == 200
