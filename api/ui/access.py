"""What a console user may see: the API's permission table, asked through one function.

The console checks nothing of its own: each page asks ``may`` for what the API route
it mirrors needs (``application.access``, SPEC §8); what a manager sees of a client is
decided by ``Principal.sees``, and which clients a list holds by ``own_records_of``,
as in the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from application.access import Permission, Principal

Need = Literal["read_models", "read_personal", "audit", "operations", "export"]

_PERMISSIONS: Mapping[Need, frozenset[Permission]] = {
    "read_models": frozenset({Permission.READ_MODELS}),  # as GET /lifecycle, /funnel, /kpis
    "read_personal": frozenset({Permission.READ_PERSONAL}),  # as GET /clients/{id}/history
    # The audit pages show changed values in clear: the audit permission, and the
    # permission to read personal values (the API withholds them instead).
    "audit": frozenset({Permission.AUDIT, Permission.READ_PERSONAL}),
    "operations": frozenset({Permission.AUDIT}),  # positions and lag, as GET /metrics
    "export": frozenset({Permission.EXPORT}),  # files of many records, as /audit?format=csv
}


def may(principal: Principal, need: Need) -> bool:
    """Whether ``principal``'s role has every permission ``need`` names."""
    return all(principal.may(permission) for permission in _PERMISSIONS[need])


def own_records_of(principal: Principal) -> str | None:
    """Whose records alone a list shows ``principal`` (``None``: everyone's), as the
    API's directory decides it: a manager's own and unassigned leads."""
    return principal.user_id if principal.own_records_only else None
