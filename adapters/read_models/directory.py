"""Client directory tables: the current cards, and the contact-point lookup.

A batch is applied by loading the cards its events read, folding the batch into
them with ``projections.directory.apply`` and writing back the cards that changed.
The lookup table maps the blind-index digest of each live card's normalised phones
and emails to the card, so the telephony popup finds a caller without any phone
number being stored in clear beside the card's id.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson

from adapters.read_models.base import SqlReadModel, Table, chunks
from adapters.read_models.lifecycle import LifecycleReadModel
from adapters.sql import (
    Cursor,
    Database,
    Query,
    Rows,
    as_datetime,
    as_optional_datetime,
    as_uuid,
    from_units,
    to_units,
)
from application.phones import parse_phone
from application.ports import BlindIndex
from domain.errors import InvalidValue
from domain.lifecycle import Stage
from domain.values import normalise_email
from projections import directory
from projections.base import Recorded
from projections.directory import ClientCard

_COLUMNS = (
    "client_id, name, kind, company, address, channel, phones, emails, attributes,"
    " owner_id, registered_at, last_contact_at, last_purchase_at, purchases_count,"
    " revenue, margin, open_follow_ups, restricted, erased, merged_into, version, search_text"
)
_CARD_COLUMNS = ", ".join(f"c.{name.strip()}" for name in _COLUMNS.split(","))
_MAX_LIMIT = 1000
_STAGE_AT = (
    f"(SELECT li.stage FROM {LifecycleReadModel.physical('intervals')} li"
    " WHERE li.client_id = c.client_id AND li.valid_from <= %s"
    " ORDER BY li.valid_from DESC LIMIT 1)"
)
"""The stage of card ``c`` at an instant (the one parameter): that of the last
interval begun by then, as ``domain.lifecycle.interval_at`` picks it."""


@dataclass(frozen=True)
class ClientPage:
    """One page of the directory; ``next_cursor`` is ``None`` on the last page."""

    cards: list[ClientCard]
    next_cursor: str | None
    stages: list[Stage | None]
    """Each card's lifecycle stage at the search's instant (``None``: not registered
    yet), in the order of ``cards``."""


class DirectoryReadModel(SqlReadModel):
    name = "directory"
    tables = (
        Table(
            "cards",
            "client_id {uuid} PRIMARY KEY, name {text} NOT NULL, kind {text} NOT NULL,"
            " company {text}, address {text}, channel {text}, phones {text} NOT NULL,"
            " emails {text} NOT NULL, attributes {text} NOT NULL, owner_id {text},"
            " registered_at {ts} NOT NULL, last_contact_at {ts}, last_purchase_at {ts},"
            " purchases_count {int} NOT NULL, revenue {money} NOT NULL,"
            " margin {money} NOT NULL, open_follow_ups {int} NOT NULL,"
            " restricted {bool} NOT NULL, erased {bool} NOT NULL, merged_into {uuid},"
            " version {int} NOT NULL, search_text {text} NOT NULL",
            indexes=("registered_at, client_id", "owner_id", "last_contact_at"),
            query_only=("registered_at, client_id", "owner_id", "last_contact_at"),
        ),
        Table(
            "lookup",
            "kind {text} NOT NULL, digest {text} NOT NULL, client_id {uuid} NOT NULL,"
            " PRIMARY KEY (kind, digest)",
            indexes=("client_id",),
        ),
    )
    topics = directory.TOPICS

    def __init__(
        self,
        db: Database,
        *,
        blind_index: BlindIndex,
        prefix: str = "",
        default_country: str | None = None,
    ) -> None:
        super().__init__(db, prefix=prefix)
        self.blind_index = blind_index
        self.default_country = default_country
        """Where a phone looked up without a country code is from (as commands read it)."""

    # ------------------------------------------------------------------ writing

    def apply(self, cursor: Cursor, batch: Sequence[Recorded]) -> None:
        wanted = sorted({client_id for r in batch for client_id in directory.needs(r)})
        before = self._load(cursor, wanted)
        after = directory.fold(batch, before)
        changed = {cid: card for cid, card in after.items() if before.get(cid) != card}
        if not changed:
            return
        t = self.t
        ids = sorted(changed)
        for chunk in chunks(ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(f"DELETE FROM {t['cards']} WHERE client_id IN ({marks})", chunk)
        self.insert(cursor, "cards", _COLUMNS, [_row(changed[cid]) for cid in ids])
        released: list[tuple[str, str, UUID]] = []
        claimed: list[tuple[str, str, UUID]] = []
        # Claims are written in the order of the events that made them: when two cards
        # claim one point in a batch (a survivor taking over a duplicate's number
        # before the duplicate's own merge event arrives), the later claim wins, as it
        # would projected one event at a time.
        last_event = {r.event.originator_id: r.position for r in batch}
        for cid in sorted(ids, key=lambda cid: last_event.get(cid, 0)):
            old = before[cid].contact_points if cid in before else frozenset()
            new = changed[cid].contact_points
            released += [self._key(kind, value, cid) for kind, value in sorted(old - new)]
            claimed += [self._key(kind, value, cid) for kind, value in sorted(new - old)]
        if released:
            # Only the row this card held: in a merge split over two batches the
            # survivor may already have taken the point over.
            cursor.executemany(
                f"DELETE FROM {t['lookup']} WHERE kind = %s AND digest = %s AND client_id = %s",
                released,
            )
        if claimed:
            cursor.executemany(
                f"INSERT INTO {t['lookup']} (kind, digest, client_id) VALUES (%s, %s, %s)"
                " ON CONFLICT (kind, digest) DO UPDATE SET client_id = excluded.client_id",
                claimed,
            )

    def _key(self, kind: str, value: str, client_id: UUID) -> tuple[str, str, UUID]:
        return (kind, self.blind_index.digest(kind, value), client_id)

    def _load(self, cursor: Cursor, client_ids: list[UUID]) -> dict[UUID, ClientCard]:
        cards: dict[UUID, ClientCard] = {}
        for chunk in chunks(client_ids, 500):
            marks = ", ".join(["%s"] * len(chunk))
            cursor.execute(
                f"SELECT {_COLUMNS} FROM {self.t['cards']} WHERE client_id IN ({marks})", chunk
            )
            for row in cursor.fetchall():
                card = _card(row)
                cards[card.client_id] = card
        return cards

    # ------------------------------------------------------------------ queries

    def card(self, client_id: UUID) -> ClientCard | None:
        """The client's card; ``None`` if unknown or merged into another card. An
        erased client's card is returned blanked, with ``erased=True``."""
        return self.db.run(self.card_query(client_id))

    def staged_card_query(
        self, client_id: UUID, at: datetime
    ) -> Query[tuple[ClientCard, Stage | None] | None]:
        """The card with the client's lifecycle stage at ``at`` (``None`` before they
        were registered), in one statement: the stage is that of the last interval
        begun by ``at`` (``domain.lifecycle.interval_at``)."""
        return Query(
            f"SELECT {_CARD_COLUMNS}, {_STAGE_AT} FROM {self.t['cards']} c"
            " WHERE c.client_id = %s AND c.merged_into IS NULL",
            (at, client_id),
            _staged_card,
        )

    def card_query(self, client_id: UUID) -> Query[ClientCard | None]:
        """``card`` as a ``Query``."""
        return Query(
            f"SELECT {_COLUMNS} FROM {self.t['cards']}"
            " WHERE client_id = %s AND merged_into IS NULL",
            (client_id,),
            _first_card,
        )

    def lookup(self, phone: str | None = None, email: str | None = None) -> ClientCard | None:
        """The live card holding this phone (in any formatting) or email (in any
        case); ``None`` for an invalid or unknown one. Exactly one of the two."""
        point = self._contact_point(phone, email)
        if point is None:
            return None
        rows = self.db.query(f"SELECT {_CARD_COLUMNS} {self._by_contact_point()}", point)
        return _card(rows[0]) if rows else None

    def lookup_query(
        self, *, phone: str | None = None, email: str | None = None, at: datetime
    ) -> Query[tuple[ClientCard, Stage | None] | None] | None:
        """``lookup`` as a ``Query``, with the client's stage at ``at`` (read from the
        lifecycle read model); ``None`` for an invalid phone or email (nothing to look
        up)."""
        point = self._contact_point(phone, email)
        if point is None:
            return None
        return Query(
            f"SELECT {_CARD_COLUMNS}, {_STAGE_AT} {self._by_contact_point()}",
            (at, *point),
            _staged_card,
        )

    def read_contact_point(
        self, phone: str | None = None, email: str | None = None
    ) -> tuple[str, str]:
        """The kind (``phone`` or ``email``) and the form looked up of exactly one
        phone or email (else a ``ValueError``): a phone in E.164, a national number
        read as ``default_country``'s; an email lower-cased. ``InvalidValue`` (saying
        why) for one that cannot be read."""
        if phone is not None and email is None:
            return "phone", parse_phone(phone, country=self.default_country, field="phone")
        if email is not None and phone is None:
            return "email", normalise_email(email, field="email")
        raise ValueError("look up by exactly one of phone or email")

    def _contact_point(self, phone: str | None, email: str | None) -> tuple[str, str] | None:
        """The kind and keyed digest of the phone or email looked up (exactly one of
        the two, else a ``ValueError``); ``None`` if it is invalid."""
        try:
            kind, value = self.read_contact_point(phone, email)
        except InvalidValue:
            return None
        return kind, self.blind_index.digest(kind, value)

    def _by_contact_point(self) -> str:
        return (
            f"FROM {self.t['lookup']} k JOIN {self.t['cards']} c ON c.client_id = k.client_id"
            " WHERE k.kind = %s AND k.digest = %s AND c.merged_into IS NULL"
        )

    def search(
        self,
        *,
        at: datetime,
        stage: str | None = None,
        owner_id: str | None = None,
        last_contact_before: datetime | None = None,
        last_contact_after: datetime | None = None,
        text: str | None = None,
        visible_to: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ClientPage:
        """Cards not merged away (erased ones included, blanked), newest registered
        first (``registered_at`` then ``client_id``, both descending), ``limit`` at a
        time; pass a page's ``next_cursor`` to get the next.

        * ``stage``: the client's lifecycle stage at instant ``at`` (read from the
          lifecycle read model, as is each card's stage in ``ClientPage.stages``);
        * ``last_contact_before`` X: last contact earlier than X, or never contacted
          (both are "not contacted since X"); ``last_contact_after`` X: last contact
          at or after X — so the two split the directory in two;
        * ``text``: a case-insensitive substring of name, company, an email or a phone
          (as stored, E.164);
        * ``visible_to``: only that manager's own clients and unassigned leads.

        Raises ``ValueError`` for a malformed cursor, an unknown stage or a limit
        outside 1..1000.
        """
        if not 1 <= limit <= _MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {_MAX_LIMIT}")
        conditions = ["c.merged_into IS NULL"]
        params: list[Any] = []
        if stage is not None:
            conditions.append(
                f"EXISTS (SELECT 1 FROM {LifecycleReadModel.physical('intervals')} li"
                " WHERE li.client_id = c.client_id AND li.stage = %s AND li.valid_from <= %s"
                " AND (li.valid_to IS NULL OR li.valid_to > %s))"
            )
            params += [_stage(stage), at, at]
        if owner_id is not None:
            conditions.append("c.owner_id = %s")
            params.append(owner_id)
        if visible_to is not None:
            conditions.append("(c.owner_id = %s OR c.owner_id IS NULL)")
            params.append(visible_to)
        if last_contact_before is not None:
            conditions.append("(c.last_contact_at IS NULL OR c.last_contact_at < %s)")
            params.append(last_contact_before)
        if last_contact_after is not None:
            conditions.append("c.last_contact_at >= %s")
            params.append(last_contact_after)
        needle = (text or "").strip().lower()
        if needle:
            conditions.append("c.search_text LIKE %s ESCAPE '\\'")
            params.append("%" + _escape_like(needle) + "%")
        if cursor is not None:
            after_registered, after_id = _decode_cursor(cursor)
            conditions.append(
                "(c.registered_at < %s OR (c.registered_at = %s AND c.client_id < %s))"
            )
            params += [after_registered, after_registered, after_id]
        rows = self.db.query(
            f"SELECT {_CARD_COLUMNS}, {_STAGE_AT} FROM {self.t['cards']} c"
            f" WHERE {' AND '.join(conditions)}"
            " ORDER BY c.registered_at DESC, c.client_id DESC LIMIT %s",
            (at, *params, limit + 1),
        )
        staged = [_staged(row) for row in rows[:limit]]
        cards = [card for card, _ in staged]
        more = len(rows) > limit
        return ClientPage(
            cards, _encode_cursor(cards[-1]) if more else None, [stage for _, stage in staged]
        )


# ---------------------------------------------------------------- row mapping


def _row(card: ClientCard) -> tuple[Any, ...]:
    return (
        card.client_id,
        card.name,
        card.kind,
        card.company,
        card.address,
        card.channel,
        orjson.dumps(card.phones).decode(),
        orjson.dumps(card.emails).decode(),
        orjson.dumps(dict(card.attributes), option=orjson.OPT_SORT_KEYS).decode(),
        card.owner_id,
        card.registered_at,
        card.last_contact_at,
        card.last_purchase_at,
        card.purchases_count,
        to_units(card.revenue),
        to_units(card.margin),
        card.open_follow_ups,
        card.restricted,
        card.erased,
        card.merged_into,
        card.version,
        card.search_text,
    )


def _first_card(rows: Rows) -> ClientCard | None:
    return _card(rows[0]) if rows else None


def _staged_card(rows: Rows) -> tuple[ClientCard, Stage | None] | None:
    return _staged(rows[0]) if rows else None


def _staged(row: tuple[Any, ...]) -> tuple[ClientCard, Stage | None]:
    *card, stage = row
    return _card(tuple(card)), None if stage is None else Stage(stage)


def _card(row: tuple[Any, ...]) -> ClientCard:
    (
        client_id,
        name,
        kind,
        company,
        address,
        channel,
        phones,
        emails,
        attributes,
        owner_id,
        registered_at,
        last_contact_at,
        last_purchase_at,
        purchases_count,
        revenue,
        margin,
        open_follow_ups,
        restricted,
        erased,
        merged_into,
        version,
        _search_text,
    ) = row
    return ClientCard(
        client_id=as_uuid(client_id),
        name=str(name),
        kind=str(kind),
        company=company,
        address=address,
        channel=channel,
        phones=tuple(orjson.loads(phones)),
        emails=tuple(orjson.loads(emails)),
        attributes=orjson.loads(attributes),
        owner_id=owner_id,
        registered_at=as_datetime(registered_at),
        version=int(version),
        last_contact_at=as_optional_datetime(last_contact_at),
        last_purchase_at=as_optional_datetime(last_purchase_at),
        purchases_count=int(purchases_count),
        revenue=from_units(revenue),
        margin=from_units(margin),
        open_follow_ups=int(open_follow_ups),
        restricted=bool(restricted),
        erased=bool(erased),
        merged_into=None if merged_into is None else as_uuid(merged_into),
    )


def _stage(name: str) -> str:
    try:
        return Stage(name).value
    except ValueError:
        known = ", ".join(s.value for s in Stage)
        raise ValueError(f"unknown stage {name!r}; known: {known}") from None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_cursor(card: ClientCard) -> str:
    payload = json.dumps([card.registered_at.isoformat(), str(card.client_id)])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The (registered_at, client_id) a page ended at; ``ValueError`` if malformed."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        registered, client_id = json.loads(raw)
        instant = datetime.fromisoformat(registered)
        if instant.utcoffset() is None:
            raise ValueError("naive instant")
        return instant, UUID(client_id)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, AttributeError):
        raise ValueError(f"malformed cursor {cursor!r}") from None
