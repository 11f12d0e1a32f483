"""SQL connectors for PostgreSQL, MySQL/MariaDB and SQLite (SQLAlchemy 2)."""

from connectors.sql.config import SqlConnection, SqlConnectorConfig, SqlTable
from connectors.sql.connector import SqlConnector

__all__ = ["SqlConnection", "SqlConnector", "SqlConnectorConfig", "SqlTable"]
