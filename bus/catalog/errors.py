"""Errors of the catalogue (subclasses of the bus's error classes)."""

from __future__ import annotations

from bus.errors import ConfigurationError


class AccessDeniedError(ConfigurationError):
    """No live grant allows this delivery (never granted, revoked, expired, other purpose)."""

    http_status = 403
