"""Webhook delivery after the Standard Webhooks specification.

Each active subscription is delivered by one thread of one delivery process at a
time, in position order, at least once:

* its delivered position is a row of ``projection_tracking`` (``webhook:<id>``),
  like a read model's; it moves forward only after the receiver answered 2xx, and
  is written every ``COMMIT_EVERY`` deliveries or ``COMMIT_SECONDS`` (a crash sends
  those few again, with the same ``webhook-id``), with a compare-and-set so that a
  process that lost the subscription cannot move it;
* on PostgreSQL a session advisory lock per subscription, held on one connection of
  the process, lets several delivery processes share the subscriptions (a process
  that dies releases its locks with its connection); on SQLite a lease row does;
* a failed delivery (not 2xx, a timeout, a refused connection) is retried with a
  growing, jittered pause; after ``webhook_max_age`` seconds of failures the
  subscription is marked ``failing`` (an event) and left where it stopped;
* every subscription has a thread and an HTTP client of its own: a slow or dead
  receiver delays no other.

The body of an event is rendered once per process (``EventFeed``), by the function
the entry point gives (``api.push.webhook_body``, the event feed's rendering).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit
from uuid import UUID, uuid5

import httpx
import psycopg
from eventsourcing.persistence import Notification
from eventsourcing.utils import get_topic
from prometheus_client import Counter, Gauge
from standardwebhooks.webhooks import Webhook

from adapters.keystore import KeyStore
from adapters.projector import Backoff, decode_all
from adapters.read_models.subscriptions import STATE_DDL
from adapters.sql import Database, as_datetime, as_optional_datetime
from adapters.telemetry import TRANSIENT_ERRORS
from application.app import CrmApplication
from application.errors import ApplicationError
from application.settings import Settings
from application.subscriptions import MarkSubscriptionFailing
from domain.client import Client
from domain.envelope import Envelope
from domain.errors import DomainError, InvalidValue
from domain.events import EVENTS
from domain.subscription import matches
from projections.base import Recorded
from projections.subscriptions import SubscriptionRow

log = logging.getLogger(__name__)

COMMIT_EVERY = 200
COMMIT_SECONDS = 0.25
PAGE = 500
USER_AGENT = "crm-core-webhooks/0.1"

DELIVERIES = Counter(
    "crm_webhook_deliveries", "Webhook deliveries a receiver acknowledged (2xx)", ["subscription"]
)
FAILURES = Counter(
    "crm_webhook_failures",
    "Webhook deliveries that failed (not 2xx, a timeout, a refused connection)",
    ["subscription"],
)
RETRIES = Counter(
    "crm_webhook_retries", "Webhook deliveries attempted again after a failure", ["subscription"]
)
LAG = Gauge(
    "crm_webhook_lag_events",
    "Events a subscription's delivered position is behind the store's head",
    ["subscription"],
)

# ------------------------------------------------------------------ types and secrets

SPECIAL_TYPES: dict[type[Any], str] = {
    Client.FollowUpDue: "FollowUp.Due",
    Client.LeadUnanswered: "Lead.Unanswered",
}
"""Event types a receiver knows by another name than ``Aggregate.Event``."""


def webhook_type(event_class: type[Any]) -> str:
    """``Client.PurchaseMade``, ``Deal.DealWon``; ``FollowUp.Due``, ``Lead.Unanswered``."""
    return SPECIAL_TYPES.get(event_class) or event_class.__qualname__


def topics_for(patterns: tuple[str, ...]) -> list[str]:
    """The stored topics a subscription's patterns ask for (empty: every topic)."""
    if "*" in patterns:
        return []
    return sorted(get_topic(cls) for cls in EVENTS if matches(patterns, webhook_type(cls)))


def secret_of(keys: KeyStore, subscription_id: UUID, *, create: bool = False) -> str | None:
    """The subscription's signing secret (``whsec_`` + base64 of 32 bytes), derived
    from its own data key in the key store: stored nowhere else, wrapped under the
    master key like a client's key, and gone when the key is destroyed (removal)."""
    key = keys.key(subscription_id, create=create)
    if key is None:
        return None
    raw = hmac.new(key, b"crm-core/webhook-secret/v1", hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def fingerprint(secret: str) -> str:
    """What the events keep of a secret: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def message_id(subscription_id: UUID, position: int) -> str:
    """``webhook-id``: the same for one event and one subscription on every attempt,
    so that a receiver can drop what it has already seen."""
    return f"msg_{uuid5(subscription_id, str(position)).hex}"


# ------------------------------------------------------------------ destinations


def check_destination(url: str, *, allow_private: bool) -> str | None:
    """Refuse a destination whose host resolves to a loopback, private, link-local,
    multicast or otherwise reserved address (``InvalidValue`` naming ``url``), unless
    ``allow_private``; a host that does not resolve is refused too. Returns the first
    address it resolved to (``None`` when not checked)."""
    if allow_private:
        return None
    host = urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise InvalidValue(f"url: {host} does not resolve ({error})", field="url") from None
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            raise InvalidValue(
                f"url: {host} is on a loopback, private or reserved network ({address});"
                " CRM_WEBHOOK_ALLOW_PRIVATE=true allows it",
                field="url",
            )
    if not addresses:
        raise InvalidValue(f"url: {host} does not resolve", field="url")
    return str(addresses[0])


@dataclass(frozen=True)
class Target:
    """Where a delivery connects: the URL with its host replaced by the address that
    was checked (so that a name answering otherwise a moment later — DNS rebinding —
    cannot send the request elsewhere), the ``Host`` header and, for https, the name
    TLS presents and verifies the certificate against."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def pinned(url: str, address: str | None) -> Target:
    """``url`` sent to ``address`` (``None``: as it is)."""
    if address is None:
        return Target(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return Target(
        parts._replace(netloc=netloc).geturl(),
        {"host": host if parts.port is None else f"{host}:{parts.port}"},
        extensions,
    )


# ------------------------------------------------------------------ the feed

Render = Callable[[Recorded, bool], bytes]
"""(event, with personal fields?) -> the webhook body."""


@dataclass
class Item:
    position: int
    type: str
    recorded: Recorded
    bodies: dict[bool, str] = field(default_factory=dict)


class EventFeed:
    """Stored events after a position, decoded and rendered once for every
    subscription of the process (a bounded cache by position)."""

    def __init__(self, app: CrmApplication, render: Render, *, size: int = 20_000) -> None:
        self.app = app
        self.render = render
        self.size = size
        self._cache: OrderedDict[int, Item] = OrderedDict()
        self._lock = threading.Lock()

    def page(self, after: int, topics: Sequence[str], limit: int = PAGE) -> list[Item]:
        notifications: Sequence[Notification] = self.app.recorder.select_notifications(
            start=after, limit=limit, topics=topics, inclusive_of_start=False
        )
        with self._lock:
            found = {n.id: self._cache.get(n.id) for n in notifications}
        missing = [n for n in notifications if found[n.id] is None]
        if missing:
            events = decode_all(self.app.mapper, missing)
            made = {
                n.id: Item(n.id, webhook_type(type(e)), Recorded(n.id, e))
                for n, e in zip(missing, events, strict=True)
            }
            with self._lock:
                for position, made_item in made.items():
                    self._cache[position] = found[position] = made_item
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return [item for n in notifications if (item := found[n.id]) is not None]

    def body(self, item: Item, personal: bool) -> str:
        text = item.bodies.get(personal)
        if text is None:
            text = item.bodies[personal] = self.render(item.recorded, personal).decode()
        return text


# ------------------------------------------------------------------ locks


class Leases(Protocol):
    """Which subscriptions this process delivers: at most one process holds each."""

    def acquire(self, subscription_id: UUID) -> bool: ...
    def renew(self, subscription_ids: Sequence[UUID]) -> set[UUID]:
        """Keep holding these; the ones lost meanwhile (to stop delivering)."""
        ...

    def release(self, subscription_id: UUID) -> None: ...
    def close(self) -> None: ...


class LocalLeases:
    """The in-memory store: one process, which holds everything."""

    def acquire(self, subscription_id: UUID) -> bool:  # noqa: ARG002
        return True

    def renew(self, subscription_ids: Sequence[UUID]) -> set[UUID]:  # noqa: ARG002
        return set()

    def release(self, subscription_id: UUID) -> None:
        pass

    def close(self) -> None:
        pass


LEASE_SECONDS = 15.0
"""How long a lease row holds without renewal (a process renews twice a second)."""


class TableLeases:
    """SQLite (and any store without advisory locks): a lease row per subscription
    (``webhook_leases``), taken when free or expired and renewed twice a second; a
    process that dies loses its leases ``LEASE_SECONDS`` later. Several ``crm serve``
    workers on one SQLite file thus deliver each subscription once."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.holder = f"{socket.gethostname()}:{uuid5(UUID(int=0), str(time.time_ns()))}"
        self._made = False

    def _table(self) -> None:
        if not self._made:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS webhook_leases (subscription_id TEXT PRIMARY KEY,"
                " holder TEXT NOT NULL, expires_at TEXT NOT NULL)"
            )
            self._made = True

    def acquire(self, subscription_id: UUID) -> bool:
        self._table()
        now = datetime.now(UTC)
        with self.db.transaction() as cursor:
            cursor.execute(
                "SELECT holder, expires_at FROM webhook_leases WHERE subscription_id = %s",
                (subscription_id,),
            )
            row = cursor.fetchone()
            if row is not None and row[0] != self.holder and as_datetime(row[1]) > now:
                return False
            cursor.execute(
                "INSERT INTO webhook_leases (subscription_id, holder, expires_at)"
                " VALUES (%s, %s, %s) ON CONFLICT (subscription_id) DO UPDATE"
                " SET holder = excluded.holder, expires_at = excluded.expires_at",
                (subscription_id, self.holder, now + timedelta(seconds=LEASE_SECONDS)),
            )
        return True

    def renew(self, subscription_ids: Sequence[UUID]) -> set[UUID]:
        return {s for s in subscription_ids if not self.acquire(s)}

    def release(self, subscription_id: UUID) -> None:
        self._table()
        self.db.execute(
            "DELETE FROM webhook_leases WHERE subscription_id = %s AND holder = %s",
            (subscription_id, self.holder),
        )

    def close(self) -> None:
        pass


class AdvisoryLeases:
    """PostgreSQL session advisory locks, one per subscription, all held on one
    connection of this process (not a pooled one): a process that dies, or whose
    connection is cut, releases them all at once."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()

    def _key(self, subscription_id: UUID) -> str:
        return f"crm-webhook:{self.schema}:{subscription_id}"

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
        return self._conn

    def acquire(self, subscription_id: UUID) -> bool:
        with self._lock:
            row = (
                self._connection()
                .execute(
                    "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))",
                    (self._key(subscription_id),),
                )
                .fetchone()
            )
            return bool(row and row[0])

    def renew(self, subscription_ids: Sequence[UUID]) -> set[UUID]:
        """Locks last as long as their connection: check it still answers (a lost
        one raises, and the caller stops every worker)."""
        if subscription_ids:
            with self._lock:
                self._connection().execute("SELECT 1")
        return set()

    def release(self, subscription_id: UUID) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute(
                    "SELECT pg_advisory_unlock(hashtextextended(%s, 0))",
                    (self._key(subscription_id),),
                )

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# ------------------------------------------------------------------ state


def tracking_name(subscription_id: UUID) -> str:
    return f"webhook:{subscription_id}"


@dataclass(frozen=True)
class DeliveryState:
    position: int
    deliveries: int = 0
    failures: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    failing_since: datetime | None = None
    last_delivered_at: datetime | None = None


def delivery_states(db: Database) -> dict[UUID, DeliveryState]:
    """Every subscription's delivered position and how its deliveries go."""
    rows = db.query(
        "SELECT s.subscription_id, t.position, s.deliveries, s.failures, s.last_error,"
        " s.last_attempt_at, s.failing_since, s.last_delivered_at FROM webhook_state s"
        " LEFT JOIN projection_tracking t ON t.name = 'webhook:' || s.subscription_id"
    )
    return {
        (sid if isinstance(sid, UUID) else UUID(str(sid))): DeliveryState(
            int(position or 0),
            int(deliveries),
            int(failures),
            error,
            as_optional_datetime(attempt),
            as_optional_datetime(failing),
            as_optional_datetime(delivered),
        )
        for sid, position, deliveries, failures, error, attempt, failing, delivered in rows
    }


# ------------------------------------------------------------------ delivery


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""


class Worker:
    """Delivers one subscription, in position order, until stopped."""

    def __init__(self, deliverer: Deliverer, row: SubscriptionRow, secret: str) -> None:
        self.deliverer = deliverer
        self.row = row
        self.id = row.subscription_id
        self.label = str(row.subscription_id)
        self.signer = Webhook(secret)
        self.topics = topics_for(row.event_types)
        self.personal = deliverer.personal(row)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"webhook-{self.id}", daemon=True)
        settings = deliverer.settings
        self.client = httpx.Client(
            timeout=settings.webhook_timeout,
            follow_redirects=False,
            headers={"user-agent": USER_AGENT, "content-type": "application/json"},
        )
        self.position = 0
        self.committed = 0
        self.delivered = 0
        """Deliveries since the last commit (counted into ``webhook_state``)."""
        self.recovering = True
        """Whether a failing spell recorded before this worker may need closing."""

    def start(self) -> None:
        self.thread.start()

    def halt(self) -> None:
        self.stop.set()

    def join(self, timeout: float = 10.0) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        deliverer = self.deliverer
        try:
            self.position = self.committed = deliverer.position_of(self.id)
            pending, since = 0, time.monotonic()
            while not self.stop.is_set():
                head = deliverer.head  # read before the page: positions become visible in order
                page = deliverer.feed.page(self.position, self.topics)
                if not page:
                    # nothing it wants up to the head: delivered that far (its lag is 0)
                    self.position = max(self.position, head)
                    self._commit()
                    deliverer.wait_for_events(self.position, self.stop)
                    continue
                for item in page:
                    if self.stop.is_set():
                        break
                    if matches(self.row.event_types, item.type) and not self._deliver(item):
                        break
                    self.position = item.position
                    pending += 1
                    if pending >= COMMIT_EVERY or time.monotonic() - since >= COMMIT_SECONDS:
                        self._commit()
                        pending, since = 0, time.monotonic()
            self._commit()
        except TRANSIENT_ERRORS as error:
            log.warning("webhook %s: the database failed (%s); stopping", self.label, error)
        except Exception:
            log.exception("webhook %s: delivery stopped", self.label)
        finally:
            self.client.close()

    def _commit(self) -> None:
        if self.position == self.committed:
            return
        if not self.deliverer.advance(self.id, self.committed, self.position, self.delivered):
            log.info("webhook %s: moved by another process; stopping", self.label)
            self.stop.set()
            return
        self.committed = self.position
        self.delivered = 0

    def _deliver(self, item: Item) -> bool:
        """Deliver one event, retrying until the receiver takes it; False if stopped
        first (or the subscription was marked failing)."""
        deliverer = self.deliverer
        body = deliverer.feed.body(item, self.personal)
        backoff = deliverer.backoff()
        failures = 0
        msg_id = message_id(self.id, item.position)
        while not self.stop.is_set():
            outcome = self._post(msg_id, body)
            if outcome.ok:
                DELIVERIES.labels(self.label).inc()
                self.delivered += 1
                if failures or self.recovering:
                    deliverer.record_recovery(self.id)
                    self.recovering = False
                return True
            FAILURES.labels(self.label).inc()
            failures += 1
            if failures == 1:
                log.warning("webhook %s: delivery failed: %s", self.label, outcome.error)
            self._commit()  # what was delivered before stays delivered
            failing_since = deliverer.record_failure(self.id, outcome.error)
            failing_for = (datetime.now(UTC) - failing_since).total_seconds()
            if failing_for >= deliverer.settings.webhook_max_age:
                deliverer.mark_failing(self.id, failures, outcome.error)
                self.stop.set()
                return False
            if self.stop.wait(backoff.pause()):
                return False
            RETRIES.labels(self.label).inc()
        return False

    def _post(self, msg_id: str, body: str) -> Outcome:
        deliverer = self.deliverer
        try:
            target = deliverer.target(self.row.url)
        except InvalidValue as error:
            return Outcome(ok=False, error=error.message)
        now = datetime.now(UTC)
        headers = {
            **target.headers,
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(msg_id, now, body),
        }
        try:
            response = self.client.post(
                target.url, content=body.encode(), headers=headers, extensions=target.extensions
            )
        except httpx.TimeoutException:
            return Outcome(ok=False, error="timed out")
        except httpx.HTTPError as error:
            return Outcome(ok=False, error=f"{type(error).__name__}: {error}"[:300])
        if 200 <= response.status_code < 300:
            return Outcome(ok=True)
        return Outcome(ok=False, error=f"HTTP {response.status_code}")


class Deliverer:
    """Runs the delivery of every active subscription this process holds."""

    def __init__(
        self,
        *,
        app: CrmApplication,
        db: Database,
        keys: KeyStore,
        settings: Settings,
        subscriptions: Callable[[], list[SubscriptionRow]],
        render: Render,
        personal: Callable[[SubscriptionRow], bool],
        leases: Leases | None = None,
        backoff: Callable[[], Backoff] | None = None,
        refresh: Callable[[], object] | None = None,
        tick: Callable[[], object] | None = None,
    ) -> None:
        self.app = app
        self.db = db
        self.keys = keys
        self.settings = settings
        self.subscriptions = subscriptions
        self.feed = EventFeed(app, render)
        self.personal = personal
        self.leases = leases or LocalLeases()
        self.backoff = backoff or (lambda: Backoff(first=1.0, cap=300.0))
        self.refresh = refresh
        self.tick = tick
        self.workers: dict[UUID, Worker] = {}
        self._head = 0
        self._moved = threading.Condition()
        self._checked: dict[str, tuple[float, Target]] = {}

    # -------------------------------------------------------------- setup

    def setup(self) -> None:
        with self.db.transaction() as cursor:
            cursor.execute(STATE_DDL[self.db.dialect])

    # -------------------------------------------------------------- running

    def run(self, stop: threading.Event, *, poll: float = 0.05) -> None:
        """Deliver until ``stop`` is set; the store's own failures are raised (to the
        caller's healing loop, ``follow_until_stopped``-like), after the workers stop."""
        self.setup()
        try:
            last_refresh = 0.0
            while not stop.is_set():
                self._watch_head()
                if time.monotonic() - last_refresh >= 0.5:
                    if self.refresh is not None:
                        self.refresh()
                    self.reconcile()
                    if self.tick is not None:
                        self.tick()
                    last_refresh = time.monotonic()
                stop.wait(poll)
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        for worker in self.workers.values():
            worker.halt()
        with self._moved:
            self._moved.notify_all()
        for subscription_id, worker in list(self.workers.items()):
            worker.join()
            self.leases.release(subscription_id)
        self.workers.clear()
        self.leases.close()

    def _watch_head(self) -> None:
        head = self.app.recorder.max_notification_id() or 0
        if head != self._head:
            with self._moved:
                self._head = head
                self._moved.notify_all()

    @property
    def head(self) -> int:
        """The store's head as last seen (every event up to it is visible)."""
        return self._head

    def wait_for_events(self, position: int, stop: threading.Event) -> None:
        with self._moved:
            if self._head <= position and not stop.is_set():
                self._moved.wait(1.0)

    def reconcile(self) -> None:
        """Start a worker for each active subscription this process can hold, stop
        those no longer active, and apply replays asked for since."""
        rows = {row.subscription_id: row for row in self.subscriptions()}
        states = self._replays_applied()
        for lost in self.leases.renew(list(self.workers)):
            log.warning("webhook %s: taken over by another process", lost)
            self.workers[lost].halt()
        for subscription_id, worker in list(self.workers.items()):
            row = rows.get(subscription_id)
            replay = row is not None and (row.replay_position or 0) > states.get(subscription_id, 0)
            if row is None or row.status != "active" or replay or not worker.thread.is_alive():
                worker.halt()
                with self._moved:
                    self._moved.notify_all()
                worker.join()
                del self.workers[subscription_id]
                if row is None or row.status != "active":
                    self.leases.release(subscription_id)
        head = self._head
        for subscription_id, row in rows.items():
            if row.status != "active":
                LAG.labels(str(subscription_id)).set(0)
                continue
            if subscription_id not in self.workers:
                self._start(row, states.get(subscription_id, 0))
            running = self.workers.get(subscription_id)
            if running is not None:
                LAG.labels(str(subscription_id)).set(max(0, head - running.position))

    def _start(self, row: SubscriptionRow, replay_applied: int) -> None:
        subscription_id = row.subscription_id
        if not self.leases.acquire(subscription_id):
            return
        secret = secret_of(self.keys, subscription_id)
        if secret is None:  # removed meanwhile: its key is gone
            self.leases.release(subscription_id)
            return
        with self.db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO projection_tracking (name, position, updated_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (name) DO NOTHING",
                (tracking_name(subscription_id), row.created_position, datetime.now(UTC)),
            )
            cursor.execute(
                "INSERT INTO webhook_state (subscription_id) VALUES (%s)"
                " ON CONFLICT (subscription_id) DO NOTHING",
                (subscription_id,),
            )
            if row.updated_at is not None:  # resumed since the spell began: a new clock
                cursor.execute(
                    "UPDATE webhook_state SET failing_since = NULL"
                    " WHERE subscription_id = %s AND failing_since < %s",
                    (subscription_id, row.updated_at),
                )
            if row.replay_position and row.replay_from and row.replay_position > replay_applied:
                # back to just before ``replay_from``; never forward (that would skip)
                cursor.execute(
                    "UPDATE projection_tracking SET position = %s, updated_at = %s"
                    " WHERE name = %s AND position > %s",
                    (
                        row.replay_from - 1,
                        datetime.now(UTC),
                        tracking_name(subscription_id),
                        row.replay_from - 1,
                    ),
                )
                cursor.execute(
                    "UPDATE webhook_state SET replay_applied = %s WHERE subscription_id = %s",
                    (row.replay_position, subscription_id),
                )
        worker = self.workers[subscription_id] = Worker(self, row, secret)
        worker.start()

    def _replays_applied(self) -> dict[UUID, int]:
        return {
            (sid if isinstance(sid, UUID) else UUID(str(sid))): int(applied)
            for sid, applied in self.db.query(
                "SELECT subscription_id, replay_applied FROM webhook_state"
            )
        }

    # -------------------------------------------------------------- for workers

    def target(self, url: str) -> Target:
        """Where to send a delivery for ``url``: the destination is checked again
        (names may move to other addresses) at most once a minute per URL, and the
        request goes to the address checked (``pinned``)."""
        if self.settings.webhook_allow_private:
            return Target(url)
        now = time.monotonic()
        checked = self._checked.get(url)
        if checked is None or now - checked[0] >= 60:
            checked = self._checked[url] = (
                now,
                pinned(url, check_destination(url, allow_private=False)),
            )
        return checked[1]

    def position_of(self, subscription_id: UUID) -> int:
        rows = self.db.query(
            "SELECT position FROM projection_tracking WHERE name = %s",
            (tracking_name(subscription_id),),
        )
        return int(rows[0][0]) if rows else 0

    def advance(self, subscription_id: UUID, old: int, new: int, delivered: int) -> bool:
        """Move the delivered position from ``old`` to ``new``; False if it is no
        longer at ``old`` (another process, or a replay, moved it)."""
        now = datetime.now(UTC)
        with self.db.transaction() as cursor:
            cursor.execute(
                "UPDATE projection_tracking SET position = %s, updated_at = %s"
                " WHERE name = %s AND position = %s",
                (new, now, tracking_name(subscription_id), old),
            )
            if cursor.rowcount != 1:
                return False
            if delivered:
                cursor.execute(
                    "UPDATE webhook_state SET deliveries = deliveries + %s,"
                    " last_delivered_at = %s WHERE subscription_id = %s",
                    (delivered, now, subscription_id),
                )
        return True

    def record_failure(self, subscription_id: UUID, error: str) -> datetime:
        """Count a failed delivery; since when deliveries have been failing (kept in
        the store: a restart or another process carries the same clock on)."""
        now = datetime.now(UTC)
        with self.db.transaction() as cursor:
            cursor.execute(
                "UPDATE webhook_state SET failures = failures + 1, last_error = %s,"
                " last_attempt_at = %s, failing_since = COALESCE(failing_since, %s)"
                " WHERE subscription_id = %s",
                (error[:500], now, now, subscription_id),
            )
            cursor.execute(
                "SELECT failing_since FROM webhook_state WHERE subscription_id = %s",
                (subscription_id,),
            )
            row = cursor.fetchone()
        return now if row is None or row[0] is None else as_datetime(row[0])

    def record_recovery(self, subscription_id: UUID) -> None:
        self.db.execute(
            "UPDATE webhook_state SET failing_since = NULL, last_attempt_at = %s"
            " WHERE subscription_id = %s",
            (datetime.now(UTC), subscription_id),
        )

    def mark_failing(self, subscription_id: UUID, failures: int, error: str) -> None:
        log.warning(
            "webhook %s: failing for %.0f s; paused as failing",
            subscription_id,
            self.settings.webhook_max_age,
        )
        try:
            self.app.execute(
                MarkSubscriptionFailing(
                    subscription_id=subscription_id, failures=failures, last_error=error
                ),
                automation_envelope("webhooks"),
            )
        except (DomainError, ApplicationError) as problem:
            log.warning("webhook %s: could not mark failing: %s", subscription_id, problem)


def automation_envelope(actor_id: str, occurred_at: datetime | None = None) -> Envelope:
    """What the delivery process and the reminder timer record is attributed to the
    system, from the ``automation`` source."""
    return Envelope(
        actor_id=actor_id,
        actor_role="system",
        source="automation",
        correlation_id=f"{actor_id}:{uuid5(UUID(int=0), str(time.time_ns()))}",
        occurred_at=occurred_at,
    )
