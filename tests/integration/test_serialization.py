"""Events survive storage exactly, old event versions are upcast, corruption is loud."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic

from adapters.mapper import PydanticMapper
from adapters.transcoder import OrjsonTranscoder
from api.bootstrap import Crm
from domain.base import CrmAggregate
from domain.client import Client
from domain.envelope import Envelope, recording


class Note(CrmAggregate):
    """A test aggregate whose ``Written`` event gained a field in version 2."""

    class Event(CrmAggregate.Event):
        pass

    class Created(Event, CrmAggregate.Created):
        pass

    class Written(Event):
        class_version = 2
        text: str
        language: str  # added in version 2; version 1 notes were all English

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["language"] = "en"

        def apply(self, aggregate: Note) -> None:
            aggregate.texts.append((self.text, self.language))

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []


def test_an_event_written_by_an_older_version_is_upcast_when_read(
    crm: Crm, envelope: Envelope
) -> None:
    with recording(envelope):
        note = Note._create(Note.Created, id=uuid4())
    crm.app.save(note)
    version_1_state = {
        "timestamp": "2020-01-02T03:04:05+00:00",
        "occurred_at": "2020-01-02T03:04:05+00:00",
        "actor_id": "legacy",
        "actor_role": "system",
        "source": "import",
        "correlation_id": "c",
        "causation_id": None,
        "text": "hello",
    }
    crm.app.recorder.insert_events(
        [
            StoredEvent(
                originator_id=note.id,
                originator_version=2,
                topic=get_topic(Note.Written),
                state=orjson.dumps(version_1_state),
            )
        ]
    )
    loaded = crm.app.repository.get(note.id)
    assert loaded.texts == [("hello", "en")]
    with recording(envelope):
        loaded.trigger_event(Note.Written, text="hallo", language="de")
    crm.app.save(loaded)
    assert crm.app.repository.get(note.id).texts == [("hello", "en"), ("hallo", "de")]


def test_amounts_and_instants_come_back_exactly(crm: Crm, envelope: Envelope) -> None:
    occurred = datetime(2021, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)
    with recording(replace(envelope, occurred_at=occurred)):
        client = Client.register(name="Ann")
        client.record_purchase(
            amount=Decimal("0.1000"),
            cost=Decimal("999999999999.9999"),
            currency="EUR",
            books_currency="EUR",
        )
    crm.app.save(client)
    purchase = list(crm.app.repository.event_store.get(client.id))[-1]
    assert isinstance(purchase, Client.PurchaseMade)
    assert str(purchase.amount) == "0.1000"
    assert str(purchase.cost) == "999999999999.9999"
    assert purchase.occurred_at == occurred
    assert purchase.occurred_at.utcoffset() == timedelta(0)


def test_a_record_that_does_not_match_its_event_class_fails_loudly() -> None:
    mapper = PydanticMapper(transcoder=OrjsonTranscoder())
    corrupt = StoredEvent(
        originator_id=uuid4(),
        originator_version=2,
        topic=get_topic(Client.PurchaseMade),
        state=orjson.dumps({"timestamp": "2020-01-01T00:00:00+00:00", "amount": "lots"}),
    )
    with pytest.raises(MapperDeserialisationError, match="PurchaseMade"):
        mapper.to_domain_event(corrupt)
