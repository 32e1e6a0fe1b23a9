"""Personal data: encryption at rest, erasure by key destruction, key rotation,
restriction and consent, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eventsourcing.persistence import StoredEvent

from adapters.keys import MasterKeyError, generate_master_key
from adapters.mapper import ERASED_FIELDS
from adapters.read_models import registry
from adapters.read_models.audit import AuditReadModel
from adapters.read_models.kpis import KpiQueries
from api.bootstrap import Crm, bootstrap
from api.rebuild import rebuild_groups
from api.subject import event_out
from application import clients, deals
from domain.client import Client
from domain.envelope import Envelope, recording, utc_now
from domain.errors import InvalidValue, RuleViolation
from tests.conftest import POSTGRES_URL, fresh_product, make_settings
from tests.story import Story, recorded_events

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])

NAME = "Zyxmarker Qwertyson"
PHONE = "+4930987650011"
EMAIL = "zyx.marker@qwerty-marker.example"
ADDRESS = "Markerstrasse 7"
SUMMARY = "Zyx-secret-summary"
NOTE = "Zyx-secret-note"
TITLE = "Zyx-deal-title"
MARKERS = (NAME, "Zyxmarker", PHONE, PHONE[1:], EMAIL, ADDRESS, SUMMARY, NOTE, TITLE)


def marked_client(crm: Crm, envelope: Envelope) -> UUID:
    """A client whose every personal field holds a marker, in events of several kinds."""
    if "alice" not in {user.user_id for user in crm.users.list()}:
        crm.users.add("alice", "admin")  # the envelope's actor takes the follow-up
    story = Story(crm, envelope)
    client = story.register(NAME, "2024-01-10", phones=(PHONE,), emails=(EMAIL,), address=ADDRESS)
    story.run(
        clients.RecordContact(
            client_id=client, channel="call", direction="outbound", summary=SUMMARY, outcome=NOTE
        ),
        "2024-01-11",
    )
    story.buy(client, "2024-02-01", "120.00", "70")
    story.run(
        clients.ChangeClientDetails(client_id=client, changes={"address": ADDRESS + " b"}),
        "2024-02-02",
    )
    deal = story.run(
        deals.OpenDeal(client_id=client, title=TITLE, amount=Decimal(300), currency="EUR"),
        "2024-02-03",
    ).id
    story.run(deals.WinDeal(deal_id=deal, cost=Decimal(100)), "2024-02-10")
    crm.app.execute(
        clients.ScheduleFollowUp(client_id=client, due_at=utc_now() + timedelta(days=3), note=NOTE),
        envelope,
    )
    return client


def database_bytes(crm: Crm, tmp_path: Path) -> bytes:
    """Everything the database holds, as an attacker with a copy would see it: a
    pg_dump of the schema, or the SQLite file and its write-ahead log."""
    settings = crm.settings
    if settings.backend == "postgresql":
        dump = subprocess.run(
            ["pg_dump", POSTGRES_URL, "--schema", settings.database_schema, "--no-owner"],
            check=True,
            capture_output=True,
        )
        return dump.stdout
    copy = tmp_path / "copy.db"
    shutil.copy(settings.sqlite_path, copy)
    wal = Path(f"{settings.sqlite_path}-wal")
    return copy.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def findable(markers: tuple[str, ...], data: bytes) -> list[str]:
    """The markers found in plain text or hex (pg_dump shows bytea as hex)."""
    return [
        marker
        for marker in markers
        if marker.encode() in data or marker.encode().hex().encode() in data
    ]


@BACKENDS
def test_personal_data_is_never_stored_in_clear_in_the_events(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        marked_client(crm, envelope)
        rows = crm.db.query("SELECT state FROM events")
        stored = b"".join(bytes(state) for (state,) in rows)
        assert findable(MARKERS, stored) == []


@BACKENDS
def test_after_erasure_no_marker_is_left_anywhere_in_the_database(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        client = marked_client(crm, envelope)
        projector = crm.projector()
        projector.catch_up()
        assert findable(MARKERS, database_bytes(crm, tmp_path)), "the read models hold them"
        crm.app.execute(
            clients.ErasePersonalData(client_id=client, reason="subject_request"), envelope
        )
        projector.catch_up()
        assert findable(MARKERS, database_bytes(crm, tmp_path)) == []
        # ... and the product itself can no longer read them: they read as erased
        registered = next(iter(crm.app.repository.event_store.get(client)))
        assert isinstance(registered, Client.ClientRegistered)
        assert (registered.name, registered.phones, registered.address) == ("", (), None)
        assert registered.occurred_at.year == 2024  # the non-personal skeleton stays


@BACKENDS
def test_erasure_leaves_the_kpis_except_the_client_count_and_keeps_who_changed_what(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        client = marked_client(crm, envelope)
        other = Story(crm, envelope).register("Bo Other", "2024-03-01")
        Story(crm, envelope).buy(other, "2024-03-02", "50")
        projector = crm.projector()
        projector.catch_up()
        now = utc_now() + timedelta(days=1)  # an instant after the erasure, for both reads
        before = KpiQueries(crm.db).values(now)
        eraser = replace(envelope, actor_id="dpo", correlation_id="erasure-1")
        crm.app.execute(
            clients.ErasePersonalData(client_id=client, reason="subject_request"), eraser
        )
        projector.catch_up()
        after = KpiQueries(crm.db).values(now)
        assert after["clients_total"] == before["clients_total"] - 1
        for key in before:
            if key not in ("clients_total", "churn_period"):
                assert after[key] == before[key], key
        audit = crm.model(AuditReadModel)
        trail = audit.page(client_id=client, limit=500).entries
        changed = [(e.field, e.actor_id, e.old_value, e.new_value) for e in trail if e.field]
        assert ("address", "alice", None, None) in changed  # who changed which field
        assert ("name", "alice", None, None) in changed
        erasure = trail[-1]
        assert (erasure.event_type, erasure.actor_id, erasure.correlation_id) == (
            "PersonalDataErased",
            "dpo",
            "erasure-1",
        )


@BACKENDS
def test_erasing_a_survivor_erases_the_cards_merged_into_it(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        survivor = marked_client(crm, envelope)
        duplicate = Story(crm, envelope).register(NAME, "2024-01-12", emails=("zyx2@m.example",))
        crm.app.execute(
            clients.MergeClients(survivor_id=survivor, duplicate_id=duplicate), envelope
        )
        crm.app.execute(
            clients.ErasePersonalData(client_id=survivor, reason="subject_request"), envelope
        )
        crm.projector().catch_up()
        assert crm.app.repository.get(duplicate).erased
        assert findable((*MARKERS, "zyx2@m.example"), database_bytes(crm, tmp_path)) == []


@BACKENDS
def test_a_rotated_master_key_keeps_every_event_readable_and_the_old_one_fails(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        marked_client(crm, envelope)
        before = [(r.position, r.event) for r in recorded_events(crm)]
        new_key = generate_master_key()
        rotated = crm.keys.rotate(decode(new_key))
        assert rotated >= 2  # the client's key and the blind-index key
        old_settings = crm.settings
        with bootstrap(old_settings.model_copy(update={"master_key": new_key})) as reopened:
            assert [(r.position, r.event) for r in recorded_events(reopened)] == before
            # the blind index survives rotation: the phone is still taken
            with pytest.raises(Exception, match="already belongs"):
                reopened.app.execute(clients.RegisterClient(name="X", phones=(PHONE,)), envelope)
        with pytest.raises(MasterKeyError, match="does not open this store's keys"):
            bootstrap(old_settings)


def decode(text: str) -> bytes:
    from adapters.keys import decode_master_key

    return decode_master_key(text, origin="test")


def test_a_wrong_master_key_fails_at_start_up_not_with_garbage(tmp_path: Path) -> None:
    settings = make_settings("sqlite", tmp_path)
    with bootstrap(settings) as crm:
        crm.app.execute(
            clients.RegisterClient(name=NAME),
            Envelope(actor_id="a", actor_role="admin", source="cli", correlation_id="c"),
        )
    with pytest.raises(MasterKeyError, match="does not open"):
        bootstrap(settings.model_copy(update={"master_key": generate_master_key()}))


def test_restriction_blocks_marketing_and_new_deals_but_not_reading(
    crm: Crm, envelope: Envelope
) -> None:
    client = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
    crm.app.execute(clients.RestrictProcessing(client_id=client, reason="objection"), envelope)
    with pytest.raises(RuleViolation, match="restricted: no marketing"):
        crm.app.execute(
            clients.RecordContact(
                client_id=client, channel="email", direction="outbound", purpose="marketing"
            ),
            envelope,
        )
    with pytest.raises(RuleViolation, match="restricted: no new deals"):
        crm.app.execute(
            deals.OpenDeal(client_id=client, title="x", amount=Decimal(1), currency="EUR"),
            envelope,
        )
    crm.app.execute(  # service contacts are still allowed
        clients.RecordContact(client_id=client, channel="call", direction="inbound"), envelope
    )
    crm.app.execute(clients.LiftRestriction(client_id=client, reason="resolved"), envelope)
    crm.app.execute(
        deals.OpenDeal(client_id=client, title="x", amount=Decimal(1), currency="EUR"), envelope
    )


def test_the_consent_history_is_exact(crm: Crm, envelope: Envelope) -> None:
    from api.subject import export_subject

    story = Story(crm, envelope)
    client = story.register("Ann", "2024-01-01")
    story.run(clients.GiveConsent(client_id=client, purpose="newsletter"), "2024-02-01")
    story.run(clients.GiveConsent(client_id=client, purpose="newsletter"), "2024-02-15")  # no-op
    story.run(clients.GiveConsent(client_id=client, purpose="marketing_calls"), "2024-03-01")
    story.run(clients.WithdrawConsent(client_id=client, purpose="newsletter"), "2024-04-01")
    story.run(clients.GiveConsent(client_id=client, purpose="newsletter"), "2024-05-01")
    crm.projector().catch_up()
    history = [
        (c["purpose"], c["given"], c["at"].date().isoformat())
        for c in export_subject(crm, client, envelope)["consents"]
    ]
    assert history == [
        ("newsletter", True, "2024-02-01"),
        ("marketing_calls", True, "2024-03-01"),
        ("newsletter", False, "2024-04-01"),
        ("newsletter", True, "2024-05-01"),
    ]
    assert crm.app.repository.get(client).consents == {"newsletter", "marketing_calls"}


def test_consent_is_only_for_the_purposes_the_business_declared(
    tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product("sqlite", tmp_path, consent_purposes="loyalty_club") as crm:
        client = crm.app.execute(clients.RegisterClient(name="Ann"), envelope).id
        crm.app.execute(clients.GiveConsent(client_id=client, purpose="loyalty_club"), envelope)
        with pytest.raises(InvalidValue, match="not one of the declared purposes: loyalty_club"):
            crm.app.execute(clients.GiveConsent(client_id=client, purpose="newsletter"), envelope)
        assert crm.app.repository.get(client).consents == {"loyalty_club"}


def _counting_reads(crm: Crm) -> list[UUID]:
    """The subjects whose keys the key store reads from its table from now on (the
    table's own ``read`` still runs)."""
    reads: list[UUID] = []
    table: Any = crm.keys.table
    read = table.read

    def counted(subject: UUID) -> Any:
        reads.append(subject)
        return read(subject)

    table.read = counted
    return reads


def test_on_postgresql_a_client_is_loaded_with_its_key_in_one_read(
    tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product("postgresql", tmp_path) as crm:
        client = marked_client(crm, envelope)
        crm.keys.forget([client])  # as ten seconds later, or in another process
        reads = _counting_reads(crm)
        loaded = crm.app.repository.get(client)
        assert (loaded.name, loaded.phones) == (NAME, (PHONE,))
        assert reads == []  # the key came with the events


def test_on_postgresql_a_key_destroyed_elsewhere_is_seen_at_the_next_load(
    tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product("postgresql", tmp_path) as crm:
        client = marked_client(crm, envelope)
        assert crm.keys.key(client) is not None  # cached here
        crm.keys.table.destroy([client])  # another process's erasure, as far as keys go
        loaded = crm.app.repository.get(client)
        assert (loaded.name, loaded.phones) == ("", ())  # not decrypted with the cached key
        reads = _counting_reads(crm)
        assert crm.keys.key(client) is None
        assert reads == []


# ------------------------------------------------------------------ an upgraded store

LEGACY_CHANNEL = "Legacychannelmarker fair"
LEGACY_KEYS = ("legacykeymarker", "legacychangedkeymarker")
LEGACY_MARKERS = (LEGACY_CHANNEL, *LEGACY_KEYS)


def _resealed(crm: Crm, stored: StoredEvent, change: Any) -> StoredEvent:
    """``stored`` as an older version of the product wrote it: ``change(state,
    secret)`` edits its clear state and its sealed personal fields in place."""
    transcoder = crm.app.mapper.transcoder
    state = transcoder.decode(stored.state)
    key = crm.keys.key(UUID(state["_subject"]))
    assert key is not None
    aad = f"{stored.originator_id}:{stored.originator_version}:{stored.topic}".encode()
    blob = base64.b64decode(state["_personal"])
    secret = transcoder.decode(AESGCM(key).decrypt(blob[:12], blob[12:], aad))
    change(state, secret)
    nonce = os.urandom(12)
    sealed = nonce + AESGCM(key).encrypt(nonce, transcoder.encode(secret), aad)
    state["_personal"] = base64.b64encode(sealed).decode()
    return replace(stored, state=transcoder.encode(state))


def _channel_in_clear(state: dict[str, Any], secret: dict[str, Any]) -> None:
    state["channel"] = secret.pop("channel")
    state["_present"] = ["name", f"attributes.{LEGACY_KEYS[0]}"]  # keys named in clear


def _details_version_1(state: dict[str, Any], secret: dict[str, Any]) -> None:
    del state["class_version"]
    state["fields"] = [f"attributes.{LEGACY_KEYS[1]}", "name"]
    for side in ("old", "new"):
        values = secret[side]
        for key, value in values.pop("attributes").items():
            values[f"attributes.{key}"] = value
    state["_present"] = [f"new.attributes.{LEGACY_KEYS[1]}", "new.name", "old.name"]


def legacy_client(crm: Crm, envelope: Envelope) -> UUID:
    """A client stored by the version before this one: the channel of registration in
    clear, and attribute keys named in clear (``attributes.<key>``) in the stored list
    of the fields present and in a details change's ``fields``."""
    with recording(replace(envelope, occurred_at=utc_now() - timedelta(days=2))):
        client = Client.register(
            name=NAME, channel=LEGACY_CHANNEL, attributes={LEGACY_KEYS[0]: "gold"}
        )
    with recording(replace(envelope, occurred_at=utc_now() - timedelta(days=1))):
        client.change_details({f"attributes.{LEGACY_KEYS[1]}": "yes", "name": NAME + " Jr"})
    registered, changed = (crm.app.mapper.to_stored_event(e) for e in client.collect_events())
    crm.app.recorder.insert_events(
        [_resealed(crm, registered, _channel_in_clear), _resealed(crm, changed, _details_version_1)]
    )
    return client.id


def _read_models_text(crm: Crm) -> bytes:
    tables = ("directory_cards", "audit_entries", "deals_cards")
    return b"".join(repr(crm.db.query(f"SELECT * FROM {table}")).encode() for table in tables)


@BACKENDS
def test_a_store_written_before_the_channel_and_attribute_keys_were_sealed_keeps_working(
    backend: str, tmp_path: Path, envelope: Envelope
) -> None:
    with fresh_product(backend, tmp_path) as crm:
        client = legacy_client(crm, envelope)
        stored = b"".join(bytes(state) for (state,) in crm.db.query("SELECT state FROM events"))
        assert findable(LEGACY_MARKERS, stored) == list(LEGACY_MARKERS)  # as the old version wrote

        loaded: Client = crm.app.repository.get(client)
        assert (loaded.name, loaded.channel) == (NAME + " Jr", LEGACY_CHANNEL)
        assert loaded.attributes == {LEGACY_KEYS[0]: "gold", LEGACY_KEYS[1]: "yes"}
        changed = list(crm.app.repository.event_store.get(client))[1]
        assert isinstance(changed, Client.ClientDetailsChanged)
        assert changed.fields == ("attributes", "name")  # read as the current version
        projector = crm.projector()
        projector.catch_up()
        # ... and the audit trail as the old version folded it: one entry per key
        crm.db.execute(
            "UPDATE audit_entries SET field = %s WHERE client_id = %s AND field = %s",
            (f"attributes.{LEGACY_KEYS[0]}", client, "attributes"),
        )
        old_style = "SELECT COUNT(*) FROM audit_entries WHERE substr(field, 1, 11) = 'attributes.'"
        assert crm.db.query(old_style) == [(2,)]
        assert findable(LEGACY_MARKERS, _read_models_text(crm)) == list(LEGACY_MARKERS)

        crm.app.execute(
            clients.ErasePersonalData(client_id=client, reason="subject_request"), envelope
        )
        projector.catch_up()
        assert findable(LEGACY_MARKERS, _read_models_text(crm)) == []
        assert crm.db.query(old_style) == [(0,)]
        fed = orjson.dumps([event_out(r.event) for r in recorded_events(crm)], default=str)
        assert findable(LEGACY_MARKERS, fed) == []  # what the feed, history and export show
        registered = next(iter(crm.app.repository.event_store.get(client)))
        assert getattr(registered, ERASED_FIELDS) == {"name", "channel", "attributes"}

        rebuild_groups(crm, [registry.NAMES])  # what an operator runs after upgrading
        assert findable(LEGACY_MARKERS, _read_models_text(crm)) == []
        trail = crm.model(AuditReadModel).page(client_id=client, limit=100).entries
        fields = [e.field for e in trail if e.field]
        assert fields == ["name", "kind", "channel", "attributes", "attributes", "name"]
        # The events themselves stay as they were written, clear values and all: the
        # hash chain covers their stored bytes.
        stored = b"".join(bytes(state) for (state,) in crm.db.query("SELECT state FROM events"))
        assert findable(LEGACY_MARKERS, stored) == list(LEGACY_MARKERS)
