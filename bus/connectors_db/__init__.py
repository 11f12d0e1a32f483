"""Registered connectors, their positions and run locks (control-database tables, store)."""

from bus.connectors_db.models import ConnectorLock, ConnectorPosition, ConnectorRow
from bus.connectors_db.store import ConnectorStore, RunLock, StoredConnector, TablePosition

__all__ = [
    "ConnectorLock",
    "ConnectorPosition",
    "ConnectorRow",
    "ConnectorStore",
    "RunLock",
    "StoredConnector",
    "TablePosition",
]
