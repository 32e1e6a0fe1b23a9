"""A large, realistic history, written fast.

The events are made by the real aggregates (so every rule holds and every
personal field is encrypted with its client's key), then written to the store in
bulk — COPY on PostgreSQL, one multi-row insert per chunk on SQLite — instead
of one command at a time. Contact claims and data keys are written in bulk too, so
the store is exactly what the commands would have left (but the read models,
which the benchmarks build).

The events are stored in the order they occurred, clients interleaved, as in a CRM
that has been recording for three years (a client's ten events lie far apart in the
store, so a rebuild meets each client in many batches). They are staged chunk by
chunk in a table of their own and moved into the events table, in order, at the end.
Every story moves forward in time, so an aggregate's events stay in version order
(ties are broken by aggregate and version).

The mix per client (about 10 events): registration and round-robin assignment,
contacts, purchases (more for some clients), a details change for some, a loss for
some, and for four clients in ten a deal that moves (sometimes skipping or going
back) and is won (with its purchase) or lost.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import StoredEvent

from adapters.side_tables import write
from api.bootstrap import Crm
from application.ports import Claim, SideEffects
from domain.client import Client
from domain.deal import Deal
from domain.envelope import Envelope, recording
from domain.pipeline import DEFAULT_PIPELINE, pipeline_id

MANAGERS = ("maria", "ivan", "olga", "pavel")
DAY = timedelta(days=1)
CHUNK_CLIENTS = 2000


@dataclass(frozen=True)
class Generated:
    events: int
    clients: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def generate(
    crm: Crm,
    events: int,
    *,
    seed: int = 1,
    progress: Callable[[int, int], Any] | None = None,
) -> Generated:
    """Append about ``events`` events (whole client histories) to ``crm``'s store."""
    started = time.perf_counter()
    rng = random.Random(seed)
    pipeline: Any = crm.app.repository.get(pipeline_id(DEFAULT_PIPELINE))
    now = datetime.now(UTC)
    start = now - timedelta(days=3 * 365)
    written = clients = 0
    staging = _Staging(crm)
    while written < events:
        chunk: list[Any] = []
        claims: list[Claim] = []
        for _ in range(CHUNK_CLIENTS):
            aggregates = _client_story(rng, pipeline, start, now, clients, crm.settings.currency)
            chunk += aggregates
            client = aggregates[0]
            claims += [
                Claim(kind, crm.app.blind_index.digest(kind, value), client.id)
                for kind, value in client.contact_points
            ]
            clients += 1
        crm.keys.create_many([a.id for a in chunk if isinstance(a, Client)])
        stored = [
            (event.occurred_at, crm.app.mapper.to_stored_event(event))
            for aggregate in chunk
            for event in aggregate.collect_events()
        ]
        staging.add(stored, claims)
        written += len(stored)
        if progress:
            progress(written, events)
    staging.finish()
    return Generated(written, clients, time.perf_counter() - started)


STAGING_TABLE = "bench_generated"
"""Where the generated events wait, in any order, before they are stored in time order."""


class _Staging:
    """Generated events, staged chunk by chunk (with their contact claims, written at
    once), then moved into the events table in the order they occurred."""

    def __init__(self, crm: Crm) -> None:
        self.crm = crm
        self.kept: list[tuple[datetime, StoredEvent]] = []  # the in-memory store's
        self.claims: list[Claim] = []
        if crm.settings.backend == "postgresql":
            with self._connection() as conn:
                conn.execute(
                    f"CREATE UNLOGGED TABLE {STAGING_TABLE} (at timestamptz NOT NULL,"
                    " originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
                    " topic text NOT NULL, state bytea NOT NULL)"
                )
        elif crm.settings.backend == "sqlite":
            with crm.db.transaction() as cursor:
                cursor.execute(
                    f"CREATE TABLE {STAGING_TABLE} (at TEXT NOT NULL, originator_id TEXT"
                    " NOT NULL, originator_version INTEGER NOT NULL, topic TEXT NOT NULL,"
                    " state BLOB NOT NULL)"
                )

    def _connection(self) -> Any:
        datastore = self.crm.app.recorder.datastore  # type: ignore[attr-defined]
        return datastore.get_connection()

    def add(self, stored: list[tuple[datetime, StoredEvent]], claims: list[Claim]) -> None:
        side_effects = SideEffects(claims=claims)
        if self.crm.settings.backend == "postgresql":
            with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
                columns = "at, originator_id, originator_version, topic, state"
                with cursor.copy(f"COPY {STAGING_TABLE} ({columns}) FROM STDIN") as copy:
                    for at, s in stored:
                        copy.write_row(
                            (at, s.originator_id, s.originator_version, s.topic, s.state)
                        )
                write(cursor, side_effects)
        elif self.crm.settings.backend == "sqlite":
            with self.crm.db.transaction() as cursor:
                cursor.executemany(
                    f"INSERT INTO {STAGING_TABLE}"
                    " (at, originator_id, originator_version, topic, state)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [
                        (
                            at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f"),  # sorts
                            uuid.UUID(str(s.originator_id)).hex,
                            s.originator_version,
                            s.topic,
                            s.state,
                        )
                        for at, s in stored
                    ],
                )
                write(cursor, side_effects)
        else:  # memory: everything at the end
            self.kept += stored
            self.claims += claims

    def finish(self) -> None:
        """Store the staged events in the order they occurred (ties: by aggregate and
        version), then drop the staging table."""
        order = "ORDER BY at, originator_id, originator_version"
        move = (
            "INSERT INTO events (originator_id, originator_version, topic, state)"
            f" SELECT originator_id, originator_version, topic, state FROM {STAGING_TABLE}"
            f" {order}"
        )
        if self.crm.settings.backend == "postgresql":
            with self._connection() as conn, conn.transaction(), conn.cursor() as cursor:
                cursor.execute("LOCK TABLE events IN EXCLUSIVE MODE")
                cursor.execute(move)
                cursor.execute(f"DROP TABLE {STAGING_TABLE}")
        elif self.crm.settings.backend == "sqlite":
            with self.crm.db.transaction() as cursor:
                cursor.execute(move)
                cursor.execute(f"DROP TABLE {STAGING_TABLE}")
        else:
            self.kept.sort(key=lambda placed: (placed[0], str(placed[1].originator_id)))
            self.crm.app.recorder.insert_events(
                [s for _, s in self.kept], side_effects=SideEffects(claims=self.claims)
            )
            self.kept, self.claims = [], []


def _envelope(actor: str, at: datetime) -> Envelope:
    return Envelope(
        actor_id=actor,
        actor_role="manager",
        source="import",
        correlation_id="bench",
        occurred_at=at,
    )


def _client_story(
    rng: random.Random,
    pipeline: Any,
    start: datetime,
    now: datetime,
    number: int,
    currency: str,
) -> list[Any]:
    """One client's whole history, as aggregates holding their pending events."""
    owner = MANAGERS[number % len(MANAGERS)]
    at = start + DAY * rng.uniform(0, 3 * 365 - 120)
    with recording(_envelope(owner, at)):
        client = Client.register(
            name=f"Client {number}",
            phones=(f"+49{300000000 + number}",) if rng.random() < 0.8 else (),
            emails=(f"client{number}@example.com",) if rng.random() < 0.6 else (),
            channel=rng.choice(("website", "referral", "phone")),
        )
        client.assign_owner(owner, reason="round_robin")
    aggregates: list[Any] = [client]

    def step(days: tuple[float, float]) -> datetime | None:
        nonlocal at
        at = at + DAY * rng.uniform(*days)
        return at if at < now else None

    for _ in range(rng.choice((1, 2, 3, 4))):
        if (when := step((1, 40))) is None:
            break
        with recording(_envelope(owner, when)):
            client.record_contact(
                channel="call", direction="outbound", summary="asked about prices"
            )
    purchases = rng.choice((0, 1, 2, 3, 3, 5, 8))
    for _ in range(purchases):
        if (when := step((10, 80))) is None:
            break
        amount = Decimal(rng.randrange(1000, 50000)) / 100
        with recording(_envelope(owner, when)):
            client.record_purchase(
                amount=amount,
                cost=(amount * Decimal("0.6")).quantize(Decimal("0.01")),
                currency=currency,
                books_currency=currency,
            )
    if rng.random() < 0.3 and (when := step((1, 30))) is not None:
        with recording(_envelope(owner, when)):
            client.change_details({"address": f"Street {number}, City"})
    if rng.random() < 0.4:
        aggregates += _deal_story(rng, client, pipeline, owner, step, currency)
    if rng.random() < 0.2 and not client.is_lost and (when := step((5, 60))) is not None:
        with recording(_envelope(owner, when)):
            client.mark_lost(reason=rng.choice(("price", "competitor", "service", "moved")))
    return aggregates


def _deal_story(
    rng: random.Random,
    client: Client,
    pipeline: Any,
    owner: str,
    step: Callable[[tuple[float, float]], datetime | None],
    currency: str,
) -> list[Any]:
    when = step((1, 5))
    if when is None:
        return []
    with recording(_envelope(owner, when)):
        deal = Deal.open(
            client=client,
            pipeline=pipeline,
            title="Service contract",
            amount=Decimal(rng.randrange(500, 5000)),
            currency=currency,
            books_currency=currency,
        )
    stages = pipeline.stages
    for stage in rng.sample(stages[1:], k=rng.randint(1, len(stages) - 1)):
        if (when := step((1, 10))) is None:
            return [deal]
        with recording(_envelope(owner, when)):
            deal.move_to(stage, pipeline=pipeline)
    if (when := step((1, 10))) is None:
        return [deal]
    with recording(_envelope(owner, when)):
        if rng.random() < 0.6:
            deal.win()
            with recording(_envelope(owner, when).caused_by(deal.last_event_id)):
                client.record_purchase(
                    amount=deal.won_amount,
                    currency=currency,
                    books_currency=currency,
                    deal_id=deal.id,
                )
        else:
            deal.lose(reason=rng.choice(("price", "competitor", "timing")))
    return [deal]
