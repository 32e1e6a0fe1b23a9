"""Value rules shared by the aggregates: names, phones, emails, money, free text.

Each ``normalise_*`` function returns the canonical form or raises ``InvalidValue``
naming the field, so a command either records clean data or nothing at all.
"""

from __future__ import annotations

import re
import typing
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from domain.errors import InvalidValue


class Personal:
    """Marks an event field as personal data (encrypted per client, erasable)."""

    def __repr__(self) -> str:
        return "PERSONAL"


PERSONAL = Personal()

PersonalText = Annotated[str, PERSONAL]
PersonalOptionalText = Annotated[str | None, PERSONAL]
PersonalTexts = Annotated[tuple[str, ...], PERSONAL]


def personal_fields(event_class: type[Any]) -> frozenset[str]:
    """The fields of an event class marked ``PERSONAL``: the one list of what is
    personal data, which the audit trail's purge and every read that withholds
    personal values go by."""
    found = _personal.get(event_class)
    if found is None:
        hints = typing.get_type_hints(event_class, include_extras=True)
        found = _personal[event_class] = frozenset(
            name
            for name, hint in hints.items()
            if typing.get_origin(hint) is typing.Annotated
            and any(isinstance(mark, Personal) for mark in hint.__metadata__)
        )
    return found


_personal: dict[type[Any], frozenset[str]] = {}


MAX_NAME = 200
MAX_SHORT_TEXT = 500
MAX_LONG_TEXT = 10_000
MAX_AMOUNT = Decimal("1000000000000")  # 10^12: beyond any plausible single purchase
MAX_AMOUNT_DECIMALS = 4
_SMALLEST_UNIT = Decimal(1).scaleb(-MAX_AMOUNT_DECIMALS)

_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_EMAIL_LOCAL = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_CURRENCY = re.compile(r"[A-Z]{3}")
SLUG = re.compile(r"[a-z][a-z0-9_]{0,39}")
"""Identifiers chosen by people: stages, consent purposes, attribute keys."""


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in "\n\t" for ch in text)


def normalise_name(raw: str, *, field: str = "name") -> str:
    """Names are non-empty after trimming, at most 200 characters, one line (runs of
    spaces, tabs and newlines become one space; other control characters are refused)."""
    if _has_control_characters(raw):
        raise InvalidValue(f"{field} contains control characters", field=field)
    name = " ".join(raw.split())
    if not name:
        raise InvalidValue(f"{field} must not be empty", field=field)
    if len(name) > MAX_NAME:
        raise InvalidValue(f"{field} is longer than {MAX_NAME} characters", field=field)
    return name


def normalise_text(
    raw: str | None, *, field: str, limit: int = MAX_LONG_TEXT, required: bool = False
) -> str:
    """Free text: trimmed, bounded, without control characters other than newline and tab."""
    text = (raw or "").strip()
    if required and not text:
        raise InvalidValue(f"{field} must not be empty", field=field)
    if len(text) > limit:
        raise InvalidValue(f"{field} is longer than {limit} characters", field=field)
    if _has_control_characters(text):
        raise InvalidValue(f"{field} contains control characters", field=field)
    return text


def check_phone(value: str, *, field: str = "phones") -> str:
    """Phones are stored in E.164: '+', a country code and 7 to 15 digits in all, and
    nothing else. Reading a number as a person wrote it (spaces, brackets, national
    formats) is done before a command reaches the domain (``application.phones``),
    with every country's numbering plan; the domain only keeps what it stores
    canonical."""
    if not _E164.fullmatch(value):
        raise InvalidValue(
            f"phone {value!r} is not in E.164 ('+', the country code and the number, "
            "7 to 15 digits in all, no spaces)",
            field=field,
        )
    return value


def normalise_email(raw: str, *, field: str = "emails") -> str:
    """Emails are lower-cased and must look deliverable: local@domain.tld."""
    email = raw.strip().lower()
    local, at, domain = email.rpartition("@")
    problem = None
    if not at or not local or not domain:
        problem = "must look like name@example.com"
    elif len(email) > 254 or len(local) > 64:
        problem = "is too long"
    elif not _EMAIL_LOCAL.fullmatch(local):
        problem = "has characters not allowed before the '@'"
    else:
        labels = domain.split(".")
        if len(labels) < 2 or not all(_DOMAIN_LABEL.fullmatch(label) for label in labels):
            problem = "has an invalid domain"
    if problem:
        raise InvalidValue(f"email {raw!r} {problem}", field=field)
    return email


def check_phones(values: tuple[str, ...] | list[str], *, field: str = "phones") -> tuple[str, ...]:
    """Each phone checked, duplicates dropped, first-seen order kept."""
    return tuple(dict.fromkeys(check_phone(value, field=field) for value in values))


def normalise_emails(
    raws: tuple[str, ...] | list[str], *, field: str = "emails"
) -> tuple[str, ...]:
    """Each email normalised, duplicates dropped, first-seen order kept."""
    return tuple(dict.fromkeys(normalise_email(raw, field=field) for raw in raws))


def check_amount(value: Decimal, *, field: str, allow_zero: bool = False) -> Decimal:
    """Money amounts are finite decimals with at most 4 places, positive (or zero when
    allowed) and below 10^12."""
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise InvalidValue(f"{field} must be a decimal number", field=field) from None
    if not amount.is_finite():
        raise InvalidValue(f"{field} must be a finite number", field=field)
    if amount < 0 or (amount == 0 and not allow_zero):
        raise InvalidValue(
            f"{field} must be {'zero or ' if allow_zero else ''}positive", field=field
        )
    if amount >= MAX_AMOUNT:
        raise InvalidValue(f"{field} must be below {MAX_AMOUNT}", field=field)
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_AMOUNT_DECIMALS:
        places = amount.quantize(_SMALLEST_UNIT)
        if places != amount:
            raise InvalidValue(
                f"{field} has more than {MAX_AMOUNT_DECIMALS} decimal places", field=field
            )
        amount = places  # "1.50000" is 1.5: only trailing zeros went beyond 4 places
    return amount


def check_currency(code: str, *, books: str, field: str = "currency") -> str:
    """Amounts are booked in the business's one currency (a 3-letter ISO 4217 code)."""
    if not _CURRENCY.fullmatch(code):
        raise InvalidValue(f"currency {code!r} must be a 3-letter ISO code", field=field)
    if code != books:
        raise InvalidValue(
            f"this CRM books amounts in {books}; {code} cannot be recorded", field=field
        )
    return code


def check_slug(value: str, *, field: str) -> str:
    """Identifiers chosen by people (stages, consent purposes, attribute keys)."""
    if not SLUG.fullmatch(value):
        raise InvalidValue(
            f"{field} {value!r} must be 1-40 lower-case letters, digits or '_', "
            "starting with a letter",
            field=field,
        )
    return value


MAX_ATTRIBUTE_KEY = 40


def check_attribute_key(value: str, *, field: str) -> str:
    """A custom attribute's key, chosen by people in their own language (``city``,
    ``місто``, ``город``): 1-40 letters of any script, digits or '_', starting with a
    letter, none upper-case (so ``Місто`` and ``місто`` cannot be two keys). Keys are
    compared in Unicode's composed form (NFC)."""
    key = unicodedata.normalize("NFC", value)
    if (
        not 0 < len(key) <= MAX_ATTRIBUTE_KEY
        or not key[0].isalpha()
        or not all((ch.isalnum() and ch.isascii()) or ch.isalpha() or ch == "_" for ch in key)
        or any(ch.isupper() for ch in key)
    ):
        raise InvalidValue(
            f"{field} {value!r} must be 1-{MAX_ATTRIBUTE_KEY} lower-case letters (of any "
            "alphabet), digits or '_', starting with a letter",
            field=field,
        )
    return key
