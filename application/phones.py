"""Phone numbers as people write them, read into E.164 by Google's libphonenumber
(the ``phonenumbers`` package).

The domain only guards what it stores (``domain.values.check_phone``: '+', a country
code and 7 to 15 digits in all); reading what a person typed — national numbers such
as ``067 111 22 33``, trunk prefixes, ``00`` or ``8~10`` international prefixes,
brackets and dashes — needs the numbering plans of every country, which is data, not
a rule, and is done here before a command reaches the domain. A national number needs
a country to be read in: ``CRM_DEFAULT_COUNTRY`` (or an import's ``--country``);
without one it is refused, never guessed.
"""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from domain.errors import InvalidValue

SUPPORTED_COUNTRIES = frozenset(phonenumbers.SUPPORTED_REGIONS)
"""ISO 3166 alpha-2 codes libphonenumber has a numbering plan for."""


def parse_phone(raw: str, *, country: str | None, field: str = "phones") -> str:
    """``raw`` in E.164, read as a number of ``country`` when it has no country code.

    Raises ``InvalidValue`` naming ``field``: for text that is no phone number, a
    national number with no ``country`` to read it in (naming the setting), or a
    number that cannot exist in its country's numbering plan (a digit too many or
    too few, an unused range).
    """
    return _parse(raw.strip(), country, field)


@lru_cache(maxsize=65_536)  # an import repeats numbers (purchases name their client by phone)
def _parse(text: str, country: str | None, field: str) -> str:
    if any(ch.isalpha() for ch in text):  # "ext. 5", "CALL NOW": not read as digits
        raise InvalidValue(f"phone {text!r} has letters in it; write the number alone", field=field)
    if not country and text.startswith("00"):
        text = "+" + text[2:]  # the international prefix of most of the world
    try:
        number = phonenumbers.parse(text, country)
    except phonenumbers.NumberParseException as error:
        if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            if not country and not text.startswith("+"):
                raise InvalidValue(
                    f"phone {text!r} has no country code: write it as +<country code> "
                    "<number>, or set CRM_DEFAULT_COUNTRY (crm import --country) to the "
                    "country its national numbers are from",
                    field=field,
                ) from None
            raise InvalidValue(f"phone {text!r} has an unknown country code", field=field) from None
        raise InvalidValue(f"phone {text!r} is not a phone number", field=field) from None
    if not phonenumbers.is_valid_number(number):
        region = phonenumbers.region_code_for_number(number)
        where = f" in {region}" if region and region != "ZZ" else ""
        raise InvalidValue(
            f"phone {text!r} is not a valid number{where} (a digit missing or too many?)",
            field=field,
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_phones(
    raws: tuple[str, ...] | list[str], *, country: str | None, field: str = "phones"
) -> tuple[str, ...]:
    """Each phone in E.164, duplicates dropped, first-seen order kept."""
    return tuple(dict.fromkeys(parse_phone(raw, country=country, field=field) for raw in raws))
