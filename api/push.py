"""Push: webhook subscriptions and their delivery, for the API and the CLI.

Wires ``adapters.webhooks`` (delivery), ``adapters.reminders`` (the timer) and the
event feed's rendering (``api.subject.event_out``) into one process role that
``crm project``, ``crm serve``'s embedded projector and ``crm deliver`` run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4, uuid5

from adapters.projector import Backoff
from adapters.read_models.leads import LeadsReadModel
from adapters.read_models.subscriptions import SubscriptionsReadModel
from adapters.read_models.work_queue import ManagerActivity, WorkQueueReadModel
from adapters.reminders import ReminderTimer
from adapters.telemetry import DATABASE_ERRORS, PROJECTOR_RETRIES, TRANSIENT_ERRORS
from adapters.webhooks import (
    AdvisoryLeases,
    Deliverer,
    DeliveryState,
    Leases,
    LocalLeases,
    TableLeases,
    check_destination,
    delivery_states,
    fingerprint,
    secret_of,
    webhook_type,
)
from api.bootstrap import Crm
from api.json import dumps
from api.subject import event_out
from application.access import Principal
from application.app import CommandResult
from application.errors import NotFound
from application.personal_data import reads_everyones_personal, reads_personal
from application.subscriptions import CreateSubscription
from domain.envelope import Envelope
from domain.subscription import check_url
from domain.values import personal_fields
from projections.base import Recorded
from projections.subscriptions import SubscriptionRow

log = logging.getLogger(__name__)

OWN_MODELS = ("subscriptions", "work_queue", "leads")
"""The read models delivery and the timer read; ``crm deliver`` keeps them current
itself (safe beside projectors: their positions are locked per batch)."""


class PersonalDataNotAllowed(Exception):
    """A subscription asked for personal fields by someone who may not read them."""


def webhook_body(recorded: Recorded, personal: bool) -> bytes:
    """An event as a webhook body: the event feed's rendering (``event_out``),
    arranged as the issue's contract says; without ``personal``, the event's personal
    fields are left out of ``data`` and named in ``redacted``."""
    event: Any = recorded.event
    out = event_out(event)
    data = out["payload"]
    body: dict[str, Any] = {
        "type": webhook_type(type(event)),
        "id": event.event_id,
        "position": recorded.position,
        "occurred_at": out["occurred_at"],
        "recorded_at": out["recorded_at"],
        "aggregate_id": out["aggregate_id"],
        "version": out["version"],
        "envelope": {
            "actor": out["actor_id"],
            "role": out["actor_role"],
            "source": out["source"],
            "correlation_id": out["correlation_id"],
            "causation_id": out["causation_id"],
        },
        "data": data,
    }
    if not personal:
        hidden = sorted(name for name in personal_fields(type(event)) if name in data)
        if hidden:
            body["data"] = {k: v for k, v in data.items() if k not in hidden}
            body["redacted"] = hidden
    return dumps(body)


def sends_personal(row: SubscriptionRow) -> bool:
    """Rule: personal fields travel only when the subscription asked for them and
    was created by someone who may read every client's personal values."""
    return row.include_personal and reads_everyones_personal(row.created_role)


@dataclass(frozen=True)
class Created:
    result: CommandResult
    secret: str


def create_subscription(
    crm: Crm,
    by: Envelope,
    *,
    url: str,
    events: list[str],
    description: str = "",
    include_personal: bool = False,
    idempotency_key: str | None = None,
) -> Created:
    """Subscribe ``url`` to ``events``; the answer holds the signing secret, shown
    this once (and again to a retry with the same ``idempotency_key``, which records
    nothing). Refuses a destination on a private network (unless allowed) and
    personal fields for someone who may not read them."""
    if include_personal and not reads_everyones_personal(by.actor_role):
        raise PersonalDataNotAllowed("include_personal needs the permission to read personal data")
    check_destination(check_url(url), allow_private=crm.settings.webhook_allow_private)
    subscription_id = (
        uuid5(_RETRIES, f"{by.actor_id}\x00{idempotency_key}") if idempotency_key else uuid4()
    )
    secret = secret_of(crm.keys, subscription_id, create=True)
    if secret is None:  # a retry of a creation whose subscription was removed since
        raise NotFound("subscription", subscription_id)
    result = crm.app.execute(
        CreateSubscription(
            subscription_id=subscription_id,
            url=url,
            event_types=tuple(events),
            description=description,
            include_personal=include_personal,
            secret_fingerprint=fingerprint(secret),
        ),
        by,
        idempotency_key=idempotency_key,
    )
    return Created(result, secret)


_RETRIES = UUID("6f1d1a52-5c2e-4f4e-9a37-2f7d0c9e8b11")
"""Namespace of the ids of subscriptions created with an idempotency key: a retry
names the same subscription, so its secret and command are the same."""


def subscriptions_model(crm: Crm) -> SubscriptionsReadModel:
    return crm.model(SubscriptionsReadModel)


def describe(row: SubscriptionRow, state: DeliveryState | None, head: int) -> dict[str, Any]:
    """A subscription as the API and the CLI show it (never its secret)."""
    position = state.position if state else row.created_position
    return {
        "id": row.subscription_id,
        "url": row.url,
        "events": list(row.event_types),
        "description": row.description,
        "include_personal": row.include_personal,
        "status": row.status,
        "created_at": row.created_at,
        "created_by": row.created_by,
        "secret_fingerprint": row.secret_fingerprint,
        "delivered_position": position,
        "lag": max(0, head - position) if row.status != "removed" else 0,
        "deliveries": state.deliveries if state else 0,
        "failures": state.failures if state else 0,
        "last_error": state.last_error if state else None,
        "last_attempt_at": state.last_attempt_at if state else None,
        "failing_since": state.failing_since if state else None,
        "last_delivered_at": state.last_delivered_at if state else None,
    }


def list_subscriptions(crm: Crm, subscription_id: UUID | None = None) -> list[dict[str, Any]]:
    """Every subscription (or one: ``NotFound`` if unknown or removed) with how its
    deliveries go."""
    model = subscriptions_model(crm)
    if subscription_id is not None:
        row = model.get(subscription_id)
        if row is None or row.status == "removed":
            raise NotFound("subscription", subscription_id)
        rows = [row]
    else:
        rows = model.all()
    states = delivery_states(crm.db)
    head = crm.app.recorder.max_notification_id() or 0
    return [describe(row, states.get(row.subscription_id), head) for row in rows]


def make_deliverer(
    crm: Crm,
    *,
    own_models: bool,
    backoff: Callable[[], Backoff] | None = None,
    timer: bool = True,
) -> Deliverer:
    """The delivery process role on ``crm``'s store; with ``own_models``, it keeps
    the read models it reads current itself (``crm deliver``)."""
    settings = crm.settings
    leases: Leases
    if settings.backend == "postgresql":
        leases = AdvisoryLeases(settings.database_url, settings.database_schema)
    elif settings.backend == "sqlite":
        leases = TableLeases(crm.db)
    else:
        leases = LocalLeases()
    projector = crm.projector(list(OWN_MODELS)) if own_models else None
    model = subscriptions_model(crm)
    reminders = ReminderTimer(crm.app, crm.db) if timer else None
    return Deliverer(
        app=crm.app,
        db=crm.db,
        keys=crm.keys,
        settings=settings,
        subscriptions=model.all,
        render=webhook_body,
        personal=sends_personal,
        leases=leases,
        backoff=backoff,
        refresh=None if projector is None else projector.catch_up,
        tick=None if reminders is None else reminders.tick,
    )


def deliver_until_stopped(
    crm: Crm,
    stop: threading.Event,
    *,
    own_models: bool,
    process: str = "deliver",
    backoff: Callable[[], Backoff] | None = None,
) -> None:
    """Deliver webhooks and ring reminders until ``stop``, riding out the database's
    failures like the projectors (``follow_until_stopped``): a passing error stops
    the workers, and after a capped, jittered pause they start again from the
    tracked positions."""
    pause = Backoff()
    while not stop.is_set():
        try:
            make_deliverer(crm, own_models=own_models, backoff=backoff).run(stop)
        except TRANSIENT_ERRORS as error:
            DATABASE_ERRORS.labels(process=process, kind=type(error).__name__).inc()
            PROJECTOR_RETRIES.inc()
            log.warning("%s: the database failed (%s); retrying", process, error)
            stop.wait(pause.pause())
        else:
            pause.reset()


def run_in_background(crm: Crm, stop: threading.Event, *, own_models: bool) -> threading.Thread:
    """Delivery in a thread of this process (``crm project``, ``crm serve``); an
    error retrying cannot fix is logged and tried again after a minute."""

    def run() -> None:
        while not stop.is_set():
            try:
                deliver_until_stopped(crm, stop, own_models=own_models, process="webhooks")
            except Exception:
                log.exception("webhook delivery stopped; trying again in 60 s")
                stop.wait(60)

    thread = threading.Thread(target=run, name="crm-webhooks", daemon=True)
    thread.start()
    return thread


# ------------------------------------------------------------------ work queue


def work_queue_items(
    crm: Crm,
    reader: Principal,
    *,
    within_hours: int,
    assignee_id: str | None,
    after: tuple[datetime, UUID] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The work queue's due list as ``reader`` may see it: a manager their own items;
    names, phones and notes only of clients whose personal values they may read
    (else ``None`` and named in ``redacted``); the items after ``after`` and at most
    ``limit`` of them when given (``WorkQueueReadModel.items``)."""
    assignee_id = reader.figures_of(assignee_id)  # a manager's own, whatever they ask
    items = crm.model(WorkQueueReadModel).items(
        now=datetime.now(UTC),
        within=timedelta(hours=within_hours),
        assignee_id=assignee_id,
        after=after,
        limit=limit,
    )
    shown = []
    for found in items:
        item = (
            found
            if reads_personal(reader, found.owner_id)
            else replace(
                found, client_name=None, phones=None, note=None, redacted=PERSONAL_ITEM_FIELDS
            )
        )
        body = asdict(item)
        if not body["redacted"]:
            del body["redacted"]
        shown.append(body)
    return shown


PERSONAL_ITEM_FIELDS = ("client_name", "note", "phones")


def activity_with_leads(
    crm: Crm, *, since: datetime, until: datetime, actor_id: str | None
) -> list[dict[str, Any]]:
    """Per person: what they did in [since, until), with their leads unanswered at
    ``until`` and the median first response over their leads registered in the
    period (``None`` where none was contacted)."""
    done = {
        a.actor_id: asdict(a)
        for a in crm.model(WorkQueueReadModel).activity(since=since, until=until, actor_id=actor_id)
    }
    leads = crm.model(LeadsReadModel).per_owner(until, crm.settings.lead_response, since)
    if actor_id is not None:
        leads = {owner: v for owner, v in leads.items() if owner == actor_id}
    for owner in leads:
        done.setdefault(owner, asdict(ManagerActivity(owner)))
    empty = {"unanswered_leads": 0, "median_first_response_minutes": None}
    return [{**done[actor], **leads.get(actor, empty)} for actor in sorted(done)]
