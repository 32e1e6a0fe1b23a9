"""In-memory store for unit tests and ``memory:``: the same contract, in dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from adapters.keystore import MemoryKeyTable
from application.ports import EventRecorder, IdempotencyRecord, SideEffects


class MemoryEventRecorder(POPOApplicationRecorder, EventRecorder):
    """eventsourcing's in-memory recorder plus side tables, checked and applied under
    the recorder's lock so a command's writes are all-or-nothing."""

    def __init__(self, keys: MemoryKeyTable) -> None:
        super().__init__()
        self.keys = keys
        self._claims: dict[tuple[str, str], UUID] = {}
        self._idempotency: dict[tuple[str, str], IdempotencyRecord] = {}

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        side: SideEffects = kwargs.get("side_effects") or SideEffects()
        with self._database_lock:
            self._assert_uniqueness(stored_events, **kwargs)
            claims = dict(self._claims)
            for release in side.releases:
                if claims.get((release.kind, release.digest)) == release.client_id:
                    del claims[(release.kind, release.digest)]
            for claim in side.claims:
                if (claim.kind, claim.digest) in claims:
                    raise IntegrityError(f"{claim.kind} already claimed")
                claims[(claim.kind, claim.digest)] = claim.client_id
            record = side.idempotency
            if record is not None and (record.scope, record.key) in self._idempotency:
                raise IntegrityError("idempotency key already used")
            self._claims = claims
            if side.destroy_keys:
                self.keys.destroy(list(side.destroy_keys))
            if record is not None:
                self._idempotency[(record.scope, record.key)] = record
            return self._update_table(stored_events, **kwargs)

    def claim_owner(self, kind: str, digest: str) -> UUID | None:
        with self._database_lock:
            return self._claims.get((kind, digest))

    def idempotency_record(self, scope: str, key: str) -> IdempotencyRecord | None:
        with self._database_lock:
            return self._idempotency.get((scope, key))

    def position_of(self, originator_id: UUID, version: int) -> int | None:
        with self._database_lock:
            index = self._stored_events_index[str(originator_id)].get(version)
            return None if index is None else index + 1
