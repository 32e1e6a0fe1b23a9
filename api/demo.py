"""A realistic demo history, recorded through the real use cases.

Two years of a small business: leads arrive and are assigned round-robin, managers
call and write, some leads buy once and go quiet, some become regulars, some leave
for a competitor, some come back; deals move through the default pipeline and a
custom one (skipping stages, going back), and are won or lost. Every fact is
back-dated to when it happened, so the lifecycle and KPIs look like a real base.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from api.bootstrap import Crm
from application import clients, deals, pipelines
from application.app import CommandResult
from application.errors import DuplicateContact
from domain.envelope import Envelope, utc_now
from domain.pipeline import pipeline_id

MANAGERS = ("maria", "ivan", "olga")
FIRST_NAMES = (
    "Anna", "Boris", "Chen", "Dana", "Emil", "Fatima", "Georg", "Hana", "Igor", "Julia",
    "Karim", "Lena", "Marek", "Nina", "Omar", "Petra", "Quentin", "Rosa", "Sven", "Tanya",
)  # fmt: skip
LAST_NAMES = (
    "Novak", "Schmidt", "Ivanova", "Garcia", "Kowalski", "Rossi", "Berg", "Haddad",
    "Lindqvist", "Moreau", "Petrov", "Silva", "Tanaka", "Weber", "Yilmaz",
)  # fmt: skip
CHANNELS = ("website", "referral", "phone", "exhibition", "social")
DAY = timedelta(days=1)


@dataclass
class DemoReport:
    clients: int = 0
    deals: int = 0
    commands: int = 0
    refused: Counter[str] = field(default_factory=Counter)


@dataclass
class _Recorder:
    crm: Crm
    now: datetime
    report: DemoReport

    def run(
        self, command: object, at: datetime, actor: str, role: str = "manager", source: str = "api"
    ) -> CommandResult | None:
        """Execute ``command`` as ``actor`` at business time ``at``; a fact dated after
        now has not happened yet and is skipped."""
        if at > self.now:
            return None
        envelope = Envelope(
            actor_id=actor,
            actor_role=role,  # type: ignore[arg-type]
            source=source,  # type: ignore[arg-type]
            correlation_id=str(uuid.uuid4()),
            occurred_at=at,
        )
        self.report.commands += 1
        try:
            return self.crm.app.execute(command, envelope)
        except DuplicateContact:
            self.report.refused["duplicate contact"] += 1
            return None


def load_demo(
    crm: Crm,
    *,
    clients_count: int = 60,
    seed: int = 7,
    progress: Callable[[int], Any] | None = None,
) -> DemoReport:
    """Record the demo history; returns what was recorded. Safe to run twice (a second
    run adds another cohort of clients)."""
    rng = random.Random(seed)
    now = utc_now()
    report = DemoReport()
    rec = _Recorder(crm, now, report)
    existing = {user.user_id for user in crm.users.list()}
    for manager in MANAGERS:
        if manager not in existing:
            crm.users.add(manager, "manager")
    start = now - timedelta(days=730)
    rec.run(
        pipelines.DefinePipeline(name="windows", stages=("lead", "measurement", "proposal")),
        start,
        "admin",
        role="admin",
        source="cli",
    )
    for number in range(clients_count):
        _client_story(rec, rng, start + DAY * rng.uniform(0, 700), number)
        report.clients += 1
        if progress:
            progress(number + 1)
    return report


def _client_story(rec: _Recorder, rng: random.Random, registered: datetime, number: int) -> None:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    phones = (f"+4930{number:04d}{rng.randrange(1000):03d}",) if rng.random() < 0.8 else ()
    emails = (f"{first}.{last}{number}@example.com".lower(),) if rng.random() < 0.7 else ()
    registered_result = rec.run(
        clients.RegisterClient(
            name=f"{first} {last}",
            phones=phones,
            emails=emails,
            channel=rng.choice(CHANNELS),
            company=rng.choice([None, None, f"{last} GmbH"]),
        ),
        registered,
        "reception",
        role="system",
        source="automation",
    )
    if registered_result is None:
        return
    client_id = registered_result.id
    owner: str = rec.crm.app.repository.get(client_id).owner_id or rng.choice(MANAGERS)
    at = registered + timedelta(hours=rng.uniform(1, 48))
    rec.run(
        clients.RecordContact(
            client_id=client_id,
            channel="call",
            direction="outbound",
            summary=f"first call with {first}",
            outcome="interested",
        ),
        at,
        owner,
    )
    archetype = rng.choices(
        ["lead", "one_off", "regular", "churner", "returner"], weights=[3, 3, 3, 2, 2]
    )[0]
    if rng.random() < 0.6:
        at = _deal_story(rec, rng, client_id, owner, at)
    if archetype == "regular":  # buys every few weeks until today
        while at < rec.now:
            at += DAY * rng.uniform(15, 75)
            _purchase(rec, rng, client_id, owner, at)
    purchases = {"lead": 0, "one_off": 1, "churner": 2, "returner": 2}.get(archetype, 0)
    for _ in range(purchases):
        at += DAY * rng.uniform(10, 70)
        _purchase(rec, rng, client_id, owner, at)
    if archetype == "returner":
        at += DAY * rng.uniform(120, 200)  # quiet for longer than the dormancy period
        _purchase(rec, rng, client_id, owner, at)
    if archetype == "churner" or (archetype == "lead" and rng.random() < 0.4):
        at += DAY * rng.uniform(5, 30)
        rec.run(
            clients.MarkClientLost(
                client_id=client_id,
                reason=rng.choice(["price", "competitor", "service", "moved", "no_need"]),
                note="said goodbye on the phone",
            ),
            at,
            owner,
        )
    if rng.random() < 0.5:
        scheduled = at + timedelta(hours=2)
        due = scheduled + DAY * rng.uniform(1, 14)
        result = rec.run(
            clients.ScheduleFollowUp(
                client_id=client_id, due_at=due, assignee_id=owner, note="call back"
            ),
            scheduled,
            owner,
        )
        if result and due < rec.now and rng.random() < 0.7:
            rec.run(
                clients.CompleteFollowUp(
                    client_id=client_id,
                    task_id=UUID(result.extra["task_id"]),
                    note="called back",
                ),
                due + timedelta(hours=rng.uniform(-12, 36)),
                owner,
            )


def _purchase(
    rec: _Recorder, rng: random.Random, client_id: UUID, owner: str, at: datetime
) -> None:
    amount = Decimal(rng.randrange(2000, 40000)) / 100
    if rng.random() < 0.6:  # usually someone called or wrote first
        rec.run(
            clients.RecordContact(
                client_id=client_id,
                channel=rng.choice(["call", "email", "sms", "chat", "meeting"]),
                direction=rng.choice(["inbound", "outbound"]),
                summary="talked about the next order",
                outcome="order placed",
            ),
            at - timedelta(hours=rng.uniform(2, 72)),
            owner,
        )
    rec.run(
        clients.RecordPurchase(
            client_id=client_id,
            amount=amount,
            cost=(amount * Decimal("0.6")).quantize(Decimal("0.01")),
            currency=rec.crm.settings.currency,
        ),
        at,
        owner,
    )


def _deal_story(
    rec: _Recorder, rng: random.Random, client_id: UUID, owner: str, at: datetime
) -> datetime:
    custom = rng.random() < 0.3
    stages = (
        ("lead", "measurement", "proposal") if custom else ("attraction", "interest", "evaluation")
    )
    opened = rec.run(
        deals.OpenDeal(
            client_id=client_id,
            title="Window replacement" if custom else "Annual service contract",
            amount=Decimal(rng.randrange(500, 5000)),
            currency=rec.crm.settings.currency,
            pipeline_id=pipeline_id("windows") if custom else None,
        ),
        at,
        owner,
    )
    if opened is None:
        return at
    rec.report.deals += 1
    position = 0
    for _ in range(rng.randint(0, 4)):
        step = rng.choice([1, 1, 2, -1])  # mostly forwards, sometimes a skip or a step back
        position = max(0, min(len(stages) - 1, position + step))
        at += DAY * rng.uniform(1, 12)
        rec.run(deals.MoveDealStage(deal_id=opened.id, stage=stages[position]), at, owner)
    outcome = rng.choices(["won", "lost", "open"], weights=[5, 3, 2])[0]
    at += DAY * rng.uniform(1, 10)
    if outcome == "won":
        value: Decimal = rec.crm.app.repository.get(opened.id).amount
        rec.run(
            deals.WinDeal(deal_id=opened.id, cost=(value * Decimal("0.55")).quantize(Decimal(1))),
            at,
            owner,
        )
    elif outcome == "lost":
        rec.run(
            deals.LoseDeal(
                deal_id=opened.id,
                reason=rng.choice(["price", "competitor", "no_budget", "timing"]),
                note="decided against it",
            ),
            at,
            owner,
        )
    return at
