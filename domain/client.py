"""The Client aggregate: every fact about one customer, as attributed events."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, Self, get_args
from uuid import UUID, uuid4, uuid5

from domain.base import CrmAggregate
from domain.envelope import utc_now
from domain.errors import InvalidValue, RuleViolation
from domain.values import (
    MAX_SHORT_TEXT,
    PERSONAL,
    PersonalOptionalText,
    PersonalText,
    PersonalTexts,
    check_amount,
    check_attribute_key,
    check_currency,
    check_phones,
    normalise_emails,
    normalise_name,
    normalise_text,
)

ClientKind = Literal["person", "company"]
ContactChannel = Literal["call", "email", "meeting", "sms", "chat", "visit"]
Direction = Literal["inbound", "outbound"]
ContactPurpose = Literal["service", "sales", "marketing"]
LossReason = Literal["price", "service", "competitor", "moved", "no_need", "inactivity", "other"]
HandAssignmentReason = Literal["manual", "departure"]
"""Why a person moves a client to another owner; the other reasons are the automation's."""
AssignmentReason = Literal["registration", "round_robin", HandAssignmentReason]
ErasureReason = Literal[
    "subject_request",
    "consent_withdrawn",
    "objection",
    "no_longer_needed",
    "retention_expired",
    "unlawful_processing",
    "legal_obligation",
]
"""Why a client's personal data was erased: the grounds of GDPR art. 17(1), and the end of
a retention period. A closed set, because the reason stays in clear after the erasure."""

CLIENT_KINDS: tuple[str, ...] = get_args(ClientKind)
CONTACT_CHANNELS: tuple[str, ...] = get_args(ContactChannel)
DIRECTIONS: tuple[str, ...] = get_args(Direction)
CONTACT_PURPOSES: tuple[str, ...] = get_args(ContactPurpose)
LOSS_REASONS: tuple[str, ...] = get_args(LossReason)
ASSIGNMENT_REASONS: tuple[str, ...] = get_args(AssignmentReason)
ERASURE_REASONS: tuple[str, ...] = get_args(ErasureReason)
DEFAULT_CONSENT_PURPOSES = (
    "newsletter",
    "marketing",
    "marketing_calls",
    "marketing_emails",
    "marketing_sms",
    "profiling",
    "third_parties",
)
"""The purposes a client may consent to unless the business declares its own
(``CRM_CONSENT_PURPOSES``): a closed set, because purposes stay in clear after erasure."""

FieldValue = str | tuple[str, ...] | None
"""A profile field's value: text, a list of contact points, or absent."""
AttributeChanges = dict[str, str | None]
"""Attributes as a details change records them: each changed key with its value, or
``None`` where the attribute is absent (added, or removed)."""
ChangedValue = str | tuple[str, ...] | AttributeChanges | None
"""A value in a details change: a profile field's, or the changed attributes'."""

PROFILE_FIELDS = ("name", "kind", "company", "address", "channel", "phones", "emails")
ATTRIBUTES = "attributes"
ATTRIBUTE_PREFIX = "attributes."
MAX_ATTRIBUTES = 100
MAX_FOLLOW_UP_HORIZON = timedelta(days=50 * 365)


@dataclass(frozen=True)
class FollowUp:
    """An open "call back" task on a client's card."""

    task_id: UUID
    due_at: datetime
    assignee_id: str
    note: str = ""
    rung: bool = False
    """Whether it has fallen due (``FollowUpDue`` recorded)."""


def _check_choice(value: str, choices: tuple[str, ...], *, field: str) -> None:
    if value not in choices:
        raise InvalidValue(f"{field} {value!r} is not one of: {', '.join(choices)}", field=field)


class Client(CrmAggregate):
    """A person or company that showed interest, bought, left or came back."""

    creation = "the client was registered"

    class Event(CrmAggregate.Event):
        @property
        def subject_id(self) -> UUID | None:
            return self.originator_id

    class ClientRegistered(Event, CrmAggregate.Created):
        name: PersonalText
        kind: str
        company: PersonalOptionalText
        phones: PersonalTexts
        emails: PersonalTexts
        address: PersonalOptionalText
        channel: PersonalOptionalText
        """How the client came (free text): personal, as anything typed about them is."""
        attributes: Annotated[dict[str, str], PERSONAL]
        """Keys and values alike: a key can say as much as its value (``diagnosis_x``)."""
        owner_id: str | None

    class ClientDetailsChanged(Event):
        """``fields`` names the changed profile fields, in clear; ``attributes`` stands
        for every attribute changed, whose keys are only in ``old`` and ``new``
        (``{"attributes": {"vip": "yes"}}``): the keys are personal data too."""

        class_version = 2
        fields: tuple[str, ...]
        old: Annotated[dict[str, ChangedValue], PERSONAL]
        new: Annotated[dict[str, ChangedValue], PERSONAL]

        def apply(self, aggregate: Client) -> None:
            for name in self.fields:
                if name in self.new:  # not, once erased: the new values read as {}
                    aggregate._set_field(name, self.new[name])

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Version 1 named each changed attribute as a field of its own
            (``attributes.vip``), in clear."""
            state["fields"] = list(
                dict.fromkeys(
                    ATTRIBUTES if name.startswith(ATTRIBUTE_PREFIX) else name
                    for name in state["fields"]
                )
            )
            for side in ("old", "new"):
                values = state[side]
                changed = {
                    name.removeprefix(ATTRIBUTE_PREFIX): values.pop(name)
                    for name in list(values)
                    if name.startswith(ATTRIBUTE_PREFIX)
                }
                if changed:
                    values[ATTRIBUTES] = changed

    class ContactMade(Event):
        channel: str
        direction: str
        purpose: str
        summary: PersonalText
        outcome: PersonalText

        def apply(self, aggregate: Client) -> None:
            aggregate.contacts_count += 1

    class PurchaseMade(Event):
        amount: Decimal
        cost: Decimal
        currency: str
        deal_id: UUID | None

        def apply(self, aggregate: Client) -> None:
            aggregate.purchases_count += 1
            if aggregate.last_purchase_at is None or self.occurred_at > aggregate.last_purchase_at:
                aggregate.last_purchase_at = self.occurred_at

    class ClientLost(Event):
        reason: str
        note: PersonalText

        def apply(self, aggregate: Client) -> None:
            if aggregate.lost_at is None or self.occurred_at > aggregate.lost_at:
                aggregate.lost_at = self.occurred_at

    class OwnerAssigned(Event):
        owner_id: str
        previous_owner_id: str | None
        reason: str

        def apply(self, aggregate: Client) -> None:
            aggregate.owner_id = self.owner_id

    class FollowUpScheduled(Event):
        task_id: UUID
        due_at: datetime
        assignee_id: str
        note: PersonalText

        def apply(self, aggregate: Client) -> None:
            aggregate.follow_ups[self.task_id] = FollowUp(
                self.task_id, self.due_at, self.assignee_id, self.note
            )
            aggregate.follow_ups_count += 1

    class FollowUpCompleted(Event):
        task_id: UUID
        note: PersonalText

        def apply(self, aggregate: Client) -> None:
            aggregate.follow_ups.pop(self.task_id, None)

    class FollowUpCancelled(Event):
        task_id: UUID
        reason: PersonalText

        def apply(self, aggregate: Client) -> None:
            aggregate.follow_ups.pop(self.task_id, None)

    class FollowUpDue(Event):
        """An open follow-up's due instant came (recorded by the reminder timer, with
        the due instant as business time); what the assignee needs to act on it."""

        task_id: UUID
        due_at: datetime
        assignee_id: str
        note: PersonalText
        name: PersonalText
        phones: PersonalTexts

        def apply(self, aggregate: Client) -> None:
            task = aggregate.follow_ups.get(self.task_id)
            if task is not None:
                aggregate.follow_ups[self.task_id] = replace(task, rung=True)

    class LeadUnanswered(Event):
        """A lead was neither contacted nor given a follow-up within the response
        time (recorded by the timer, with the deadline as business time)."""

        registered_at: datetime
        deadline: datetime
        owner_id: str | None
        name: PersonalText
        phones: PersonalTexts

        def apply(self, aggregate: Client) -> None:
            aggregate.flagged_unanswered = True

    class ConsentGiven(Event):
        purpose: str
        """One of the declared purposes (``give_consent``): a closed set, in clear."""

        def apply(self, aggregate: Client) -> None:
            aggregate.consents.add(self.purpose)

    class ConsentWithdrawn(Event):
        purpose: str

        def apply(self, aggregate: Client) -> None:
            aggregate.consents.discard(self.purpose)

    class ProcessingRestricted(Event):
        reason: PersonalText

        def apply(self, aggregate: Client) -> None:
            aggregate.restricted = True

    class RestrictionLifted(Event):
        reason: PersonalText

        def apply(self, aggregate: Client) -> None:
            aggregate.restricted = False

    class PersonalDataErased(Event):
        reason: str
        """One of ``ERASURE_REASONS`` (free text before they were a closed set)."""

        def apply(self, aggregate: Client) -> None:
            aggregate.erased = True
            aggregate.follow_ups.clear()  # nobody calls an erased client back
            aggregate._forget_personal_data()

    class ClientMerged(Event):
        into_id: UUID

        def apply(self, aggregate: Client) -> None:
            aggregate.merged_into = self.into_id

    class DuplicateAbsorbed(Event):
        absorbed_id: UUID
        phones: PersonalTexts
        emails: PersonalTexts

        def apply(self, aggregate: Client) -> None:
            aggregate.phones = tuple(dict.fromkeys(aggregate.phones + self.phones))
            aggregate.emails = tuple(dict.fromkeys(aggregate.emails + self.emails))
            aggregate.absorbed_ids.append(self.absorbed_id)

    def __init__(
        self,
        *,
        name: str,
        kind: str,
        company: str | None,
        phones: tuple[str, ...],
        emails: tuple[str, ...],
        address: str | None,
        channel: str | None,
        attributes: dict[str, str],
        owner_id: str | None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.company = company
        self.phones = tuple(phones)
        self.emails = tuple(emails)
        self.address = address
        self.channel = channel
        self.attributes = dict(attributes)
        self.owner_id = owner_id
        self.contacts_count = 0
        self.purchases_count = 0
        self.last_purchase_at: datetime | None = None
        self.lost_at: datetime | None = None
        self.follow_ups: dict[UUID, FollowUp] = {}
        self.follow_ups_count = 0
        self.flagged_unanswered = False
        self.consents: set[str] = set()
        self.restricted = False
        self.erased = False
        self.merged_into: UUID | None = None
        self.absorbed_ids: list[UUID] = []

    # ----------------------------------------------------------------- commands

    @classmethod
    def register(
        cls,
        *,
        name: str,
        kind: str = "person",
        company: str | None = None,
        phones: tuple[str, ...] | list[str] = (),
        emails: tuple[str, ...] | list[str] = (),
        address: str | None = None,
        channel: str | None = None,
        attributes: Mapping[str, str] | None = None,
        owner_id: str | None = None,
    ) -> Self:
        """A person or company showed interest.

        Rules: the name is non-empty after trimming; phones are in E.164 (read from
        what a person wrote by ``application.phones``); emails are
        lower-cased and valid.
        """
        _check_choice(kind, CLIENT_KINDS, field="kind")
        return cls._create(
            cls.ClientRegistered,
            id=uuid4(),
            name=normalise_name(name),
            kind=kind,
            company=_optional_line(company, field="company"),
            phones=check_phones(phones),
            emails=normalise_emails(emails),
            address=_optional_line(address, field="address"),
            channel=_optional_line(channel, field="channel"),
            attributes=_check_attributes(attributes or {}),
            owner_id=owner_id,
        )

    def change_details(self, patch: Mapping[str, Any]) -> None:
        """Change profile fields; each changed field is recorded with its old and new
        value. Fields whose value does not change are left out; no change, no event.

        ``patch`` keys are ``name``, ``kind``, ``company``, ``address``, ``channel``,
        ``phones``, ``emails`` or ``attributes.<key>`` (``None`` removes an attribute);
        the changed attributes are recorded together as the field ``attributes``.
        """
        self._check_live()
        old: dict[str, ChangedValue] = {}
        new: dict[str, ChangedValue] = {}
        old_attributes: AttributeChanges = {}
        new_attributes: AttributeChanges = {}
        for name, raw in patch.items():
            value = self._normalise_field(name, raw)
            if name.startswith(ATTRIBUTE_PREFIX):
                key = name.removeprefix(ATTRIBUTE_PREFIX)
                if value != self.attributes.get(key):
                    assert not isinstance(value, tuple)
                    old_attributes[key] = self.attributes.get(key)
                    new_attributes[key] = value
                    # the field takes its place in the order of the first attribute changed
                    old.setdefault(ATTRIBUTES, old_attributes)
                    new.setdefault(ATTRIBUTES, new_attributes)
            elif value != getattr(self, name):
                old[name] = getattr(self, name)
                new[name] = value
        if len(self._attribute_keys_after(new_attributes)) > MAX_ATTRIBUTES:
            raise InvalidValue(
                f"a client has at most {MAX_ATTRIBUTES} attributes", field="attributes"
            )
        if not new:
            return
        self.trigger_event(self.ClientDetailsChanged, fields=tuple(new), old=old, new=new)

    def record_contact(
        self,
        *,
        channel: str,
        direction: str,
        summary: str = "",
        outcome: str = "",
        purpose: str = "sales",
    ) -> None:
        """An interaction with the client. Marketing contacts are refused while the
        client has restricted processing."""
        self._check_live()
        _check_choice(channel, CONTACT_CHANNELS, field="channel")
        _check_choice(direction, DIRECTIONS, field="direction")
        _check_choice(purpose, CONTACT_PURPOSES, field="purpose")
        if purpose == "marketing" and self.restricted:
            raise RuleViolation(
                "processing of this client's data is restricted: no marketing contacts",
                field="purpose",
            )
        self.trigger_event(
            self.ContactMade,
            channel=channel,
            direction=direction,
            purpose=purpose,
            summary=normalise_text(summary, field="summary"),
            outcome=normalise_text(outcome, field="outcome", limit=MAX_SHORT_TEXT),
        )

    def record_purchase(
        self,
        *,
        amount: Decimal,
        currency: str,
        books_currency: str,
        cost: Decimal = Decimal(0),
        deal_id: UUID | None = None,
    ) -> None:
        """Money came in. Rule: amounts are positive; cost is zero or positive (margin =
        amount - cost may be negative). A lost client can buy again: that is a return."""
        self._check_live()
        self.trigger_event(
            self.PurchaseMade,
            amount=check_amount(amount, field="amount"),
            cost=check_amount(cost, field="cost", allow_zero=True),
            currency=check_currency(currency, books=books_currency),
            deal_id=deal_id,
        )

    def mark_lost(self, *, reason: str, note: str = "") -> None:
        """The client left. Rule: a client already lost since the last purchase cannot
        be lost again; a purchase first makes them a client again."""
        self._check_live()
        _check_choice(reason, LOSS_REASONS, field="reason")
        if self.is_lost:
            raise RuleViolation("the client is already lost; no purchase since")
        self.trigger_event(self.ClientLost, reason=reason, note=normalise_text(note, field="note"))

    def assign_owner(self, owner_id: str, *, reason: str = "manual") -> None:
        """Responsibility moves to another manager; assigning the current owner is a
        no-op."""
        self._check_live()
        _check_choice(reason, ASSIGNMENT_REASONS, field="reason")
        if not owner_id.strip():
            raise InvalidValue("owner_id must not be empty", field="owner_id")
        if owner_id == self.owner_id:
            return
        self.trigger_event(
            self.OwnerAssigned,
            owner_id=owner_id,
            previous_owner_id=self.owner_id,
            reason=reason,
        )

    def schedule_follow_up(self, *, due_at: datetime, assignee_id: str, note: str = "") -> UUID:
        """ "Call back in 2 days at 14:39". Rule: a follow-up cannot be due before it was
        scheduled. Returns the new task's id."""
        self._check_live()
        if due_at.tzinfo is None or due_at.utcoffset() is None:
            raise InvalidValue("due_at must carry a timezone", field="due_at")
        if due_at < self._occurred_at():
            raise InvalidValue("a follow-up cannot be due before it is scheduled", field="due_at")
        if due_at > self._occurred_at() + MAX_FOLLOW_UP_HORIZON:
            raise InvalidValue("a follow-up is due within 50 years", field="due_at")
        if not assignee_id.strip():
            raise InvalidValue("assignee_id must not be empty", field="assignee_id")
        task_id = uuid5(self.id, f"follow-up/{self.version + 1}")
        self.trigger_event(
            self.FollowUpScheduled,
            task_id=task_id,
            due_at=due_at,  # with the offset it was given: the assignee's local time
            assignee_id=assignee_id,
            note=normalise_text(note, field="note"),
        )
        return task_id

    def complete_follow_up(self, task_id: UUID, *, note: str = "") -> None:
        """An open follow-up was done."""
        self._check_live()
        self._check_open_follow_up(task_id)
        self.trigger_event(
            self.FollowUpCompleted, task_id=task_id, note=normalise_text(note, field="note")
        )

    def cancel_follow_up(self, task_id: UUID, *, reason: str = "") -> None:
        """An open follow-up is no longer needed."""
        self._check_live()
        self._check_open_follow_up(task_id)
        self.trigger_event(
            self.FollowUpCancelled,
            task_id=task_id,
            reason=normalise_text(reason, field="reason", limit=MAX_SHORT_TEXT),
        )

    def mark_follow_up_due(self, task_id: UUID) -> None:
        """Rule: a follow-up falls due once, at its due instant, and only while it is
        open (never one completed or cancelled before). Anything else — not open,
        already due, not due yet — records nothing."""
        self._check_live()
        task = self.follow_ups.get(task_id)
        if task is None or task.rung or task.due_at > utc_now():
            return
        self.trigger_event(
            self.FollowUpDue,
            task_id=task_id,
            due_at=task.due_at,
            assignee_id=task.assignee_id,
            note=task.note,
            name=self.name,
            phones=self.phones,
        )

    def response_deadline(self, response_time: timedelta) -> datetime:
        """When a lead must have been answered: its registration plus the response
        time."""
        return self.born_at + response_time

    def flag_unanswered(self, *, response_time: timedelta) -> None:
        """Rule: "incoming requests get lost" — a lead neither contacted nor given a
        follow-up within ``response_time`` of its registration is flagged, once. Not a
        lead any more (it bought or was lost), answered, not yet past the deadline, or
        registered only after its deadline had passed (history brought in later,
        an import of old leads) — nothing is recorded."""
        self._check_live()
        deadline = self.response_deadline(response_time)
        if (
            self.flagged_unanswered
            or self.contacts_count
            or self.follow_ups_count
            or self.purchases_count
            or self.lost_at is not None
            or deadline > utc_now()
            or self.created_on >= deadline
        ):
            return
        self.trigger_event(
            self.LeadUnanswered,
            registered_at=self.born_at,
            deadline=deadline,
            owner_id=self.owner_id,
            name=self.name,
            phones=self.phones,
        )

    def give_consent(
        self, purpose: str, *, declared: Collection[str] = DEFAULT_CONSENT_PURPOSES
    ) -> None:
        """The client agreed to processing for ``purpose``, one of the purposes the
        business ``declared``; consent already given is a no-op."""
        self._check_live()
        _check_purpose(purpose, declared)
        if purpose not in self.consents:
            self.trigger_event(self.ConsentGiven, purpose=purpose)

    def withdraw_consent(
        self, purpose: str, *, declared: Collection[str] = DEFAULT_CONSENT_PURPOSES
    ) -> None:
        """The client withdrew consent for ``purpose``; only a given consent can be
        withdrawn — also one for a purpose the business no longer declares."""
        self._check_live()
        if purpose not in self.consents:
            _check_purpose(purpose, declared)
            raise RuleViolation(f"no consent for {purpose!r} to withdraw", field="purpose")
        self.trigger_event(self.ConsentWithdrawn, purpose=purpose)

    def restrict_processing(self, *, reason: str) -> None:
        """Restriction of processing: no marketing, no new deals; still readable."""
        self._check_live()
        if self.restricted:
            raise RuleViolation("processing is already restricted")
        self.trigger_event(
            self.ProcessingRestricted,
            reason=normalise_text(reason, field="reason", limit=MAX_SHORT_TEXT, required=True),
        )

    def lift_restriction(self, *, reason: str) -> None:
        """Processing may resume."""
        self._check_live()
        if not self.restricted:
            raise RuleViolation("processing is not restricted")
        self.trigger_event(
            self.RestrictionLifted,
            reason=normalise_text(reason, field="reason", limit=MAX_SHORT_TEXT, required=True),
        )

    def erase_personal_data(self, *, reason: str) -> None:
        """Erasure, for one of ``ERASURE_REASONS`` (kept in clear for auditors, so
        chosen from a closed set: free text could hold the personal data being erased).
        After erasure nothing more is recorded."""
        if self.erased:
            raise RuleViolation("the client's personal data is already erased")
        _check_choice(reason, ERASURE_REASONS, field="reason")
        self.trigger_event(self.PersonalDataErased, reason=reason)

    def absorb(self, duplicate: Client) -> None:
        """Merge ``duplicate`` (the same person on another card) into this client: its
        contact points join this card, and the duplicate is closed."""
        self._check_live()
        duplicate._check_live()
        if duplicate.id == self.id:
            raise RuleViolation("a client cannot be merged into itself")
        self._check_business_time()
        duplicate._check_business_time()
        open_tasks = list(duplicate.follow_ups)
        for task_id in open_tasks:
            duplicate.cancel_follow_up(task_id, reason=f"merged into {self.id}")
        duplicate.trigger_event(duplicate.ClientMerged, into_id=self.id)
        self.trigger_event(
            self.DuplicateAbsorbed,
            absorbed_id=duplicate.id,
            phones=tuple(p for p in duplicate.phones if p not in self.phones),
            emails=tuple(e for e in duplicate.emails if e not in self.emails),
        )

    def check_deals_may_change(self) -> None:
        """Rule: nothing but erasure may follow erasure, so the deals of an erased
        client change no more (their events would carry new data about them)."""
        if self.erased:
            raise RuleViolation(
                "the client's personal data was erased; their deals cannot change",
                field="deal_id",
            )

    def check_accepts_new_deal(self) -> None:
        """Rule: deals are opened for live clients whose processing is not restricted."""
        self._check_live()
        if self.restricted:
            raise RuleViolation(
                "processing of this client's data is restricted: no new deals",
                field="client_id",
            )

    # ------------------------------------------------------------------ queries

    @property
    def is_lost(self) -> bool:
        """Lost, and no purchase since (by business time)."""
        return self.lost_at is not None and (
            self.last_purchase_at is None or self.last_purchase_at <= self.lost_at
        )

    @property
    def is_live(self) -> bool:
        return not self.erased and self.merged_into is None

    @property
    def contact_points(self) -> frozenset[tuple[str, str]]:
        """``("phone", "+4930…")`` and ``("email", "…")`` pairs this client holds; a
        phone or email belongs to at most one live client."""
        if not self.is_live:
            return frozenset()
        return frozenset(
            [("phone", phone) for phone in self.phones]
            + [("email", email) for email in self.emails]
        )

    # ---------------------------------------------------------------- internals

    def _check_live(self) -> None:
        if self.erased:
            raise RuleViolation(
                "the client's personal data was erased; nothing more can be recorded"
            )
        if self.merged_into is not None:
            raise RuleViolation(f"the client was merged into {self.merged_into}")

    def _check_open_follow_up(self, task_id: UUID) -> None:
        if task_id not in self.follow_ups:
            raise RuleViolation(f"no open follow-up {task_id} on this client", field="task_id")

    def _normalise_field(self, name: str, raw: Any) -> FieldValue:
        if name.startswith(ATTRIBUTE_PREFIX):
            key = check_attribute_key(name.removeprefix(ATTRIBUTE_PREFIX), field=name)
            if raw is None:
                return None
            if not isinstance(raw, str):
                raise InvalidValue(f"{name} must be text or null", field=name)
            return normalise_text(raw, field=f"{ATTRIBUTE_PREFIX}{key}", limit=1000)
        if name not in PROFILE_FIELDS:
            raise InvalidValue(f"{name!r} is not a client field that can be changed", field=name)
        if name in ("phones", "emails"):
            if isinstance(raw, str) or not isinstance(raw, (list, tuple)):
                raise InvalidValue(f"{name} must be a list", field=name)
            if not all(isinstance(item, str) for item in raw):
                raise InvalidValue(f"{name} must be a list of text", field=name)
            return check_phones(raw) if name == "phones" else normalise_emails(raw)
        if raw is not None and not isinstance(raw, str):
            raise InvalidValue(f"{name} must be text", field=name)
        if name == "name":
            return normalise_name(raw or "")
        if name == "kind":
            _check_choice(raw or "", CLIENT_KINDS, field="kind")
            return raw
        return _optional_line(raw, field=name)

    def _set_field(self, name: str, value: ChangedValue) -> None:
        if name == ATTRIBUTES:
            assert isinstance(value, dict)
            for key, attribute in value.items():
                if attribute is None:
                    self.attributes.pop(key, None)
                else:
                    self.attributes[key] = attribute
        else:
            setattr(self, name, value)

    def _attribute_keys_after(self, changes: AttributeChanges) -> set[str]:
        keys = set(self.attributes)
        for key, value in changes.items():
            if value is None:
                keys.discard(key)
            else:
                keys.add(key)
        return keys

    def _forget_personal_data(self) -> None:
        self.name = ""
        self.company = None
        self.phones = ()
        self.emails = ()
        self.address = None
        self.channel = None
        self.attributes = {}


def _check_purpose(purpose: str, declared: Collection[str]) -> None:
    """Rule: consent is given for one of the purposes the business declared, never
    for free text (a purpose stays in clear after the client's erasure)."""
    if purpose not in declared:
        raise InvalidValue(
            f"purpose {purpose!r} is not one of the declared purposes: {', '.join(declared)}",
            field="purpose",
        )


def _optional_line(raw: str | None, *, field: str) -> str | None:
    text = normalise_text(raw, field=field, limit=MAX_SHORT_TEXT)
    return text or None


def _check_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidValue(f"a client has at most {MAX_ATTRIBUTES} attributes", field="attributes")
    checked: dict[str, str] = {}
    for raw_key, value in attributes.items():
        key = check_attribute_key(raw_key, field=f"{ATTRIBUTE_PREFIX}{raw_key}")
        if not isinstance(value, str):
            raise InvalidValue(f"attribute {key!r} must be text", field=f"{ATTRIBUTE_PREFIX}{key}")
        checked[key] = normalise_text(value, field=f"{ATTRIBUTE_PREFIX}{key}", limit=1000)
    return checked
