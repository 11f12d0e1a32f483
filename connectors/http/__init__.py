"""The HTTP connector: a JSON API polled as a source or posted to as a sink (requests)."""

from connectors.http.config import HttpConnection, HttpConnectorConfig, HttpTable
from connectors.http.connector import HttpConnector

__all__ = ["HttpConnection", "HttpConnector", "HttpConnectorConfig", "HttpTable"]
