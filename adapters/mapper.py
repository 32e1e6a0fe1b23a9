"""Mapping between domain events and stored records, typed by pydantic."""

from __future__ import annotations

from functools import cache
from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent
from eventsourcing.utils import resolve_topic
from pydantic import TypeAdapter, ValidationError


@cache
def _event_class(topic: str) -> type[Any]:
    return cast("type[Any]", resolve_topic(topic))


_adapters: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(cls: type[Any]) -> TypeAdapter[Any]:
    adapter = _adapters.get(cls)
    if adapter is None:
        adapter = _adapters[cls] = TypeAdapter(cls)
    return adapter


def upcast(cls: type[Any], state: dict[str, Any]) -> dict[str, Any]:
    """Bring an old event's state up to its class's current ``class_version``.

    A class at version N defines ``upcast_v1_v2(state)`` … ``upcast_v{N-1}_v{N}``
    (static methods that edit ``state`` in place); a stored record remembers the version
    it was written with (absent = 1).
    """
    current = getattr(cls, "class_version", 1)
    version = state.pop("class_version", 1)
    while version < current:
        getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        version += 1
    return state


class PydanticMapper(Mapper[UUID]):
    """Decodes stored state with the transcoder, upcasts it, then validates it into the
    event's frozen dataclass with pydantic, so every field is typed again (datetimes,
    decimals, UUIDs, tuples) and a corrupt record fails loudly instead of yielding an
    event with wrong types."""

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        cls = _event_class(stored_event.topic)
        try:
            state_bytes = stored_event.state
            if self.cipher:
                state_bytes = self.cipher.decrypt(state_bytes)
            if self.compressor:
                state_bytes = self.compressor.decompress(state_bytes)
            state: dict[str, Any] = self.transcoder.decode(state_bytes)
            upcast(cls, state)
            originator_id = stored_event.originator_id
            state["originator_id"] = (
                originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
            )
            state["originator_version"] = stored_event.originator_version
            event: DomainEventProtocol[UUID] = _adapter(cls).validate_python(state)
        except (ValidationError, ValueError, TypeError, KeyError) as error:
            raise MapperDeserialisationError(
                f"cannot decode {stored_event.topic} "
                f"{stored_event.originator_id}@{stored_event.originator_version}: {error}"
            ) from error
        return event
