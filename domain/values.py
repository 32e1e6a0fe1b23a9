"""Value rules shared by the aggregates: names, phones, emails, money, free text.

Each ``normalise_*`` function returns the canonical form or raises ``InvalidValue``
naming the field, so a command either records clean data or nothing at all.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Annotated

from domain.errors import InvalidValue


class Personal:
    """Marks an event field as personal data (encrypted per client, erasable)."""

    def __repr__(self) -> str:
        return "PERSONAL"


PERSONAL = Personal()

PersonalText = Annotated[str, PERSONAL]
PersonalOptionalText = Annotated[str | None, PERSONAL]
PersonalTexts = Annotated[tuple[str, ...], PERSONAL]

MAX_NAME = 200
MAX_SHORT_TEXT = 500
MAX_LONG_TEXT = 10_000
MAX_AMOUNT = Decimal("1000000000000")  # 10^12: beyond any plausible single purchase
MAX_AMOUNT_DECIMALS = 4
_SMALLEST_UNIT = Decimal(1).scaleb(-MAX_AMOUNT_DECIMALS)

_PHONE_FORMATTING = re.compile(r"[\s().\-/\u00a0]")
_E164_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
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


def normalise_phone(raw: str, *, field: str = "phones") -> str:
    """Phones are stored in E.164: '+', a country code and at most 15 digits in all.

    Spaces, dots, dashes, slashes and brackets are formatting and are dropped; a
    leading international prefix '00' reads as '+'. A number without a country code
    cannot be placed in E.164 and is refused rather than guessed.
    """
    compact = _PHONE_FORMATTING.sub("", raw.strip())
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if not compact.startswith("+"):
        raise InvalidValue(
            f"phone {raw!r} must be in international format (+<country code><number>)",
            field=field,
        )
    digits = compact[1:]
    if not _E164_DIGITS.fullmatch(digits):
        raise InvalidValue(
            f"phone {raw!r} is not a valid E.164 number (7 to 15 digits after '+')",
            field=field,
        )
    return "+" + digits


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


def normalise_phones(
    raws: tuple[str, ...] | list[str], *, field: str = "phones"
) -> tuple[str, ...]:
    """Each phone normalised, duplicates dropped, first-seen order kept."""
    return tuple(dict.fromkeys(normalise_phone(raw, field=field) for raw in raws))


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
