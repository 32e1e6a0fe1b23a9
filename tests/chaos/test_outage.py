"""A database that cannot be reached is a 503 with ``Retry-After`` (never a 500 or a
long hang) and the API recovers by itself when it is back; an idle server holds few
connections; SIGTERM lets the work in hand finish."""

from __future__ import annotations

import signal
import subprocess
import threading
import time

import httpx

from tests.chaos.conftest import Api, Rig
from tests.chaos.test_chaos import head, registered_ids, tracked
from tests.e2e.server import CLI

PROBLEM = "application/problem+json"


def until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.1)


def test_an_unreachable_database_is_a_503_with_retry_after_and_the_api_recovers_when_it_is_back(
    rig: Rig,
) -> None:
    api = rig.api()
    auth = {"Authorization": f"Bearer {rig.token}"}
    write = {"Idempotency-Key": "during-the-outage", **auth}
    with httpx.Client(base_url=api.base_url, timeout=20.0, trust_env=False) as http:
        assert http.get("/clients", headers=auth).status_code == 200

        rig.database.refuse_connections()
        rig.database.end_sessions()
        time.sleep(0.2)
        read = http.get("/clients", headers=auth)
        written = http.post("/clients", json={"name": "Ann Lee"}, headers=write)
        live = http.get("/health/live")
        ready = http.get("/health/ready")

        for answer in (read, written):
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"].startswith(PROBLEM)
            assert answer.headers["retry-after"] == "1"
            assert answer.json()["type"] == "urn:crm:problem:database_unavailable"
        assert "Idempotency-Key" in written.json()["detail"]
        assert "Idempotency-Key" not in read.json()["detail"]
        assert live.status_code == 200
        assert ready.status_code == 503
        assert "cannot be reached" in ready.json()["detail"]

        rig.database.refuse_connections(False)
        until(lambda: http.get("/clients", headers=auth).status_code == 200)
        retried = http.post("/clients", json={"name": "Ann Lee"}, headers=write)
        assert retried.status_code == 201
        again = http.post("/clients", json={"name": "Ann Lee"}, headers=write)
        assert again.json()["id"] == retried.json()["id"]
        until(lambda: http.get("/health/ready").status_code == 200)
    assert registered_ids(rig.database).count(retried.json()["id"]) == 1
    assert api.alive()
    assert "unexpected error" not in api.output()


def test_an_idle_api_holds_a_few_connections_not_a_pool_each(rig: Rig) -> None:
    """Six idle servers held 12 connections each (pools filled to their size) and
    exhausted ``max_connections=100``."""
    defaults = {k: v for k, v in rig.environment.items() if k != "CRM_POOL_SIZE"}  # 10
    api = Api(defaults, rig.directory)  # with its embedded projector
    rig.processes.append(api)
    api.start()
    with httpx.Client(base_url=api.base_url, timeout=10.0, trust_env=False) as http:
        auth = {"Authorization": f"Bearer {rig.token}"}
        assert http.get("/clients", headers=auth).status_code == 200
        assert http.get("/health/ready").status_code == 200
        metrics = http.get("/metrics", headers=auth).text
    for pool in ("commands", "reads"):  # each pool's use, for the operator
        assert f'crm_db_pool_connections{{pool="{pool}"}}' in metrics
        assert f'crm_db_pool_waiting{{pool="{pool}"}} 0.0' in metrics
    time.sleep(1.0)  # idle

    # One each for commands and reads, one the projector listens on.
    assert rig.database.sessions() <= 4


def test_sigterm_lets_a_request_in_flight_finish_before_the_api_stops(rig: Rig) -> None:
    api = rig.api("--no-projector")
    auth = {"Authorization": f"Bearer {rig.token}"}
    with httpx.Client(base_url=api.base_url, timeout=20.0, trust_env=False) as http:
        written = http.post("/clients", json={"name": "Ann Lee"}, headers=auth).json()
        answers: list[httpx.Response] = []
        path = f"/clients/{written['id']}?min_position={written['position']}"
        reader = threading.Thread(target=lambda: answers.append(http.get(path, headers=auth)))
        reader.start()  # waits: no projector has applied the write yet
        time.sleep(0.5)
        assert api.process is not None
        api.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        caught_up = subprocess.run(  # noqa: PLW1510 - checked below
            [*CLI, "project", "--once"], env=rig.environment, cwd=rig.directory, capture_output=True
        )
        reader.join(timeout=20)
    assert caught_up.returncode == 0, caught_up.stderr
    assert [answer.status_code for answer in answers] == [200]
    assert answers[0].json()["id"] == written["id"]
    api.process.wait(timeout=15)


def test_sigterm_stops_a_projector_after_the_batch_in_hand_not_the_whole_backlog(rig: Rig) -> None:
    from api.bootstrap import bootstrap
    from api.demo import load_demo
    from tests.conftest import make_settings

    with bootstrap(
        make_settings("postgresql", rig.directory, database_url=rig.database.url)
    ) as crm:
        load_demo(crm, clients_count=40)
        crm.projector()  # the read models' tables, at position 0
    backlog = head(rig.database)
    projector = rig.process("project", CRM_PROJECTION_BATCH_SIZE="5")
    until(lambda: min(tracked(rig.database).values(), default=0) > 0, timeout=30)
    assert projector.process is not None
    projector.process.send_signal(signal.SIGTERM)

    assert projector.process.wait(timeout=15) == 0, projector.output()
    stopped_at = tracked(rig.database)
    assert min(stopped_at.values()) < backlog  # it did not catch up first
    assert len(set(stopped_at.values())) == 1  # every model at one batch's end
