"""Registered connectors and their positions (control-database tables and their store)."""

from bus.connectors_db.models import ConnectorPosition, ConnectorRow
from bus.connectors_db.store import ConnectorStore, StoredConnector, TablePosition

__all__ = [
    "ConnectorPosition",
    "ConnectorRow",
    "ConnectorStore",
    "StoredConnector",
    "TablePosition",
]
