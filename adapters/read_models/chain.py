"""The tamper-evident hash chain over the stored event records.

One link per stored event, in position order::

    link_0 = 32 zero bytes
    link_n = SHA-256(link_{n-1} || canonical bytes of record n)

The canonical bytes are taken from the record as stored (the state is the encrypted,
compressed bytes in the events table), so crypto-shredding a client does not break
the chain, and nothing is decoded. The links are a pure function of the stored
records: a rebuild, or another batch size, gives the same links.

The chain is a raw read model kept by the projector (table ``chain_links``);
``verify`` recomputes it from the events table, page by page, and names the first
position whose stored record no longer gives the stored link. The head link, printed
and kept elsewhere (``crm audit head``), anchors the whole history before it: whoever
rewrites events and links alike cannot reproduce an anchored head.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.persistence import Notification

from adapters.read_models.base import SqlReadModel, Table
from adapters.sql import Cursor, Database
from application.ports import EventRecorder
from projections.base import Recorded

ZERO_LINK = bytes(32)

CHANGED = "the event's bytes changed (or its stored link did)"
MISSING = "the event at this position is missing"
UNLINKED = "the event at this position has no link (inserted after it was chained?)"


def canonical(position: int, originator_id: UUID, version: int, topic: str, state: bytes) -> bytes:
    """A stored record as bytes: position and version as 8-byte big-endian unsigned
    integers, the originator id as its 16 bytes, topic (UTF-8) and state each after
    its 4-byte big-endian length."""
    encoded_topic = topic.encode()
    return b"".join(
        (
            position.to_bytes(8, "big"),
            originator_id.bytes,
            version.to_bytes(8, "big"),
            len(encoded_topic).to_bytes(4, "big"),
            encoded_topic,
            len(state).to_bytes(4, "big"),
            state,
        )
    )


def next_link(previous: bytes, record: bytes) -> bytes:
    """The link after ``previous`` for a record's canonical bytes."""
    return hashlib.sha256(previous + record).digest()


class _Record(NamedTuple):
    position: int
    canonical: bytes | None
    """None when a column no longer holds a value of its type (tampered)."""


def _record(position: Any, originator_id: Any, version: Any, topic: Any, state: Any) -> _Record:
    """A stored row, read as it is: any value that is not what the store writes makes
    the record unreadable rather than the verification crash."""
    try:
        uuid = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        if not isinstance(topic, str) or not isinstance(state, bytes | memoryview):
            raise TypeError
        return _Record(int(position), canonical(position, uuid, version, topic, bytes(state)))
    except (ValueError, TypeError, AttributeError, OverflowError):
        return _Record(int(position), None)


class ChainReadModel(SqlReadModel):
    """The chain's links, by position; kept by the projector from the raw records."""

    name = "chain"
    tables = (Table("links", "position {int} PRIMARY KEY, link {text} NOT NULL"),)
    topics = frozenset[str]()
    raw = True

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        raise NotImplementedError("the chain is a raw read model: see apply_raw")

    def apply_raw(self, cursor: Cursor, notifications: Sequence[Notification]) -> None:
        cursor.execute(
            f"SELECT position, link FROM {self.t['links']} ORDER BY position DESC LIMIT 1"
        )
        row = cursor.fetchone()
        after, previous = (0, ZERO_LINK) if row is None else (int(row[0]), bytes.fromhex(row[1]))
        if notifications[0].id <= after:
            raise ValueError(f"chain is at {after}; cannot append {notifications[0].id}")
        links = []
        for n in notifications:
            originator_id = n.originator_id
            if not isinstance(originator_id, UUID):
                originator_id = UUID(str(originator_id))
            record = canonical(n.id, originator_id, n.originator_version, n.topic, n.state)
            previous = next_link(previous, record)
            links.append((n.id, previous.hex()))
        self.insert(cursor, "links", "position, link", links)

    def head(self) -> tuple[int, str]:
        """The last chained position and its link (0 and zeros if none)."""
        return _head(self.db, self.t["links"])


def _head(db: Database, table: str) -> tuple[int, str]:
    rows = db.query(f"SELECT position, link FROM {table} ORDER BY position DESC LIMIT 1")
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, ZERO_LINK.hex())


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    """Events whose links were recomputed and found as stored."""
    first_broken_position: int | None
    reason: str | None
    head_position: int
    """The chain's head as stored (its last link's position)."""
    head_link: str
    unchained: int
    """Events after the chain's head, not linked yet (not an error); 0 when broken."""

    @property
    def ok(self) -> bool:
        return self.first_broken_position is None


def verify(
    db: Database, recorder: EventRecorder, *, prefix: str = "", page_size: int = 1000
) -> VerifyReport:
    """Recompute the chain from the stored records and compare it with the stored
    links of ``db``, streaming both in position order (memory does not grow with the
    store). Records are read with SQL from the events table (the in-memory store's
    are read through its recorder); nothing is decoded."""
    table = ChainReadModel.physical("links", prefix)
    head_position, head_link = _head(db, table)
    records = _stored_records(recorder, page_size)
    record = next(records, None)
    previous = ZERO_LINK
    checked = 0

    def broken(position: int, reason: str) -> VerifyReport:
        return VerifyReport(checked, position, reason, head_position, head_link, 0)

    for position, stored in _stored_links(db, table, head_position, page_size):
        if record is None or record.position > position:
            return broken(position, MISSING)
        if record.position < position:
            return broken(record.position, UNLINKED)
        if record.canonical is None:
            return broken(position, CHANGED)
        previous = next_link(previous, record.canonical)
        if previous.hex() != stored:
            return broken(position, CHANGED)
        checked += 1
        record = next(records, None)
    unchained = 0 if record is None else 1 + sum(1 for _ in records)
    return VerifyReport(checked, None, None, head_position, head_link, unchained)


def _stored_links(
    db: Database, table: str, until: int, page_size: int
) -> Iterator[tuple[int, str]]:
    after = 0
    while rows := db.query(
        f"SELECT position, link FROM {table} WHERE position > %s AND position <= %s"
        " ORDER BY position LIMIT %s",
        (after, until, page_size),
    ):
        for position, link in rows:
            yield int(position), str(link)
        after = int(rows[-1][0])


def _stored_records(recorder: EventRecorder, page_size: int) -> Iterator[_Record]:
    """Every stored record in position order, as it is in the events table."""
    events: Database | None = getattr(recorder, "db", None)
    if events is None:  # the in-memory store: its records are the notifications
        after = 0
        while page := recorder.select_notifications(
            start=after, limit=page_size, inclusive_of_start=False
        ):
            for n in page:
                yield _record(n.id, n.originator_id, n.originator_version, n.topic, n.state)
            after = page[-1].id
        return
    column = "notification_id" if events.dialect == "postgresql" else "rowid"
    after = 0
    while rows := events.query(
        f"SELECT {column}, originator_id, originator_version, topic, state FROM events"
        f" WHERE {column} > %s ORDER BY {column} LIMIT %s",
        (after, page_size),
    ):
        for row in rows:
            yield _record(*row)
        after = int(rows[-1][0])
