"""The guard of a ``mode: log`` source's limits (the connector file's ``log:`` block,
``connectors.sql.loglimit``): at every run start and every pass of a followed run
(``bus.sync``), and in ``lgsp connector check`` (so that a scheduled task enforces it while the
connector's process is dead). Past a warning threshold it warns; past the hard limit
(PostgreSQL ``log.max_bytes``) it drops the connector's replication slot and marks every log
table of the connector stopped with the message that names the re-snapshot command: the stop
is kept in their positions (``halt``), so that every later run stops with it until
``lgsp connector reset``."""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

from bus.connectors_db import ConnectorStore
from connectors.base import Connector
from connectors.sql import loglimit

log = logging.getLogger(__name__)

# a followed run passes the guard every few seconds: the same warning is logged again only
# after this long (its figure changes; the warning it is does not)
LOG_EVERY_S = 600.0
_logged: dict[tuple[str, str], float] = {}


@dataclass
class Guarded:
    """What the guard found: the log status with its figures, the warnings, and the stop
    message when the hard limit acted (None otherwise)."""

    status: dict[str, Any] | None
    warnings: list[str] = field(default_factory=list)
    stopped: str | None = None


def log_tables(connector: Connector) -> list[str]:
    return [t.table for t in connector.config.tables if getattr(t, "effective_mode", None) == "log"]


def assessed(store: ConnectorStore, connector: Connector) -> dict[str, Any] | None:
    """The connector's log status (``Connector.log_status``) with how far it is behind and
    what its limits say; None for a connector without log tables."""
    status = connector.log_status()
    if status is None or "error" in status:
        return status
    positions = store.positions(connector.name)
    states = [p.position for t, p in positions.items() if t in log_tables(connector)]
    loglimit.assess(connector, status, states)
    return status


def guard(store: ConnectorStore, connector: Connector) -> Guarded:
    """Judge the connector against its limits and, past the hard limit, act."""
    status = assessed(store, connector)
    if status is None or "error" in status:
        return Guarded(status)
    result = Guarded(status, list(status.get("warnings") or []))
    for warning in result.warnings:
        _log_warning(connector.name, warning)
    stopped = loglimit.enforce(connector, status)
    if stopped is not None:
        log.error("%s: %s", connector.name, stopped)
        stop_tables(store, connector, stopped)
        result.stopped = stopped
    return result


def stop_tables(store: ConnectorStore, connector: Connector, reason: str) -> None:
    """Every log table of the connector stopped with ``reason``, kept in its position."""
    positions = store.positions(connector.name)
    for table in log_tables(connector):
        held = positions.get(table)
        state = dict(held.position or {}) if held is not None else {}
        state.setdefault("mode", "log")
        state["halt"] = reason
        store.save_position(connector.name, table, state)
        store.set_status(connector.name, table, "stopped", reason)


def _log_warning(name: str, warning: str) -> None:
    key = (name, re.sub(r"[0-9.]+", "#", warning))
    now = time.monotonic()
    if now - _logged.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
        _logged[key] = now
        log.warning("%s: %s", name, warning)
