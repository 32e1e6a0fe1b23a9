"""What a console user may see: the API's role sets, asked through one function.

The console checks nothing of its own: each page asks ``may`` for the permission the
API route it mirrors needs, named as in the permission table of SPEC §8; what a
manager sees of a client is decided by ``Principal.sees``, and which clients a list
holds by ``own_records_of``, as in the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from application.access import AUDIT_READERS, EXPORTERS, FEED_READERS, READERS, WRITERS, Principal

Need = Literal["read_models", "read_personal", "audit", "operations", "export"]

_ROLES: Mapping[Need, frozenset[str]] = {
    "read_models": READERS,  # the read models, as GET /lifecycle, /funnel, /kpis, /clients
    "read_personal": WRITERS | AUDIT_READERS,  # personal values, as GET /clients/{id}/history
    "audit": AUDIT_READERS,  # the audit trail and the chain, as GET /audit
    "operations": FEED_READERS,  # read models' positions and lag, as GET /metrics
    "export": EXPORTERS,  # files of many records, as GET /audit?format=csv
}


def may(principal: Principal, need: Need) -> bool:
    """Whether ``principal``'s role has what ``need`` names."""
    return principal.role in _ROLES[need]


def own_records_of(principal: Principal) -> str | None:
    """Whose records alone a list shows ``principal`` (``None``: everyone's), as the
    API's directory decides it: a manager's own and unassigned leads."""
    return principal.user_id if principal.role == "manager" else None
