"""Mapping between domain events and stored records, typed by pydantic."""

from __future__ import annotations

import base64
import os
import types
import typing
from collections.abc import Sequence
from functools import cache
from typing import Any, cast
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent, Transcoder
from eventsourcing.utils import get_topic, resolve_topic
from pydantic import TypeAdapter, ValidationError

from adapters.keystore import KeyStore
from domain.values import personal_fields


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
        return self._finish(stored_event, self._state(stored_event))

    def to_domain_events(self, stored_events: Sequence[StoredEvent]) -> list[Any]:
        """Decode many records (the projector's batches)."""
        states = [self._state(stored) for stored in stored_events]
        self._before_batch(states)
        return [self._finish(s, state) for s, state in zip(stored_events, states, strict=True)]

    def _before_batch(self, states: list[dict[str, Any]]) -> None:
        """A chance to prepare for decoding a batch (see ``CryptoMapper``)."""

    def _state(self, stored_event: StoredEvent) -> dict[str, Any]:
        try:
            state_bytes = stored_event.state
            if self.cipher:
                state_bytes = self.cipher.decrypt(state_bytes)
            if self.compressor:
                state_bytes = self.compressor.decompress(state_bytes)
            state: dict[str, Any] = self.transcoder.decode(state_bytes)
        except (ValueError, TypeError) as error:
            raise MapperDeserialisationError(
                f"cannot decode {stored_event.topic} "
                f"{stored_event.originator_id}@{stored_event.originator_version}: {error}"
            ) from error
        return state

    def _finish(
        self, stored_event: StoredEvent, state: dict[str, Any]
    ) -> DomainEventProtocol[UUID]:
        cls = _event_class(stored_event.topic)
        try:
            erased = self._reveal(stored_event, state)
            upcast(cls, state)
            originator_id = stored_event.originator_id
            state["originator_id"] = (
                originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
            )
            state["originator_version"] = stored_event.originator_version
            event: DomainEventProtocol[UUID] = _adapter(cls).validate_python(state)
            if erased:
                object.__setattr__(event, ERASED_FIELDS, erased)
        except (ValidationError, ValueError, TypeError, KeyError, InvalidTag) as error:
            raise MapperDeserialisationError(
                f"cannot decode {stored_event.topic} "
                f"{stored_event.originator_id}@{stored_event.originator_version}: {error}"
            ) from error
        return event

    def _reveal(self, stored_event: StoredEvent, state: dict[str, Any]) -> frozenset[str]:  # noqa: ARG002
        """Put back fields stored apart (none here; see ``CryptoMapper``); returns the
        names of those that held values but can no longer be read."""
        return frozenset()


# ------------------------------------------------------------ personal data


def erased_values(cls: type[Any]) -> dict[str, Any]:
    """The fields of an event class marked ``PERSONAL`` in the domain
    (``domain.values.personal_fields``), each with the value it reads as once its
    subject's key is destroyed."""
    cached = _erased.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls, include_extras=True)
        cached = _erased[cls] = {name: _erased_value(hints[name]) for name in personal_fields(cls)}
    return cached


_erased: dict[type[Any], dict[str, Any]] = {}


def _erased_value(hint: Any) -> Any:
    inner = typing.get_args(hint)[0]
    options = (
        typing.get_args(inner)
        if typing.get_origin(inner) in (types.UnionType, typing.Union)
        else ()
    )
    if type(None) in options:
        return None
    origin = typing.get_origin(inner) or inner
    return {str: "", tuple: (), list: [], dict: {}}[origin]


class CryptoMapper(PydanticMapper):
    """Encrypts each event's personal fields with its data subject's key.

    The personal fields of an event (``domain.values.PERSONAL``) are taken out of
    its stored state, encrypted together with AES-GCM under the subject's key (bound
    to the event's id and topic, so a ciphertext cannot be moved to another event),
    and stored beside the plain fields as ``_personal`` with the ``_subject`` id.
    Reading them back needs the key; once it is destroyed, they read as erased
    (empty) while every other field — dates, amounts, stages — stays as it was.
    """

    def __init__(self, transcoder: Transcoder, keys: KeyStore) -> None:
        super().__init__(transcoder=transcoder)
        self.keys = keys

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        cls = type(domain_event)
        personal = erased_values(cls)
        subject = getattr(domain_event, "subject_id", None)
        if not personal or subject is None:
            return super().to_stored_event(domain_event)
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        class_version = getattr(cls, "class_version", 1)
        if class_version > 1:
            state["class_version"] = class_version
        secret = {name: state.pop(name) for name in personal}
        key = self.keys.key(subject, create=True)
        if key is None:  # the domain refuses commands after erasure; this is a backstop
            raise MapperDeserialisationError(f"the data key of {subject} was destroyed")
        topic = get_topic(cls)
        nonce = os.urandom(12)
        sealed = AESGCM(key).encrypt(
            nonce, self.transcoder.encode(secret), _aad(originator_id, originator_version, topic)
        )
        state["_subject"] = str(subject)
        state["_personal"] = base64.b64encode(nonce + sealed).decode()
        state["_present"] = _present(secret)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=self.transcoder.encode(state),
        )

    def _before_batch(self, states: list[dict[str, Any]]) -> None:
        """One read for every data key a batch needs."""
        self.keys.prefetch({UUID(s["_subject"]) for s in states if "_subject" in s})

    def _reveal(self, stored_event: StoredEvent, state: dict[str, Any]) -> frozenset[str]:
        sealed = state.pop("_personal", None)
        subject = state.pop("_subject", None)
        present = state.pop("_present", ())
        if sealed is None or subject is None:
            return frozenset()
        cls = _event_class(stored_event.topic)
        personal = erased_values(cls)
        key = self.keys.key(UUID(subject))
        if key is None:  # crypto-shredded: the personal fields read as erased
            # also those a record written before they were personal holds in clear
            held = {name for name in personal if state.get(name) not in _EMPTY}
            state.update(personal)
            return frozenset(name.split(".", 1)[0] for name in present) | held
        blob = base64.b64decode(sealed)
        aad = _aad(stored_event.originator_id, stored_event.originator_version, stored_event.topic)
        state.update(self.transcoder.decode(AESGCM(key).decrypt(blob[:12], blob[12:], aad)))
        return frozenset()


ERASED_FIELDS = "erased_fields"
"""An event read after its subject's key was destroyed carries, under this
attribute, the names of the personal fields that held values (``phones``,
``attributes``): field names are not personal, and an audit trail rebuilt after the
erasure still says which fields were set. (Records written before attribute keys
were encrypted name them, ``attributes.vip``: they are read as ``attributes``.)"""

_EMPTY: tuple[Any, ...] = (None, "", (), [], {})


def _present(secret: dict[str, Any]) -> list[str]:
    """The personal fields given a value: their names only, never a mapping's keys
    (attribute keys are personal data)."""
    return [name for name, value in secret.items() if value not in _EMPTY]


def _aad(originator_id: Any, version: int, topic: str) -> bytes:
    return f"{originator_id}:{version}:{topic}".encode()
