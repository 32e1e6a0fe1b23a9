"""The command handlers on in-memory fakes: each rule of a use case in milliseconds,
without a store. The fakes are written by hand and keep state; the tests look at that
state and at what the handlers return or raise, never at which calls were made."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.application import AggregateNotFoundError

from application import clients
from application.app import HANDLERS
from application.errors import DuplicateContact, NotFound, UnknownUser
from application.settings import Settings
from application.unit_of_work import Outcome, Ports, UnitOfWork
from domain.base import CrmAggregate
from domain.client import Client
from domain.envelope import Envelope, recording
from domain.errors import InvalidValue

# ------------------------------------------------------------------ the fakes


@dataclass
class Store:
    """The store as a unit of work sees it: aggregates by id (a copy on every load, as
    if read from their events) and the contact claims, saved as a command would."""

    aggregates: dict[UUID, CrmAggregate] = field(default_factory=dict)
    claims: dict[tuple[str, str], UUID] = field(default_factory=dict)

    def get(self, aggregate_id: UUID, *, projector_func: Any = None) -> CrmAggregate:
        if aggregate_id not in self.aggregates:
            raise AggregateNotFoundError(aggregate_id)
        return copy.deepcopy(self.aggregates[aggregate_id])

    def claim_owner(self, kind: str, digest: str) -> UUID | None:
        return self.claims.get((kind, digest))

    def save(self, uow: UnitOfWork) -> None:
        """Keep what the command touched, and its claims (releases first)."""
        claims, releases = uow.contact_claims()
        for release in releases:
            if self.claims.get((release.kind, release.digest)) == release.client_id:
                del self.claims[(release.kind, release.digest)]
        self.claims.update({(c.kind, c.digest): c.client_id for c in claims})
        for aggregate in uow.touched():
            aggregate.collect_events()
            self.aggregates[aggregate.id] = copy.deepcopy(aggregate)


@dataclass
class Staff:
    """Active managers, taking leads in turn, and active admins."""

    managers: tuple[str, ...] = ("maria", "ivan")
    admins: tuple[str, ...] = ("alice",)
    turns: int = 0

    def next_manager(self) -> str | None:
        if not self.managers:
            return None
        manager = self.managers[self.turns % len(self.managers)]
        self.turns += 1
        return manager

    def can_own_clients(self, user_id: str) -> bool:
        return user_id in self.managers or user_id in self.admins


class BlindIndex:
    def digest(self, kind: str, value: str) -> str:
        return f"{kind}:{value}"


@dataclass
class World:
    store: Store = field(default_factory=Store)
    staff: Staff = field(default_factory=Staff)
    settings: Settings = field(
        default_factory=lambda: Settings(currency="EUR", default_country="DE")
    )

    def run(self, command: object, actor: str = "alice", role: str = "admin") -> Outcome:
        """One command as ``actor``: its handler, then its events and claims saved."""
        ports = Ports(
            recorder=self.store,  # type: ignore[arg-type]
            repository=self.store,
            staff=self.staff,
            blind_index=BlindIndex(),
            settings=self.settings,
        )
        uow = UnitOfWork(ports, cached=False)
        envelope = Envelope(actor_id=actor, actor_role=role, source="api", correlation_id="c")  # type: ignore[arg-type]
        with recording(envelope):
            outcome = HANDLERS[type(command)](uow, command)
        self.store.save(uow)
        return outcome

    def client(self, client_id: UUID) -> Client:
        client = self.store.aggregates[client_id]
        assert isinstance(client, Client)
        return client


@pytest.fixture
def world() -> World:
    return World()


def register(world: World, name: str = "Ann Lee", **fields: Any) -> UUID:
    return world.run(clients.RegisterClient(name=name, **fields)).aggregate.id


# ------------------------------------------------------------------ contact points


def test_a_phone_another_client_holds_is_refused_naming_the_holder(world: World) -> None:
    ann = register(world, phones=("+49 30 1234567",))

    with pytest.raises(DuplicateContact) as refused:
        register(world, "Bob Roe", phones=("030 1234567",))  # the same number, national

    assert (refused.value.kind, refused.value.value) == ("phone", "+49301234567")
    assert refused.value.existing_client_id == ann
    assert len(world.store.aggregates) == 1


def test_a_merge_moves_the_duplicates_phone_to_the_survivor(world: World) -> None:
    ann = register(world, emails=("ann@example.com",))
    duplicate = register(world, "Ann L.", phones=("+49301234567",))

    world.run(clients.MergeClients(survivor_id=ann, duplicate_id=duplicate))

    assert world.store.claims == {
        ("email", "email:ann@example.com"): ann,
        ("phone", "phone:+49301234567"): ann,
    }


# ------------------------------------------------------------------ owners


def test_a_manager_who_registers_a_lead_owns_it(world: World) -> None:
    lead = world.run(clients.RegisterClient(name="Ann Lee"), actor="ivan", role="manager")

    assert world.client(lead.aggregate.id).owner_id == "ivan"
    assert world.staff.turns == 0


def test_an_admins_leads_go_to_the_managers_in_turn(world: World) -> None:
    owners = [world.client(register(world, f"Lead {n}")).owner_id for n in range(3)]

    assert owners == ["maria", "ivan", "maria"]


def test_a_lead_nobody_can_take_stays_unassigned(world: World) -> None:
    world.staff.managers = ()

    assert world.client(register(world)).owner_id is None


def test_an_owner_who_is_not_an_active_manager_or_admin_is_refused(world: World) -> None:
    with pytest.raises(UnknownUser) as refused:
        register(world, owner_id="ghost")

    assert (refused.value.user_id, refused.value.field) == ("ghost", "owner_id")
    assert world.store.aggregates == {}


def test_a_client_moves_only_to_an_active_manager_or_admin(world: World) -> None:
    ann = register(world, owner_id="maria")

    with pytest.raises(UnknownUser):
        world.run(clients.AssignOwner(client_id=ann, owner_id="ghost"))
    world.run(clients.AssignOwner(client_id=ann, owner_id="ivan", reason="departure"))

    assert world.client(ann).owner_id == "ivan"


def test_another_managers_client_does_not_exist_for_a_manager(world: World) -> None:
    ann = register(world, owner_id="maria")
    contact = clients.RecordContact(client_id=ann, channel="call", direction="outbound")

    with pytest.raises(NotFound):
        world.run(contact, actor="ivan", role="manager")
    world.run(contact, actor="maria", role="manager")

    assert world.client(ann).contacts_count == 1


def test_a_follow_up_goes_to_the_clients_owner_unless_someone_is_named(world: World) -> None:
    ann = register(world, owner_id="maria")
    due = datetime.now(UTC) + timedelta(days=2)

    own = world.run(clients.ScheduleFollowUp(client_id=ann, due_at=due))
    named = world.run(clients.ScheduleFollowUp(client_id=ann, due_at=due, assignee_id="ivan"))

    tasks = world.client(ann).follow_ups
    assert tasks[UUID(own.extra["task_id"])].assignee_id == "maria"
    assert tasks[UUID(named.extra["task_id"])].assignee_id == "ivan"


# ------------------------------------------------------------------ money


def test_a_purchase_in_another_currency_than_the_books_is_refused(world: World) -> None:
    ann = register(world)

    with pytest.raises(InvalidValue) as refused:
        world.run(clients.RecordPurchase(client_id=ann, amount=Decimal("10"), currency="USD"))
    world.run(clients.RecordPurchase(client_id=ann, amount=Decimal("10"), currency="EUR"))

    assert refused.value.field == "currency"
    assert world.client(ann).purchases_count == 1
