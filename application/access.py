"""Who may see and change what (SPEC §6 roles, §8 "permissions in one table"): the
permission table, and the rules the use cases and the API derive from it.

* Every route declares the one permission it needs (``api.http.auth.requires``);
  the roles that have it are read from ``ROLE_PERMISSIONS`` and nowhere else.
* Without ``read_personal`` no personal value is sent: reads leave personal fields
  out and name them. With it, a read of many records at once is counted against
  the export limit and recorded (``application.exports``).
* A role that may change only its own records (``write_own`` without
  ``write_any``: managers) also reads only its own records and figures, and
  unassigned leads. Another manager's client does not exist for them (404, not
  403), so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from application.errors import NotFound, PermissionDenied


class Permission(StrEnum):
    READ_MODELS = "read_models"
    """Cards, lifecycle, funnel, KPIs, work queue, pipelines, deals, a client's
    events — without personal values unless ``read_personal`` too."""
    READ_PERSONAL = "read_personal"
    """Personal values (names, phones, emails, notes…) in what one reads."""
    EXPORT = "export"
    """Files of many records (CSV, JSON Lines) and a subject's data export."""
    AUDIT = "audit"
    """What happened across the whole store, which cannot be cut down to one
    manager's records: the audit trail, the event feed, the metrics."""
    WRITE_OWN = "write_own"
    """Record what happens to one's own clients and deals and unassigned leads."""
    WRITE_ANY = "write_any"
    """The same for anyone's clients and deals."""
    ADMIN = "admin"
    """Erasure, restriction of processing, pipelines."""


ROLE_PERMISSIONS: Mapping[str, frozenset[Permission]] = MappingProxyType(
    {
        "admin": frozenset(Permission),
        "manager": frozenset(
            {Permission.READ_MODELS, Permission.READ_PERSONAL, Permission.WRITE_OWN}
        ),
        "auditor": frozenset(
            {
                Permission.READ_MODELS,
                Permission.READ_PERSONAL,
                Permission.EXPORT,
                Permission.AUDIT,
            }
        ),
        "service": frozenset({Permission.READ_MODELS, Permission.AUDIT}),
    }
)
"""The permission table: what each role may do. ``README.md`` shows it; a test holds
the two equal."""

ROLES: tuple[str, ...] = tuple(ROLE_PERMISSIONS)
OWNER_ROLES: tuple[str, ...] = tuple(
    role for role, granted in ROLE_PERMISSIONS.items() if Permission.WRITE_OWN in granted
)
"""Roles whose users may own clients, deals and follow-ups."""


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request (or the actor of a command)."""

    user_id: str
    role: str

    @property
    def permissions(self) -> frozenset[Permission]:
        """What the role may do; nothing for a role the table does not know."""
        return ROLE_PERMISSIONS.get(self.role, frozenset())

    def may(self, permission: Permission) -> bool:
        return permission in self.permissions

    def require(self, permission: Permission) -> None:
        """Raise ``PermissionDenied`` unless the role has ``permission``."""
        if not self.may(permission):
            raise PermissionDenied(self.role, permission.value)

    @property
    def own_records_only(self) -> bool:
        """Rule: who may change only their own records (``write_own`` without
        ``write_any``) reads only their own records and figures too. The system and
        the command line, outside the table, are not limited."""
        granted = self.permissions
        return Permission.WRITE_OWN in granted and Permission.WRITE_ANY not in granted

    def sees(self, owner_id: str | None) -> bool:
        """Rule: managers see their own records and unassigned leads."""
        return not self.own_records_only or owner_id in (None, self.user_id)

    def check_sees(self, kind: str, record_id: object, owner_id: str | None) -> None:
        if not self.sees(owner_id):
            raise NotFound(kind, str(record_id))

    def figures_of(self, owner_id: str | None) -> str | None:
        """Whose figures a read covers (funnel, lifecycle, KPIs, work queue,
        activity): a manager's own, whether or not they name themselves — naming
        someone else is a ``NotFound``, as another manager's client is; for the
        others, the owner asked for (``None``: everyone's)."""
        if not self.own_records_only:
            return owner_id
        if owner_id not in (None, self.user_id):
            raise NotFound("manager", str(owner_id))
        return self.user_id

    def default_owner(self) -> str | None:
        """A manager who registers a lead takes it; others leave it to round-robin."""
        return self.user_id if self.own_records_only else None
