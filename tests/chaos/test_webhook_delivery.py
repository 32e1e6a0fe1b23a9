"""``crm deliver`` killed with SIGKILL mid-stream loses nothing: two delivery
processes share three subscriptions (each delivered by one at a time), one is killed,
the other takes its subscriptions over, the killed one comes back; every receiver
gets every event, in order, the only repeats being the few after the last committed
position, with the same ``webhook-id``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from api.bootstrap import bootstrap
from api.push import create_subscription
from application import clients
from application.settings import Settings
from domain.envelope import Envelope
from tests.chaos.conftest import Process
from tests.receiver import Receiver, receiver

ADMIN = Envelope(actor_id="ada", actor_role="admin", source="api", correlation_id="chaos")


@pytest.fixture
def hooks() -> Iterator[list[Receiver]]:
    with ExitStack() as stack:
        yield [stack.enter_context(receiver()) for _ in range(3)]


def test_delivery_processes_killed_with_sigkill_lose_nothing(
    environment: dict[str, str],
    tmp_path: Path,
    processes: list[Process],
    hooks: list[Receiver],
) -> None:
    environment = {**environment, "CRM_WEBHOOK_ALLOW_PRIVATE": "true"}
    settings = Settings.from_env(environment)
    with bootstrap(settings) as crm:
        crm.projector()
        first = [
            create_subscription(crm, ADMIN, url=hook.url, events=["Client.*"]).result
            for hook in hooks
        ]
        start = max(s.position or 0 for s in first)

        def record(count: int) -> None:
            for n in range(count):
                crm.app.execute(clients.RegisterClient(name=f"Lead {n}"), ADMIN)

        for hook in hooks:  # slow receivers: the kill lands mid-stream
            hook.fail_for = lambda _: bool(time.sleep(0.004))
        record(150)
        deliverers = [Process(environment, tmp_path, "deliver") for _ in range(2)]
        processes.extend(deliverers)
        for process in deliverers:
            process.start()
        assert all(
            hook.wait_for(lambda r: len(r.delivered()) >= 40, timeout=30) for hook in hooks
        ), deliverers[0].output() + deliverers[1].output()
        deliverers[0].kill()
        record(50)
        assert hooks[0].wait_for(lambda r: len(r.delivered()) >= 150, timeout=30)
        deliverers[0].start()
        record(50)
        head = crm.app.recorder.max_notification_id() or 0
        expected = [
            n.id
            for n in crm.app.recorder.select_notifications(start=start + 1, limit=head)
            if n.topic.startswith("domain.client:")
        ]

        for hook in hooks:
            assert hook.wait_for(lambda r: set(expected) <= set(r.positions()), timeout=60), (
                deliverers[0].output() + deliverers[1].output()
            )
            positions = [p for p in hook.positions() if p > start]
            # in order, except a rewind to the last committed position after the kill
            rewinds = [i for i in range(1, len(positions)) if positions[i] <= positions[i - 1]]
            assert len(rewinds) <= 1, rewinds
            assert sorted(set(positions)) == expected  # nothing lost, nothing extra
            ids = {}
            for request in hook.delivered():  # a repeat is the same message
                ids.setdefault(request.json["position"], request.headers["webhook-id"])
                assert ids[request.json["position"]] == request.headers["webhook-id"]
