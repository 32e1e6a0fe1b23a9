"""Domain errors: a command broke a business rule, so nothing was recorded."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every business-rule violation.

    ``code`` is a stable machine-readable slug; ``field`` names the offending input
    when one field is to blame.
    """

    code = "rule_violation"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidValue(DomainError):
    """A value is malformed or out of range (a phone, an email, an amount, a date)."""

    code = "invalid_value"


class RuleViolation(DomainError):
    """A well-formed command that the aggregate's current state does not allow."""

    code = "rule_violation"


class MissingEnvelope(RuntimeError):
    """An aggregate command ran outside ``recording(envelope)``: a programming error."""
