"""webhooks: events delivered per second to a local receiver by one delivery process
with 10 subscriptions (``*``), against a raw loop posting the same bodies with the
same HTTP client (httpx, one client and thread per subscription, as the delivery
process has), measured in the same run.

The receiver is a separate process (``bench.receiver``: uvicorn, 204 to every POST),
so that its work is not this process's. The events are recorded first; the clock
runs from the delivery process's start until every subscription's delivered
position has reached the head (committed), so it includes reading, decoding,
rendering, signing, posting and tracking.
"""

from __future__ import annotations

import subprocess
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from uuid import UUID

import httpx
from standardwebhooks.webhooks import Webhook

from adapters.webhooks import message_id, secret_of, tracking_name
from api.bootstrap import Crm, bootstrap
from api.push import OWN_MODELS, create_subscription, deliver_until_stopped, webhook_body
from application import clients
from bench.common import (
    HOST,
    PYTHON,
    ROOT,
    Histories,
    Options,
    free_port,
    note,
    place,
    ratio,
    stop,
    table,
    title,
    wait_for_port,
)
from domain.envelope import Envelope
from projections.base import Recorded

SUBSCRIPTIONS = 10
ADMIN = Envelope(actor_id="bench", actor_role="admin", source="api", correlation_id="bench")


def run(options: Options, histories: Histories) -> None:
    del histories
    events = 300 if options.quick else 3_000
    title(
        "webhooks",
        {
            "backend": options.backend,
            "events": events,
            "subscriptions": SUBSCRIPTIONS,
            "deliveries": events * SUBSCRIPTIONS,
            "receiver": "uvicorn on 127.0.0.1, another process",
        },
    )
    with ExitStack() as stack:
        where = stack.enter_context(place(options.backend))
        port = free_port()
        log = where.directory / "receiver.log"
        with log.open("wb") as sink:
            receiver = subprocess.Popen(
                [PYTHON, "-m", "bench.receiver", str(port)],
                cwd=ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        stack.callback(stop, receiver)
        wait_for_port(receiver, port, log, timeout=30)
        url = f"http://{HOST}:{port}/hook"
        crm = stack.enter_context(bootstrap(where.settings(webhook_allow_private=True)))
        crm.projector()
        subscriptions = [
            create_subscription(crm, ADMIN, url=url, events=["*"]).result.id
            for _ in range(SUBSCRIPTIONS)
        ]
        start = crm.app.recorder.max_notification_id() or 0
        for n in range(events):
            crm.app.execute(clients.RegisterClient(name=f"Lead {n}"), ADMIN)
        head = crm.app.recorder.max_notification_id() or 0
        crm.projector(list(OWN_MODELS)).catch_up()
        note(f"recorded {head - start:,} events")

        raw = _raw_loop(crm, subscriptions, url, start)
        seconds = _deliver(crm, subscriptions, head)
        delivered = (head - start) * SUBSCRIPTIONS
        rate = delivered / seconds
        table(
            ["what", "deliveries", "seconds", "deliveries/s", "vs raw"],
            [
                ["raw loop: httpx, same bodies signed", delivered, raw, delivered / raw, "1.00x"],
                [
                    "crm deliver (one process)",
                    delivered,
                    seconds,
                    rate,
                    ratio(rate, delivered / raw),
                ],
            ],
        )


def _raw_loop(crm: Crm, subscriptions: list[UUID], url: str, start: int) -> float:
    """The same bodies (rendered beforehand) and signatures, posted by one thread and
    one client per subscription, each answer checked."""
    notifications = crm.app.recorder.select_notifications(start=start, limit=10**9)
    bodies = [
        (n.id, webhook_body(Recorded(n.id, crm.app.mapper.to_domain_event(n)), False).decode())  # type: ignore[arg-type]
        for n in notifications
        if n.id > start
    ]

    def post_all(subscription_id: UUID) -> None:
        secret = secret_of(crm.keys, subscription_id)
        assert secret is not None
        signer = Webhook(secret)
        with httpx.Client(timeout=5, follow_redirects=False) as client:
            for position, body in bodies:
                msg = message_id(subscription_id, position)
                now = datetime.now(UTC)
                client.post(
                    url,
                    content=body.encode(),
                    headers={
                        "webhook-id": msg,
                        "webhook-timestamp": str(int(now.timestamp())),
                        "webhook-signature": signer.sign(msg, now, body),
                        "content-type": "application/json",
                    },
                ).raise_for_status()

    threads = [threading.Thread(target=post_all, args=(s,)) for s in subscriptions]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def _deliver(crm: Crm, subscriptions: list[UUID], head: int) -> float:
    """Seconds from the delivery process's start until every subscription's delivered
    position is the head."""
    names = [tracking_name(s) for s in subscriptions]
    marks = ", ".join(["%s"] * len(names))
    stopping = threading.Event()
    thread = threading.Thread(
        target=deliver_until_stopped, args=(crm, stopping), kwargs={"own_models": True}
    )
    started = time.perf_counter()
    thread.start()
    try:
        deadline = started + 600
        while time.perf_counter() < deadline:
            rows = crm.db.query(
                f"SELECT COUNT(*) FROM projection_tracking WHERE name IN ({marks})"
                " AND position >= %s",
                [*names, head],
            )
            if int(rows[0][0]) == len(names):
                break
            time.sleep(0.01)
        return time.perf_counter() - started
    finally:
        stopping.set()
        thread.join(timeout=30)
