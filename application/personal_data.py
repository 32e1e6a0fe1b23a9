"""Who may read personal values — in one place, so that the permission table
(``read_personal``) can take over from it.

Today: admins and auditors read every client's personal values; a manager reads
those of their own clients and of unassigned leads; services read none.
"""

from __future__ import annotations

from application.access import Principal

PERSONAL_READERS = frozenset({"admin", "auditor"})
"""Roles that read every client's personal values."""


def reads_personal(principal: Principal, owner_id: str | None = None) -> bool:
    """Whether ``principal`` may read the personal values of a client owned by
    ``owner_id`` (``None``: unassigned)."""
    if principal.role in PERSONAL_READERS:
        return True
    return principal.role == "manager" and owner_id in (None, principal.user_id)


def reads_everyones_personal(role: str) -> bool:
    """Whether a role may read every client's personal values (what a webhook
    subscription carrying personal fields needs: it is about every client)."""
    return role in PERSONAL_READERS
