"""The CRM application: executes commands against the event store."""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import InfrastructureFactory, IntegrityError, Mapper
from eventsourcing.popo import POPOFactory
from eventsourcing.utils import Environment

from application import clients, deals, exports, pipelines, reminders, subscriptions
from application.aggregate_cache import AggregateCache
from application.errors import ApplicationError, ConcurrencyConflict, IdempotencyKeyReused
from application.ports import BlindIndex, EventRecorder, IdempotencyRecord, SideEffects, Staff
from application.settings import Settings
from application.unit_of_work import Outcome, Ports, UnitOfWork
from domain.client import Client
from domain.envelope import Envelope, recording
from domain.errors import DomainError
from domain.subscription import Subscription

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20
"""Commands without an expected version are re-run this often on a concurrent write,
after a random pause that doubles each time (at most ``MAX_BACKOFF`` seconds)."""
MAX_BACKOFF = 0.25

Handler = Callable[[UnitOfWork, Any], Outcome]

HANDLERS: dict[type[Any], Handler] = {
    clients.RegisterClient: clients.register_client,
    clients.ChangeClientDetails: clients.change_client_details,
    clients.RecordContact: clients.record_contact,
    clients.RecordPurchase: clients.record_purchase,
    clients.MarkClientLost: clients.mark_client_lost,
    clients.AssignOwner: clients.assign_owner,
    clients.ScheduleFollowUp: clients.schedule_follow_up,
    clients.CompleteFollowUp: clients.complete_follow_up,
    clients.CancelFollowUp: clients.cancel_follow_up,
    clients.MergeClients: clients.merge_clients,
    clients.GiveConsent: clients.give_consent,
    clients.WithdrawConsent: clients.withdraw_consent,
    clients.RestrictProcessing: clients.restrict_processing,
    clients.LiftRestriction: clients.lift_restriction,
    clients.ErasePersonalData: clients.erase_personal_data,
    deals.OpenDeal: deals.open_deal,
    deals.MoveDealStage: deals.move_deal_stage,
    deals.ChangeDealValue: deals.change_deal_value,
    deals.WinDeal: deals.win_deal,
    deals.LoseDeal: deals.lose_deal,
    deals.ReopenDeal: deals.reopen_deal,
    pipelines.DefinePipeline: pipelines.define_pipeline,
    exports.RecordExport: exports.record_export,
    subscriptions.CreateSubscription: subscriptions.create_subscription,
    subscriptions.PauseSubscription: subscriptions.pause_subscription,
    subscriptions.ResumeSubscription: subscriptions.resume_subscription,
    subscriptions.MarkSubscriptionFailing: subscriptions.mark_subscription_failing,
    subscriptions.ReplaySubscription: subscriptions.replay_subscription,
    subscriptions.RemoveSubscription: subscriptions.remove_subscription,
    reminders.MarkFollowUpDue: reminders.mark_follow_up_due,
    reminders.FlagUnansweredLead: reminders.flag_unanswered_lead,
}


KEY_DESTROYING_EVENTS = (Client.PersonalDataErased, Subscription.SubscriptionRemoved)
"""Events whose aggregate's data key is destroyed in their transaction: a client's
erasure; a removed webhook subscription's (its signing secret derives from it)."""


@dataclass(frozen=True)
class _Key:
    key: str
    fingerprint: str
    scope: str


@dataclass(frozen=True)
class CommandResult:
    """The answer to a command: the aggregate it was about, its version after the
    command, and the position of the command's last event (for read-your-writes)."""

    id: UUID
    version: int
    position: int | None
    extra: Mapping[str, str] = field(default_factory=dict)
    replayed: bool = False
    """True when this is the first answer repeated for a retried idempotency key."""


def fingerprint(commands: Sequence[tuple[object, Envelope]]) -> str:
    """What makes two requests "the same" for an idempotency key: the commands and
    their explicit business times (a defaulted "now" differs on every retry, so is
    left out)."""
    payload = [
        {
            "command": type(command).__qualname__,
            "fields": asdict(command),  # type: ignore[call-overload]
            "occurred_at": envelope.occurred_at,
        }
        for command, envelope in commands
    ]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _results_text(results: Sequence[CommandResult]) -> str:
    return ",".join(f"{r.id}@{r.version}" for r in results)


class CrmApplication(Application[UUID]):
    """Runs each command as load → one domain call → save, atomically, exactly once.

    * Optimistic concurrency: a command naming an ``expected_version`` fails with
      ``VersionMismatch`` if the aggregate moved on; a command without one is re-run on
      fresh state when a concurrent write takes its version.
    * Idempotency: a command sent with a key records its answer in the same
      transaction as its events; a retry returns that answer and records nothing.
    * Uniqueness: each phone and email belongs to at most one live client, enforced by
      claims written in the same transaction as the events.
    * Aggregates as last committed here are cached, so the next command on one reads
      none of its events; what a command decides on a cached aggregate is checked
      against the store before it counts (``application.aggregate_cache``).
    """

    name = "crm"

    def __init__(
        self,
        *,
        recorder: EventRecorder,
        mapper: Mapper[UUID],
        blind_index: BlindIndex,
        staff: Staff,
        settings: Settings,
        forget_keys: Callable[[list[UUID]], None] = lambda _: None,
        aggregate_cache: AggregateCache | None = None,
    ) -> None:
        self._injected_recorder = recorder
        self.forget_keys = forget_keys
        """Drops destroyed data keys from this process's caches."""
        self._injected_mapper = mapper
        self.blind_index = blind_index
        self.staff = staff
        self.settings = settings
        self.aggregate_cache = (
            AggregateCache(size=0, ttl=0.0) if aggregate_cache is None else aggregate_cache
        )
        """Aggregates as last committed here, for the next command on them."""
        super().__init__(env={})
        self.recorder: EventRecorder = recorder
        self.ports = Ports(
            recorder=recorder,
            repository=self.repository,
            staff=staff,
            blind_index=blind_index,
            settings=settings,
            cache=self.aggregate_cache,
        )
        """What a unit of work needs (``application.unit_of_work.Ports``)."""

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        # Unused but required by the base class: the recorder and mapper are injected.
        return cast("InfrastructureFactory", POPOFactory(env))

    def construct_mapper(self) -> Mapper[UUID]:
        return self._injected_mapper

    def construct_recorder(self) -> EventRecorder:
        return self._injected_recorder

    def execute(
        self, command: object, envelope: Envelope, *, idempotency_key: str | None = None
    ) -> CommandResult:
        """Run ``command`` attributed to ``envelope``; see the class docstring.

        Raises a ``DomainError`` (a broken rule) or an ``ApplicationError``; in either
        case nothing was recorded.
        """
        (result,) = self.execute_many([(command, envelope)], idempotency_key=idempotency_key)
        return result

    def execute_many(
        self,
        commands: Sequence[tuple[object, Envelope]],
        *,
        idempotency_key: str | None = None,
        idempotency_scope: str | None = None,
    ) -> list[CommandResult]:
        """Run several commands, each with its own envelope, in one unit of work and
        one transaction: all of them are recorded, or none (a CSV import's file).
        A later command sees what the earlier ones did. An idempotency key belongs to
        ``idempotency_scope``, by default the first envelope's actor."""
        if not commands:
            return []
        for command, _ in commands:
            if type(command) not in HANDLERS:
                raise TypeError(f"no handler for {type(command).__name__}")
        if not idempotency_key:
            return self._run(commands, None)
        key = _Key(
            idempotency_key,
            fingerprint(commands),
            idempotency_scope or commands[0][1].actor_id,
        )
        if prior := self._replay(key):
            return prior
        try:
            return self._run(commands, key)
        except (DomainError, ApplicationError):
            # A concurrent request with the same key may have won the race (and, say,
            # claimed the phone this one now finds taken): its answer is the answer.
            if prior := self._replay(key):
                return prior
            raise

    def _run(
        self, commands: Sequence[tuple[object, Envelope]], key: _Key | None
    ) -> list[CommandResult]:
        cached, conflicts = True, 0
        for _ in range(MAX_ATTEMPTS):
            if conflicts:
                time.sleep(random.uniform(0, min(MAX_BACKOFF, 0.002 * 2**conflicts)))  # noqa: S311
            # Only the first attempt may take aggregates from the cache: whatever made
            # it fail, the next one decides on the store's state.
            uow = UnitOfWork(self.ports, cached=cached)
            cached = False
            outcomes = []
            try:
                for command, envelope in commands:
                    with recording(envelope):
                        outcomes.append(HANDLERS[type(command)](uow, command))
                claims, releases = uow.contact_claims()
            except (DomainError, ApplicationError):
                if uow.used_cache:
                    continue  # perhaps broken only on a cached state that was behind
                raise
            events: list[CanMutateAggregate[UUID]] = [
                event for aggregate in uow.touched() for event in aggregate.collect_events()
            ]
            if uow.used_cache and uow.cache_behind():
                continue
            results = [
                CommandResult(o.aggregate.id, o.aggregate.version, None, dict(o.extra))
                for o in outcomes
            ]
            record = None
            if key:
                record = IdempotencyRecord(
                    scope=key.scope,
                    key=key.key,
                    fingerprint=key.fingerprint,
                    aggregate_id=results[-1].id,
                    version=results[-1].version,
                    last_event=(events[-1].originator_id, events[-1].originator_version)
                    if events
                    else None,
                    extra={"results": _results_text(results)}
                    if len(results) > 1
                    else dict(results[-1].extra),
                )
            erased = [e.originator_id for e in events if isinstance(e, KEY_DESTROYING_EVENTS)]
            try:
                positions = self._record_events(
                    events,
                    SideEffects(
                        claims=claims, releases=releases, idempotency=record, destroy_keys=erased
                    ),
                )
            except IntegrityError:
                if key and (prior := self._replay(key)):
                    return prior
                if not uow.used_cache:
                    uow.contact_claims()  # raises DuplicateContact if a claim was taken meanwhile
                    if uow.expected_versions_given:
                        raise ConcurrencyConflict(
                            "a record was changed by another command; reload and retry"
                        ) from None
                    conflicts += 1
                log.debug("concurrent write; running the command again")
                continue
            if erased:
                self.forget_keys(erased)
            self.aggregate_cache.keep(uow.touched())
            return self._positioned(results, positions)
        raise ConcurrencyConflict(
            f"gave up after {MAX_ATTEMPTS} concurrent writes to the same records; retry later"
        )

    def record(self, uow: UnitOfWork, *, idempotency: IdempotencyRecord | None = None) -> list[int]:
        """Save everything ``uow`` changed, with its contact claims and, if given,
        an idempotency record (its version and last event filled in), in one
        transaction; the positions of its events. For a use case that ran the
        handlers itself (an import); ``execute`` is the way for single commands.

        Raises ``DuplicateContact`` for a claim already taken, and
        ``eventsourcing.persistence.IntegrityError`` if the store refused the write
        (a version or claim taken meanwhile); nothing is recorded then.
        """
        claims, releases = uow.contact_claims()
        events: list[CanMutateAggregate[UUID]] = [
            event for aggregate in uow.touched() for event in aggregate.collect_events()
        ]
        if idempotency is not None and events:
            last = events[-1]
            idempotency = replace(
                idempotency,
                aggregate_id=last.originator_id,
                version=last.originator_version,
                last_event=(last.originator_id, last.originator_version),
            )
        return self._record_events(
            events, SideEffects(claims=claims, releases=releases, idempotency=idempotency)
        )

    def _record_events(
        self, events: Sequence[CanMutateAggregate[UUID]], side_effects: SideEffects
    ) -> list[int]:
        """Store ``events`` with ``side_effects`` in one transaction; their positions.
        What ``Application.save`` does for this application, without the per-event
        ``Recording`` and ``Notification`` objects and the protocol checks it makes
        (about a tenth of a command's CPU): there are no snapshots or listeners."""
        stored = [self.mapper.to_stored_event(event) for event in events]
        return list(self.recorder.insert_events(stored, side_effects=side_effects) or [])

    def _positioned(
        self, results: list[CommandResult], positions: list[int]
    ) -> list[CommandResult]:
        """Every result answers with the position of the whole transaction's last
        event: reading at that position shows all of it."""
        if positions:
            last = positions[-1]
        else:
            last = self.recorder.position_of(results[-1].id, results[-1].version) or 0
        return [CommandResult(r.id, r.version, last, r.extra) for r in results]

    def _replay(self, key: _Key) -> list[CommandResult] | None:
        record = self.recorder.idempotency_record(key.scope, key.key)
        if record is None:
            return None
        if record.fingerprint != key.fingerprint:
            raise IdempotencyKeyReused(key.key)
        last_id, last_version = record.last_event or (record.aggregate_id, record.version)
        position = self.recorder.position_of(last_id, last_version)
        if "results" in record.extra:
            return [
                CommandResult(UUID(i), int(v), position, replayed=True)
                for i, v in (item.split("@") for item in record.extra["results"].split(","))
            ]
        return [
            CommandResult(
                record.aggregate_id, record.version, position, record.extra, replayed=True
            )
        ]
