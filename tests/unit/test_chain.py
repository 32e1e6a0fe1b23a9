"""The hash chain's canonical bytes and links, and the projector's raw path (every
stored record, undecoded, to raw read models) on the in-memory store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Notification

from adapters.projector import Projector
from adapters.read_models.base import SqlReadModel
from adapters.read_models.chain import ZERO_LINK, canonical, next_link
from adapters.sql import Cursor
from api.bootstrap import Crm
from api.demo import load_demo
from projections.base import Recorded
from tests.conftest import fresh_product

# ------------------------------------------------------------------ canonical bytes


def test_the_canonical_bytes_of_a_record_are_its_fields_fixed_width_or_length_prefixed() -> None:
    record = canonical(1, UUID(int=1), 2, "abc", b"\xff\x00")
    assert record == bytes.fromhex(
        "0000000000000001"  # position, 8 bytes big-endian
        "00000000000000000000000000000001"  # originator id, its 16 bytes
        "0000000000000002"  # originator version, 8 bytes
        "00000003"
        + b"abc".hex()  # topic, UTF-8 after its 4-byte length
        + "00000002ff00"  # state after its 4-byte length
    )


def test_a_link_is_the_sha256_of_the_previous_link_and_the_record() -> None:
    record = canonical(1, UUID(int=1), 2, "abc", b"\xff\x00")
    first = next_link(ZERO_LINK, record)
    assert first == hashlib.sha256(bytes(32) + record).digest()
    # Pinned: a change of format would silently break every chain already stored.
    assert first.hex() == "9f9b0e890ff06148c67d67b4626c927b40e8e6cc552177d0c225d18ed68ec34e"
    second = canonical(2, UUID(int=1), 3, "abc", b"")
    assert next_link(first, second) == hashlib.sha256(first + second).digest()


@pytest.mark.parametrize(
    "other",
    [
        canonical(2, UUID(int=1), 2, "abc", b"\xff\x00"),  # position
        canonical(1, UUID(int=2), 2, "abc", b"\xff\x00"),  # originator
        canonical(1, UUID(int=1), 3, "abc", b"\xff\x00"),  # version
        canonical(1, UUID(int=1), 2, "abd", b"\xff\x00"),  # topic
        canonical(1, UUID(int=1), 2, "abc", b"\xff\x01"),  # state
        canonical(1, UUID(int=1), 2, "ab", b"c\xff\x00"),  # a byte moved across fields
    ],
)
def test_every_field_of_a_record_changes_its_canonical_bytes(other: bytes) -> None:
    assert canonical(1, UUID(int=1), 2, "abc", b"\xff\x00") != other


# -------------------------------------------------------------- the raw path


class RawSeen(SqlReadModel):
    """Remembers every record the projector hands it."""

    name = "raw_seen"
    tables = ()
    topics = frozenset[str]()
    raw = True

    def __init__(self, crm: Crm) -> None:
        super().__init__(crm.db)
        self.seen: list[Notification] = []

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        raise AssertionError("a raw model is never given decoded events")

    def apply_raw(self, cursor: Cursor, notifications: Sequence[Notification]) -> None:
        self.seen.extend(notifications)


def decoded_seen(crm: Crm, wanted: frozenset[str]) -> Any:
    class DecodedSeen(SqlReadModel):
        name = "decoded_seen"
        tables = ()
        topics = wanted

        def __init__(self) -> None:
            super().__init__(crm.db)
            self.seen: list[Recorded] = []

        def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
            self.seen.extend(batch)

    return DecodedSeen()


@pytest.fixture
def product(tmp_path: Path) -> Iterator[Crm]:
    with fresh_product("memory", tmp_path) as crm:
        load_demo(crm, clients_count=8)
        yield crm


def stored(crm: Crm) -> list[Notification]:
    return list(crm.app.recorder.select_notifications(start=1, limit=1_000_000))


@pytest.fixture
def decodes(product: Crm, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The positions the mapper is asked to decode."""
    asked: list[int] = []
    decode = product.app.mapper.to_domain_event
    decode_many = product.app.mapper.to_domain_events  # type: ignore[attr-defined]

    def counting(notification: Any) -> Any:
        asked.append(notification.id)
        return decode(notification)

    def counting_many(notifications: Any) -> Any:
        asked.extend(n.id for n in notifications)
        return decode_many(notifications)

    monkeypatch.setattr(product.app.mapper, "to_domain_event", counting)
    monkeypatch.setattr(product.app.mapper, "to_domain_events", counting_many)
    return asked


def client_topics(crm: Crm) -> frozenset[str]:
    return frozenset(n.topic for n in stored(crm) if n.topic.startswith("domain.client:"))


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
def test_a_raw_model_sees_every_record_of_every_topic_once_in_order_undecoded(
    product: Crm, decodes: list[int], batch_size: int
) -> None:
    raw = RawSeen(product)
    projector = Projector(product.app, product.db, [raw], batch_size=batch_size)
    projector.setup()
    assert projector.topics == []  # no topic filter
    projector.catch_up()
    everything = stored(product)
    assert len({n.topic for n in everything}) > 3
    assert raw.seen == everything
    assert decodes == []  # nothing is decoded for a raw model


@pytest.mark.parametrize("batch_size", [1, 7, 5000])
def test_beside_a_raw_model_a_decoded_model_gets_just_its_topics_decoded_once(
    product: Crm, decodes: list[int], batch_size: int
) -> None:
    wanted = client_topics(product)
    assert wanted
    raw, decoded = RawSeen(product), decoded_seen(product, wanted)
    projector = Projector(product.app, product.db, [raw, decoded], batch_size=batch_size)
    projector.setup()
    projector.catch_up()
    mine = [n for n in stored(product) if n.topic in wanted]
    assert [r.position for r in decoded.seen] == [n.id for n in mine]
    assert [type(r.event).__name__ for r in decoded.seen] == [
        n.topic.rsplit(".", 1)[-1] for n in mine
    ]
    assert sorted(decodes) == [n.id for n in mine]  # only its topics, each once
    assert raw.seen == stored(product)


def test_without_a_raw_model_the_projector_still_reads_only_its_models_topics(
    product: Crm,
) -> None:
    wanted = client_topics(product)
    projector = Projector(product.app, product.db, [decoded_seen(product, wanted)])
    assert projector.topics == sorted(wanted)


def test_records_a_decoded_model_has_already_applied_are_not_decoded_again(
    product: Crm, decodes: list[int]
) -> None:
    wanted = client_topics(product)
    ahead = Projector(product.app, product.db, [decoded_seen(product, wanted)])
    ahead.setup()
    ahead.catch_up()
    decodes.clear()
    raw, decoded = RawSeen(product), decoded_seen(product, wanted)  # the raw one starts at 0
    both = Projector(product.app, product.db, [raw, decoded], batch_size=10)
    both.setup()
    both.catch_up()
    assert raw.seen == stored(product)
    assert decoded.seen == []
    assert decodes == []


def test_a_raw_model_ahead_of_a_decoded_one_is_not_given_records_again(product: Crm) -> None:
    raw = RawSeen(product)
    ahead = Projector(product.app, product.db, [raw], batch_size=10)
    ahead.setup()
    ahead.catch_up(until=30)
    decoded = decoded_seen(product, client_topics(product))  # starts at 0
    both = Projector(product.app, product.db, [raw, decoded], batch_size=7)
    both.setup()
    both.catch_up()
    assert raw.seen == stored(product)
    assert [r.position for r in decoded.seen] == [
        n.id for n in stored(product) if n.topic in client_topics(product)
    ]
