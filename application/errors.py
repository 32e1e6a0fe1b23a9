"""Errors a command can end with besides a domain rule violation.

In every case nothing was recorded.
"""

from __future__ import annotations

from uuid import UUID


class ApplicationError(Exception):
    code = "application_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ApplicationError):
    """No aggregate of that kind with that id (HTTP 404)."""

    code = "not_found"

    def __init__(self, kind: str, aggregate_id: UUID | str) -> None:
        super().__init__(f"no {kind} {aggregate_id}")
        self.kind = kind
        self.aggregate_id = aggregate_id


class VersionMismatch(ApplicationError):
    """The caller's expected version is not the aggregate's version (If-Match, 412)."""

    code = "version_mismatch"

    def __init__(self, aggregate_id: UUID, expected: int, actual: int) -> None:
        super().__init__(
            f"{aggregate_id} is at version {actual}, the command expected version {expected}"
        )
        self.aggregate_id = aggregate_id
        self.expected = expected
        self.actual = actual


class ConcurrencyConflict(ApplicationError):
    """Another command changed the same aggregate at the same time (409); retry it."""

    code = "concurrency_conflict"


class DuplicateContact(ApplicationError):
    """A phone or email already belongs to another live client (409)."""

    code = "duplicate_contact"

    def __init__(self, kind: str, value: str, existing_client_id: UUID) -> None:
        super().__init__(f"{kind} {value} already belongs to client {existing_client_id}")
        self.kind = kind
        self.value = value
        self.existing_client_id = existing_client_id


class IdempotencyKeyReused(ApplicationError):
    """The idempotency key was first used for a different command (422)."""

    code = "idempotency_key_reused"

    def __init__(self, key: str) -> None:
        super().__init__(f"idempotency key {key!r} was already used for a different request")
        self.key = key


class UnknownUser(ApplicationError):
    """An owner or assignee that is not an active user who can own clients (422)."""

    code = "unknown_user"

    def __init__(self, user_id: str, field: str) -> None:
        super().__init__(f"{field}: {user_id!r} is not an active manager or admin")
        self.user_id = user_id
        self.field = field


class PermissionDenied(ApplicationError):
    """The caller's role lacks the permission this needs (403). The one wording of
    every refusal by permission, whether a route's guard or a use case refuses."""

    code = "permission_denied"

    def __init__(self, role: str, permission: str) -> None:
        super().__init__(f"the {role} role does not have the {permission} permission")
        self.role = role
        self.permission = permission


class ExportLimitReached(ApplicationError):
    """The user made as many exports and bulk reads of personal data as the hour
    allows (429); ``retry_after`` seconds until the next hour begins."""

    code = "export_limit"

    def __init__(self, per_hour: int, retry_after: int) -> None:
        super().__init__(
            f"at most {per_hour} exports and bulk reads of personal data an hour; "
            f"try again in {retry_after} s"
        )
        self.per_hour = per_hour
        self.retry_after = retry_after
