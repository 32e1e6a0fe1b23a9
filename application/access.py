"""Who may see and change what (SPEC §6 roles), as rules the use cases and the API
share.

* ``admin``: everything. ``auditor``: reads everything, writes nothing.
  ``service``: reads the read models and the event feed.
* ``manager``: their own clients and deals, and unassigned leads. Another manager's
  client does not exist for them (404, not 403), so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass

from application.errors import NotFound

READERS = frozenset({"admin", "manager", "auditor", "service"})
WRITERS = frozenset({"admin", "manager"})
EXPORTERS = frozenset({"admin", "auditor"})
"""Roles with the export permission (bulk exports, subject exports)."""
AUDIT_READERS = frozenset({"admin", "auditor"})
FEED_READERS = frozenset({"admin", "auditor", "service"})


@dataclass(frozen=True)
class Principal:
    """The authenticated user of a request."""

    user_id: str
    role: str

    def sees(self, owner_id: str | None) -> bool:
        """Rule: managers see their own records and unassigned leads."""
        return self.role != "manager" or owner_id in (None, self.user_id)

    def check_sees(self, kind: str, record_id: object, owner_id: str | None) -> None:
        if not self.sees(owner_id):
            raise NotFound(kind, str(record_id))

    def default_owner(self) -> str | None:
        """A manager who registers a lead takes it; others leave it to round-robin."""
        return self.user_id if self.role == "manager" else None
