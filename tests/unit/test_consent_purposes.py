"""The purposes a client may consent to are a closed set the business declares
(``CRM_CONSENT_PURPOSES``), because a purpose stays in clear after the client's erasure."""

from __future__ import annotations

import pytest

from application.settings import Settings, SettingsError
from domain.client import DEFAULT_CONSENT_PURPOSES


def test_without_a_declaration_the_default_purposes_apply() -> None:
    assert Settings.from_env({}).consent_purposes == DEFAULT_CONSENT_PURPOSES


def test_the_business_declares_its_purposes_as_comma_separated_slugs() -> None:
    declared = Settings.from_env({"CRM_CONSENT_PURPOSES": " newsletter, loyalty_club,newsletter"})

    assert declared.consent_purposes == ("newsletter", "loyalty_club")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "name at least one purpose"),
        (" , ", "name at least one purpose"),
        ("newsletter,Calls from Anna", "'Calls from Anna': a purpose is 1-40 lower-case"),
    ],
)
def test_a_declaration_that_is_not_a_list_of_slugs_stops_the_start(
    value: str, problem: str
) -> None:
    with pytest.raises(SettingsError, match=f"CRM_CONSENT_PURPOSES: .*{problem}"):
        Settings.from_env({"CRM_CONSENT_PURPOSES": value})
