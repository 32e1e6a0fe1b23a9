"""Value rules shared by the aggregates: names, phones, emails, money, currency, slugs."""

from __future__ import annotations

from decimal import Decimal

import pytest

from domain.errors import InvalidValue
from domain.values import (
    check_amount,
    check_attribute_key,
    check_currency,
    check_phone,
    check_phones,
    check_slug,
    normalise_email,
    normalise_emails,
    normalise_name,
)

# ------------------------------------------------------------------------- names


def test_a_name_is_trimmed_and_its_inner_whitespace_collapsed() -> None:
    assert normalise_name("  Anna \t  Maria\nSchmidt  ") == "Anna Maria Schmidt"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n "])
def test_a_name_must_not_be_empty_after_trimming(raw: str) -> None:
    with pytest.raises(InvalidValue, match="must not be empty") as caught:
        normalise_name(raw)
    assert caught.value.field == "name"


def test_a_name_may_have_200_characters_but_not_201() -> None:
    assert normalise_name("  " + "a" * 200 + "  ") == "a" * 200
    with pytest.raises(InvalidValue, match="longer than 200") as caught:
        normalise_name("a" * 201)
    assert caught.value.field == "name"


@pytest.mark.parametrize(
    "raw", ["Anna\x00Schmidt", "Anna\x07", "\x1b[31mAnna", "Anna\x1cSchmidt", "Anna\x1f"]
)
def test_a_name_with_control_characters_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="control characters") as caught:
        normalise_name(raw)
    assert caught.value.field == "name"


def test_a_name_error_names_the_field_it_was_checked_for() -> None:
    with pytest.raises(InvalidValue) as caught:
        normalise_name(" ", field="title")
    assert caught.value.field == "title"


# ------------------------------------------------------------------------ phones


# The domain keeps stored phones canonical; reading what people type is
# application.phones' job (tests/unit/test_phones.py).


@pytest.mark.parametrize("value", ["+49301234567", "+1234567", "+123456789012345"])
def test_a_phone_in_e164_is_accepted_as_it_is(value: str) -> None:
    assert check_phone(value) == value


@pytest.mark.parametrize(
    "value",
    ["+49 30 1234567", "0049301234567", "030 1234567", "+123456", "+1234567890123456", "+0493012"],
)
def test_a_phone_not_in_e164_is_refused_by_the_domain(value: str) -> None:
    with pytest.raises(InvalidValue, match=r"E\.164") as caught:
        check_phone(value)
    assert caught.value.field == "phones"


def test_a_phone_error_names_the_field_it_was_checked_for() -> None:
    with pytest.raises(InvalidValue) as caught:
        check_phone("12", field="mobile")
    assert caught.value.field == "mobile"


def test_the_same_phone_twice_is_kept_once_in_first_seen_order() -> None:
    phones = check_phones(["+442079460958", "+49301234567", "+442079460958"])
    assert phones == ("+442079460958", "+49301234567")


# ------------------------------------------------------------------------ emails


def test_an_email_is_trimmed_and_lower_cased() -> None:
    assert normalise_email("  Anna.Schmidt@Example.COM ") == "anna.schmidt@example.com"


@pytest.mark.parametrize(
    "raw",
    ["anna+crm@example.com", "a@b.co", "o'neil@mail.example.co.uk", "x_y-z@sub-domain.example.org"],
)
def test_a_deliverable_looking_email_is_accepted(raw: str) -> None:
    assert normalise_email(raw) == raw


@pytest.mark.parametrize(
    "raw",
    [
        "anna",
        "anna@",
        "@example.com",
        "anna@example",
        "anna@@example.com",
        "an na@example.com",
        "anna..schmidt@example.com",
        ".anna@example.com",
        "anna.@example.com",
        "anna@-example.com",
        "anna@example-.com",
        "anna@exa_mple.com",
        "anna@example..com",
        "anna@example.com.",
    ],
)
def test_a_malformed_email_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="email") as caught:
        normalise_email(raw)
    assert caught.value.field == "emails"


def test_an_email_local_part_has_at_most_64_characters() -> None:
    assert normalise_email("a" * 64 + "@example.com") == "a" * 64 + "@example.com"
    with pytest.raises(InvalidValue, match="too long"):
        normalise_email("a" * 65 + "@example.com")


def test_an_email_has_at_most_254_characters() -> None:
    domain = ".".join(["d" * 60] * 4) + ".com"
    longest = "a" * (254 - len("@" + domain)) + "@" + domain
    assert len(longest) == 254
    assert normalise_email(longest) == longest
    with pytest.raises(InvalidValue, match="too long"):
        normalise_email("a" + longest)


def test_emails_differing_only_in_case_are_kept_once() -> None:
    emails = normalise_emails(["Anna@Example.com", "bob@example.com", "ANNA@example.COM"])
    assert emails == ("anna@example.com", "bob@example.com")


def test_an_email_error_names_the_field_it_was_checked_for() -> None:
    with pytest.raises(InvalidValue) as caught:
        normalise_emails(["ok@example.com", "broken"], field="work_emails")
    assert caught.value.field == "work_emails"


# ----------------------------------------------------------------------- amounts


@pytest.mark.parametrize("raw", ["0.0001", "1", "19.99", "999999999999.9999"])
def test_a_positive_amount_below_a_trillion_with_up_to_4_decimals_is_accepted(raw: str) -> None:
    assert check_amount(Decimal(raw), field="amount") == Decimal(raw)


def test_zero_is_refused_unless_allowed() -> None:
    with pytest.raises(InvalidValue, match="must be positive") as caught:
        check_amount(Decimal(0), field="amount")
    assert caught.value.field == "amount"
    assert check_amount(Decimal(0), field="cost", allow_zero=True) == Decimal(0)


@pytest.mark.parametrize("allow_zero", [False, True])
def test_a_negative_amount_is_always_refused(allow_zero: bool) -> None:
    with pytest.raises(InvalidValue, match="positive") as caught:
        check_amount(Decimal("-0.01"), field="cost", allow_zero=allow_zero)
    assert caught.value.field == "cost"


@pytest.mark.parametrize("raw", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_a_non_finite_amount_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="finite") as caught:
        check_amount(Decimal(raw), field="amount", allow_zero=True)
    assert caught.value.field == "amount"


def test_trailing_zeros_beyond_4_decimal_places_do_not_make_an_amount_too_precise() -> None:
    amount = check_amount(Decimal("1.50000"), field="amount")
    assert amount == Decimal("1.5")
    assert str(amount) == "1.5000"


def test_an_amount_with_more_than_4_decimal_places_is_refused() -> None:
    with pytest.raises(InvalidValue, match="more than 4 decimal places") as caught:
        check_amount(Decimal("10.00001"), field="amount")
    assert caught.value.field == "amount"


@pytest.mark.parametrize("raw", ["1000000000000", "1000000000000.0001", "5E+12"])
def test_an_amount_of_a_trillion_or_more_is_refused(raw: str) -> None:
    with pytest.raises(InvalidValue, match="below") as caught:
        check_amount(Decimal(raw), field="amount")
    assert caught.value.field == "amount"


def test_something_that_is_not_a_number_is_refused_as_an_amount() -> None:
    with pytest.raises(InvalidValue, match="decimal number") as caught:
        check_amount("twelve", field="amount")  # type: ignore[arg-type]
    assert caught.value.field == "amount"


# ---------------------------------------------------------------------- currency


def test_the_books_currency_is_accepted() -> None:
    assert check_currency("EUR", books="EUR") == "EUR"


@pytest.mark.parametrize("code", ["eur", "EURO", "EU", "E1R", "", "\u0415UR"])
def test_a_currency_must_be_three_upper_case_letters(code: str) -> None:
    with pytest.raises(InvalidValue, match="3-letter") as caught:
        check_currency(code, books="EUR")
    assert caught.value.field == "currency"


def test_a_well_formed_currency_other_than_the_books_currency_is_refused() -> None:
    with pytest.raises(InvalidValue, match="books amounts in EUR") as caught:
        check_currency("USD", books="EUR")
    assert caught.value.field == "currency"


# ------------------------------------------------------------------------- slugs


@pytest.mark.parametrize("value", ["lead", "a", "follow_up_2", "x" * 40])
def test_a_slug_is_1_to_40_lower_case_letters_digits_or_underscores(value: str) -> None:
    assert check_slug(value, field="stage") == value


@pytest.mark.parametrize(
    "value", ["", "Lead", "2nd_call", "_lead", "follow-up", "two words", "x" * 41, "lead\n", "é"]
)
def test_a_slug_that_does_not_start_with_a_letter_or_has_other_characters_is_refused(
    value: str,
) -> None:
    with pytest.raises(InvalidValue, match="lower-case") as caught:
        check_slug(value, field="stage")
    assert caught.value.field == "stage"


# ------------------------------------------------------------ attribute keys


@pytest.mark.parametrize("key", ["city", "shoe_size2", "місто", "город", "städte", "ім_я"])
def test_an_attribute_key_may_be_lower_case_letters_of_any_alphabet(key: str) -> None:
    assert check_attribute_key(key, field="attributes") == key


@pytest.mark.parametrize(
    "key", ["", "Місто", "City", "2nd", "_x", "shoe size", "bad-key", "x" * 41, "ряд\u0663"]
)
def test_an_attribute_key_with_upper_case_spaces_or_signs_is_refused(key: str) -> None:
    with pytest.raises(InvalidValue, match="lower-case letters") as caught:
        check_attribute_key(key, field=f"attributes.{key}")
    assert caught.value.field == f"attributes.{key}"


def test_an_attribute_key_is_kept_in_composed_form() -> None:
    decomposed = "ии\u0306"  # "ий" typed as и + combining breve
    assert check_attribute_key(decomposed, field="attributes") == "ий"
