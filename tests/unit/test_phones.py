"""Phones as people write them, read into E.164 (application.phones)."""

from __future__ import annotations

import pytest

from application.phones import parse_phone, parse_phones
from domain.errors import InvalidValue


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+49 30 1234567", "+49301234567"),
        ("+49 (30) 123-45-67", "+49301234567"),
        ("+49.30.123/4567", "+49301234567"),
        ("+49\u00a030\u00a01234567", "+49301234567"),
        ("  +44 20 7946 0958  ", "+442079460958"),
        ("+380 (67) 111-22-33", "+380671112233"),
    ],
)
def test_phone_formatting_is_dropped_to_reach_e164(raw: str, expected: str) -> None:
    assert parse_phone(raw, country=None) == expected


def test_a_leading_00_international_prefix_reads_as_plus_without_a_country() -> None:
    assert parse_phone("0049 30 1234567", country=None) == "+49301234567"


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("067 111 22 33", "UA", "+380671112233"),
        ("(067) 111-22-33", "UA", "+380671112233"),
        ("0671112233", "UA", "+380671112233"),
        ("+380671112233", "UA", "+380671112233"),
        ("030 1234567", "DE", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("+49 30 1234567", "UA", "+49301234567"),  # a country code wins over the default
    ],
)
def test_a_national_number_is_read_in_the_default_country(
    raw: str, country: str, expected: str
) -> None:
    assert parse_phone(raw, country=country) == expected


@pytest.mark.parametrize("raw", ["030 1234567", "067 111 22 33", "(030) 123-4567"])
def test_a_national_number_without_a_default_country_is_refused_naming_the_setting(
    raw: str,
) -> None:
    with pytest.raises(InvalidValue, match="CRM_DEFAULT_COUNTRY") as caught:
        parse_phone(raw, country=None)
    assert caught.value.field == "phones"


@pytest.mark.parametrize("raw", ["+380 67 111 22", "067 111 22 3", "+49 30 1", "+123456"])
def test_a_number_that_cannot_exist_in_its_numbering_plan_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="not a valid number"):
        parse_phone(raw, country="UA")


@pytest.mark.parametrize("raw", ["+49 30 CALL NOW", "+49 30 1234567 ext 5", "+", "", "n/a"])
def test_a_phone_with_letters_or_no_digits_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_phone(raw, country="DE")
    assert caught.value.field == "phones"


def test_a_phone_error_names_the_field_it_was_checked_for() -> None:
    with pytest.raises(InvalidValue) as caught:
        parse_phone("12", country=None, field="mobile")
    assert caught.value.field == "mobile"


def test_phones_that_read_as_the_same_number_are_kept_once_in_first_seen_order() -> None:
    phones = parse_phones(["+44 20 7946 0958", "+49 30 1234567", "0049-30-1234567"], country=None)
    assert phones == ("+442079460958", "+49301234567")
