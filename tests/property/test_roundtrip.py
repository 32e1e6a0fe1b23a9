"""Property: aggregates survive a save/load round trip unchanged, on every store."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.bootstrap import Crm
from domain.client import CONTACT_CHANNELS, DIRECTIONS, LOSS_REASONS, Client
from domain.envelope import Envelope, recording
from domain.errors import DomainError

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=40)
names = texts.filter(lambda t: t.strip() != "")
phones = st.from_regex(r"\+[1-9][0-9]{7,13}", fullmatch=True)
emails = st.from_regex(r"[a-z]{1,8}(\.[a-z0-9]{1,5})?@[a-z]{2,8}\.(com|de|ru)", fullmatch=True)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.9999"), places=4)
purposes = st.sampled_from(["marketing", "newsletter", "profiling"])

commands = st.one_of(
    st.tuples(
        st.just("contact"), st.sampled_from(CONTACT_CHANNELS), st.sampled_from(DIRECTIONS), texts
    ),
    st.tuples(st.just("purchase"), amounts, amounts),
    st.tuples(st.just("lost"), st.sampled_from(LOSS_REASONS), texts),
    st.tuples(st.just("owner"), st.sampled_from(["maria", "ivan"])),
    st.tuples(
        st.just("details"), names, st.lists(phones, max_size=2), st.lists(emails, max_size=2)
    ),
    st.tuples(st.just("attribute"), st.sampled_from(["vip", "segment"]), st.none() | texts),
    st.tuples(st.just("follow_up"), st.integers(min_value=1, max_value=90), texts),
    st.tuples(st.just("done"), texts),
    st.tuples(st.just("consent"), purposes),
    st.tuples(st.just("withdraw"), purposes),
    st.tuples(st.just("restrict"), names),
    st.tuples(st.just("lift"), names),
)


def apply(client: Client, command: tuple[Any, ...], now: datetime) -> None:
    match command:
        case ("contact", channel, direction, summary):
            client.record_contact(channel=channel, direction=direction, summary=summary)
        case ("purchase", amount, cost):
            client.record_purchase(amount=amount, cost=cost, currency="EUR", books_currency="EUR")
        case ("lost", reason, note):
            client.mark_lost(reason=reason, note=note)
        case ("owner", owner):
            client.assign_owner(owner)
        case ("details", name, new_phones, new_emails):
            client.change_details({"name": name, "phones": new_phones, "emails": new_emails})
        case ("attribute", key, value):
            client.change_details({f"attributes.{key}": value})
        case ("follow_up", days, note):
            client.schedule_follow_up(
                due_at=now + timedelta(days=days), assignee_id="maria", note=note
            )
        case ("done", note):
            if client.follow_ups:
                client.complete_follow_up(next(iter(client.follow_ups)), note=note)
        case ("consent", purpose):
            client.give_consent(purpose)
        case ("withdraw", purpose):
            client.withdraw_consent(purpose)
        case ("restrict", reason):
            client.restrict_processing(reason=reason)
        case ("lift", reason):
            client.lift_restriction(reason=reason)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=names,
    initial_phones=st.lists(phones, max_size=2),
    history=st.lists(commands, max_size=12),
    back_dated_days=st.integers(min_value=0, max_value=3000),
)
def test_a_client_survives_a_save_and_load_round_trip_unchanged(
    crm: Crm,
    envelope: Envelope,
    name: str,
    initial_phones: list[str],
    history: list[tuple[Any, ...]],
    back_dated_days: int,
) -> None:
    now = datetime.now(UTC)
    with recording(replace(envelope, occurred_at=now - timedelta(days=back_dated_days))):
        client = Client.register(name=name, phones=initial_phones)
    with recording(envelope):
        for command in history:
            with suppress(DomainError):  # a refused command records nothing; history goes on
                apply(client, command, now)
    crm.app.save(client)
    loaded = crm.app.repository.get(client.id)
    assert loaded == client
    assert loaded.version == client.version
