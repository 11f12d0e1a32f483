"""Errors of the catalogue (subclasses of the bus's error classes)."""

from __future__ import annotations

from bus.errors import ConfigurationError, NotFoundError
from connectors.errors import FieldError


class AccessDeniedError(ConfigurationError):
    """No live grant allows this delivery (never granted, revoked, expired, other purpose)."""

    http_status = 403


class InvalidFieldsError(ConfigurationError):
    """Input with one or more invalid fields; ``errors`` lists every one as a ``FieldError``
    (the pair the HTTP API answers per field; it reads as ``field: why``)."""

    def __init__(self, errors: list[FieldError], where: str | None = None) -> None:
        self.errors = list(errors)
        super().__init__((f"{where}: " if where else "") + "; ".join(self.errors))


class MissingReferenceError(InvalidFieldsError, NotFoundError):
    """Invalid fields of which at least one names a thing that does not exist."""
