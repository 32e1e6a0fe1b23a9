"""The permission table (``application/access.py``) and the rules derived from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from application.access import OWNER_ROLES, ROLE_PERMISSIONS, ROLES, Permission, Principal
from application.errors import NotFound, PermissionDenied

README = Path(__file__).parents[2] / "README.md"
_HEADER = re.compile(r"^\s*\| permission \|(?P<roles>.*)\| allows \|$")
_ROW = re.compile(r"^\s*\| `(?P<permission>\w+)` \|(?P<marks>.*?)\|(?P<allows>[^|]*)\|$")


def _readme_table() -> dict[str, frozenset[Permission]]:
    """The role matrix shown in the README, as role -> permissions."""
    lines = README.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if _HEADER.match(line))
    header = _HEADER.match(lines[start])
    assert header is not None
    roles = [role.strip() for role in header["roles"].split("|")]
    granted: dict[str, set[Permission]] = {role: set() for role in roles}
    for line in lines[start + 2 :]:
        row = _ROW.match(line.replace("\\|", "/"))
        if row is None:
            break
        marks = [mark.strip() for mark in row["marks"].split("|")]
        assert len(marks) == len(roles), line
        for role, mark in zip(roles, marks, strict=True):
            assert mark in ("✓", ""), line
            if mark:
                granted[role].add(Permission(row["permission"]))
    return {role: frozenset(permissions) for role, permissions in granted.items()}


def test_the_readme_shows_the_permission_table_the_code_enforces() -> None:
    assert _readme_table() == dict(ROLE_PERMISSIONS)


def test_every_role_a_user_may_have_has_a_row_and_only_managers_and_admins_own() -> None:
    assert ROLES == ("admin", "manager", "auditor", "service")
    assert OWNER_ROLES == ("admin", "manager")
    assert ROLE_PERMISSIONS["admin"] == frozenset(Permission)


def test_a_role_that_writes_only_its_own_records_reads_only_its_own_figures() -> None:
    mia = Principal("mia", "manager")
    assert mia.own_records_only
    assert mia.figures_of(None) == mia.figures_of("mia") == "mia"
    with pytest.raises(NotFound):
        mia.figures_of("max")
    assert mia.sees(None)
    assert mia.sees("mia")
    assert not mia.sees("max")
    for other in ("admin", "auditor", "service", "system"):
        someone = Principal("x", other)
        assert not someone.own_records_only
        assert someone.figures_of(None) is None
        assert someone.figures_of("max") == "max"
        assert someone.sees("max")


def test_a_refusal_names_the_role_and_the_missing_permission() -> None:
    with pytest.raises(PermissionDenied) as refused:
        Principal("svc", "service").require(Permission.READ_PERSONAL)
    assert refused.value.message == "the service role does not have the read_personal permission"
    Principal("aud", "auditor").require(Permission.EXPORT)
    assert not Principal("x", "unknown").may(Permission.READ_MODELS)
