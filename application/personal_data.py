"""Who may read personal values, from the permission table (``read_personal``).

Admins and auditors read every client's personal values; a manager those of their
own clients and of unassigned leads (``Principal.sees``); services none.
"""

from __future__ import annotations

from application.access import Permission, Principal


def reads_personal(principal: Principal, owner_id: str | None = None) -> bool:
    """Whether ``principal`` may read the personal values of a client owned by
    ``owner_id`` (``None``: unassigned)."""
    return principal.may(Permission.READ_PERSONAL) and principal.sees(owner_id)


def reads_everyones_personal(role: str) -> bool:
    """Whether a role may read every client's personal values (what a webhook
    subscription carrying personal fields needs: it is about every client)."""
    anyone = Principal("", role)
    return anyone.may(Permission.READ_PERSONAL) and not anyone.own_records_only
