"""Ports: what the use cases need from the outside world, as Protocols.

Adapters (``adapters/``) implement them for PostgreSQL, SQLite and memory.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder


@dataclass(frozen=True)
class Claim:
    """A client holds a contact point (``kind`` = ``phone`` | ``email``), identified by
    its blind-index ``digest`` so no plaintext is needed to enforce uniqueness."""

    kind: str
    digest: str
    client_id: UUID


@dataclass(frozen=True)
class IdempotencyRecord:
    """The first answer to a command sent with an idempotency key.

    ``last_event`` is the (aggregate id, version) of the command's last recorded event,
    from which its position is found again; ``None`` when the command recorded nothing.
    """

    scope: str
    key: str
    fingerprint: str
    aggregate_id: UUID
    version: int
    last_event: tuple[UUID, int] | None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SideEffects:
    """Rows written in the same transaction as a command's events, so that either all
    of them are recorded or none. Releases are applied before claims (a merge moves a
    phone from one card to another)."""

    claims: Sequence[Claim] = ()
    releases: Sequence[Claim] = ()
    idempotency: IdempotencyRecord | None = None
    destroy_keys: Sequence[UUID] = ()
    """Data subjects whose keys are destroyed with these events (erasure)."""


class EventRecorder(ApplicationRecorder):
    """The event store's recorder, extended with the side tables the use cases need.

    ``insert_events(stored_events, side_effects=SideEffects(...))`` writes the side
    effects in the events' transaction; a violated uniqueness (a claimed phone, a used
    idempotency key, a taken aggregate version) rolls everything back and raises
    ``eventsourcing.persistence.IntegrityError``.
    """

    @abstractmethod
    def claim_owner(self, kind: str, digest: str) -> UUID | None:
        """The live client holding this contact point, if any."""

    @abstractmethod
    def idempotency_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        """The first answer recorded under this key, if any."""

    @abstractmethod
    def position_of(self, originator_id: UUID, version: int) -> int | None:
        """The position (notification id) of one stored event."""

    def refresh_statistics(self) -> bool:
        """Before reading much of the store in order (a replay, a rebuild, a long
        catch-up) or after writing much of it (an import): make sure the database
        can plan those reads. True if statistics were gathered; nothing to do by
        default."""
        return False


class BlindIndex(Protocol):
    """Keyed hashing of contact points: equal inputs give equal digests, and without the
    key a digest reveals nothing (not even by guessing phone numbers)."""

    def digest(self, kind: str, value: str) -> str: ...


class Staff(Protocol):
    """The people who own clients."""

    def next_manager(self) -> str | None:
        """The next active manager in round-robin order; ``None`` when there is none."""
        ...

    def can_own_clients(self, user_id: str) -> bool:
        """Whether ``user_id`` is an active manager or admin."""
        ...


class ExportCounts(Protocol):
    """How many exports and bulk reads of personal data each user made in each
    window of time, kept where every process of the product sees the same counts
    (and a restart does not forget them)."""

    def take(self, user_id: str, window_start: int, most: int) -> bool:
        """Count one more for ``user_id`` in the window beginning at ``window_start``
        (seconds since the epoch), unless ``most`` are counted there already; whether
        it was counted. Atomic: takers at once, in any process, never pass ``most``."""
        ...


@dataclass(frozen=True)
class UserRecord:
    user_id: str
    role: str
    active: bool
    created_at: str
