"""The unit of work: the aggregates one command touches, saved in one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from application.access import Principal
from application.aggregate_cache import AggregateCache
from application.errors import DuplicateContact, NotFound, UnknownUser, VersionMismatch
from application.phones import parse_phones
from application.ports import BlindIndex, Claim, EventRecorder, Staff
from application.settings import Settings
from domain.base import CrmAggregate
from domain.client import Client
from domain.deal import Deal
from domain.envelope import current_envelope
from domain.pipeline import DEFAULT_PIPELINE, Pipeline, pipeline_id
from domain.subscription import Subscription

A = TypeVar("A", bound=CrmAggregate)


class Repository(Protocol):
    """Loads an aggregate from its stored events (eventsourcing's ``Repository``)."""

    def get(self, aggregate_id: UUID, *, projector_func: Any = ...) -> Any: ...


@dataclass(frozen=True)
class Ports:
    """What a unit of work needs from outside: the store (to load aggregates and
    check contact claims), the staff (owners), the blind index (contact claims), the
    settings (the books currency) and the cache of recently committed aggregates.
    Narrow on purpose: a use case that runs handlers (an import checking its rows)
    builds a unit of work from these alone, without the application object."""

    recorder: EventRecorder
    repository: Repository
    staff: Staff
    blind_index: BlindIndex
    settings: Settings
    cache: AggregateCache | None = None


def replay_events(aggregate: CrmAggregate | None, events: Iterable[Any]) -> CrmAggregate | None:
    """Apply stored events to an aggregate, oldest first: eventsourcing's own
    ``project_aggregate`` minus its per-event ``isinstance`` check against a runtime
    protocol, which cost more than decoding the event."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _principal() -> Principal:
    envelope = current_envelope()
    return Principal(envelope.actor_id, envelope.actor_role)


@dataclass(frozen=True)
class Outcome:
    """What a handler reports: the aggregate the command was about, and any id it
    created inside it (a follow-up's ``task_id``)."""

    aggregate: CrmAggregate
    extra: Mapping[str, str] = field(default_factory=dict)


class UnitOfWork:
    """Loads aggregates for one command and remembers them, so that the command's
    events, contact-point claims and idempotency record are saved together."""

    def __init__(self, ports: Ports, *, cached: bool = True) -> None:
        self._ports = ports
        self._cache = ports.cache if cached else None
        self._aggregates: dict[UUID, CrmAggregate] = {}
        self._points_at_load: dict[UUID, frozenset[tuple[str, str]]] = {}
        self._versions_from_cache: dict[UUID, int] = {}
        self.expected_versions_given = False

    # ----------------------------------------------------------------- loading

    def client(self, client_id: UUID, expected_version: int | None = None) -> Client:
        return self._load(client_id, Client, "client", expected_version)

    def current_client(self, client_id: UUID) -> Client:
        """The client, or the card it was merged into (following merges)."""
        client = self.client(client_id)
        while client.merged_into is not None:
            client = self.client(client.merged_into)
        return client

    def deal(self, deal_id: UUID, expected_version: int | None = None) -> Deal:
        return self._load(deal_id, Deal, "deal", expected_version)

    def pipeline(self, pipeline_ref: UUID | None) -> Pipeline:
        """A pipeline by id; the default pipeline when ``None``."""
        return self._load(pipeline_ref or pipeline_id(DEFAULT_PIPELINE), Pipeline, "pipeline", None)

    def find_pipeline(self, name: str) -> Pipeline | None:
        try:
            return self.pipeline(pipeline_id(name))
        except NotFound:
            return None

    def subscription(self, subscription_id: UUID) -> Subscription:
        return self._load(subscription_id, Subscription, "subscription", None)

    def add(self, aggregate: A) -> A:
        """A new aggregate created by the command."""
        self._aggregates[aggregate.id] = aggregate
        return aggregate

    def _load(
        self, aggregate_id: UUID, kind: type[A], label: str, expected_version: int | None
    ) -> A:
        aggregate = self._aggregates.get(aggregate_id)
        if aggregate is None and self._cache is not None:
            aggregate = self._cache.take(aggregate_id)
            if aggregate is not None:
                self._versions_from_cache[aggregate_id] = aggregate.version
        if aggregate is None:
            try:
                aggregate = self._ports.repository.get(aggregate_id, projector_func=replay_events)
            except AggregateNotFoundError:
                raise NotFound(label, aggregate_id) from None
        if not isinstance(aggregate, kind):
            raise NotFound(label, aggregate_id)
        owner_id = getattr(aggregate, "owner_id", None)
        if not _principal().sees(owner_id):  # a manager acting on someone else's record
            raise NotFound(label, aggregate_id)
        if expected_version is not None:
            self.expected_versions_given = True
            if aggregate.version != expected_version:
                raise VersionMismatch(aggregate_id, expected_version, aggregate.version)
        if aggregate_id not in self._aggregates:
            self._aggregates[aggregate_id] = aggregate
            if isinstance(aggregate, Client):
                self._points_at_load[aggregate_id] = aggregate.contact_points
        return aggregate

    # --------------------------------------------------------- settings & staff

    @property
    def principal(self) -> Principal:
        """Who runs the command: the actor and role of its envelope."""
        return _principal()

    @property
    def books_currency(self) -> str:
        return self._ports.settings.currency

    def phones(self, raws: Iterable[str], *, field: str = "phones") -> tuple[str, ...]:
        """Phones as a person wrote them, in E.164, national numbers read in the
        default country (``application.phones``)."""
        return parse_phones(list(raws), country=self._ports.settings.default_country, field=field)

    @property
    def consent_purposes(self) -> tuple[str, ...]:
        """The purposes the business declared (``CRM_CONSENT_PURPOSES``)."""
        return self._ports.settings.consent_purposes

    def next_manager(self) -> str | None:
        """The next active manager in round-robin order, for a lead with no owner."""
        return self._ports.staff.next_manager()

    def check_owner(self, user_id: str, *, field: str) -> str:
        """Rule: clients, deals and follow-ups are owned by active managers or admins."""
        if not self._ports.staff.can_own_clients(user_id):
            raise UnknownUser(user_id, field)
        return user_id

    # ------------------------------------------------------------------ saving

    def __len__(self) -> int:
        """How many aggregates this unit of work holds."""
        return len(self._aggregates)

    def loaded(self, aggregate_id: UUID) -> CrmAggregate | None:
        """The aggregate, if this unit of work holds it."""
        return self._aggregates.get(aggregate_id)

    def touched(self) -> list[CrmAggregate]:
        """Aggregates in the order the command touched them."""
        return list(self._aggregates.values())

    @property
    def used_cache(self) -> bool:
        """Whether any aggregate came from the cache (and may have been behind)."""
        return bool(self._versions_from_cache)

    def cache_behind(self) -> bool:
        """Whether an aggregate the command took from the cache and did not change
        has a newer version in the store (one read each; call after collecting the
        events). Aggregates the command changed need no read: the store refuses a
        version someone else took."""
        recorder = self._ports.recorder
        for aggregate_id, version in self._versions_from_cache.items():
            aggregate = self._aggregates.get(aggregate_id)
            if aggregate is None or aggregate.version != version:
                continue
            latest = recorder.select_events(aggregate_id, desc=True, limit=1)
            if not latest or latest[0].originator_version != version:
                return True
        return False

    def contact_claims(self) -> tuple[list[Claim], list[Claim]]:
        """(claims, releases): the contact points each client gained and lost.

        Raises ``DuplicateContact`` if a gained point belongs to another live client
        that this command is not releasing it from.
        """
        claims, releases, conflicts = self._contact_claims(self._aggregates.values())
        if conflicts:
            raise conflicts[0]
        return claims, releases

    def contact_conflicts(self, aggregates: Iterable[CrmAggregate]) -> list[DuplicateContact]:
        """The ``DuplicateContact`` errors that saving these aggregates' contact points
        would meet, all of them (an import reports every one)."""
        return self._contact_claims(aggregates)[2]

    def discard(self, aggregate_id: UUID) -> None:
        """Forget a new aggregate this unit of work was given (an import's row that
        turned out to be refused): none of its events will be saved."""
        self._aggregates.pop(aggregate_id, None)
        self._points_at_load.pop(aggregate_id, None)

    def _contact_claims(
        self, aggregates: Iterable[CrmAggregate]
    ) -> tuple[list[Claim], list[Claim], list[DuplicateContact]]:
        digest = self._ports.blind_index.digest
        claims: list[Claim] = []
        releases: list[Claim] = []
        values: dict[tuple[str, str], str] = {}
        for aggregate in aggregates:
            if not isinstance(aggregate, Client):
                continue
            before = self._points_at_load.get(aggregate.id, frozenset())
            after = aggregate.contact_points
            for kind, value in sorted(after - before):
                claim = Claim(kind, digest(kind, value), aggregate.id)
                values[(kind, claim.digest)] = value
                claims.append(claim)
            releases.extend(
                Claim(kind, digest(kind, value), aggregate.id) for kind, value in before - after
            )
        released = {(r.kind, r.digest): r.client_id for r in releases}
        claimed: dict[tuple[str, str], UUID] = {}
        conflicts: list[DuplicateContact] = []
        for claim in claims:  # two new cards in one command (an import) with one phone
            other = claimed.setdefault((claim.kind, claim.digest), claim.client_id)
            if other != claim.client_id:
                value = values[(claim.kind, claim.digest)]
                conflicts.append(DuplicateContact(claim.kind, value, other))
        for claim in claims:
            owner = self._ports.recorder.claim_owner(claim.kind, claim.digest)
            if (
                owner is not None
                and owner != claim.client_id
                and released.get((claim.kind, claim.digest)) != owner
            ):
                value = values[(claim.kind, claim.digest)]
                conflicts.append(DuplicateContact(claim.kind, value, owner))
        return claims, releases, conflicts
