"""SQL connectors for PostgreSQL, MySQL/MariaDB and SQLite (SQLAlchemy 2).

The exports load on first use, so that importing a light submodule (``connectors.sql.types``,
used by reconciliation) does not import the whole connector.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.sql.config import SqlConnection, SqlConnectorConfig, SqlTable
    from connectors.sql.connector import SqlConnector

__all__ = ["SqlConnection", "SqlConnector", "SqlConnectorConfig", "SqlTable"]

_EXPORTS = {
    "SqlConnection": "connectors.sql.config",
    "SqlConnectorConfig": "connectors.sql.config",
    "SqlTable": "connectors.sql.config",
    "SqlConnector": "connectors.sql.connector",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
