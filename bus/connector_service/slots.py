"""The replication slot of a log-based source as ``lgsp connector show`` and the API's
``GET /api/connectors/NAME/status`` report it (one place for both)."""

from __future__ import annotations

from typing import Any

from bus.context import Context
from bus.errors import LgspError, safe_message


def log_status(ctx: Context, name: str) -> dict[str, Any] | None:
    """The slot of a ``mode: log`` source (name, state, retained WAL in bytes, a problem with
    the command that fixes it), how far it is behind and what the ``log:`` limits say
    (``bus.connector_service.log_guard``); None for a connector without one. An unreachable
    database is reported in it (``error``) rather than failing the whole answer."""
    from bus.connector_service.log_guard import assessed
    from bus.sync import connector_for

    stored = ctx.connectors.get(name)
    tables = stored.config.get("tables") or []
    logged = any(isinstance(t, dict) and t.get("mode") == "log" for t in tables)
    if stored.role != "source" or not logged:
        return None
    try:
        with connector_for(ctx, name) as connector:
            return assessed(ctx.connectors, connector)
    except LgspError as exc:
        return {"error": safe_message(exc)}
