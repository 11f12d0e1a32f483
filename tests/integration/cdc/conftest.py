"""The private ``wal_level=logical`` PostgreSQL cluster of the log-capture tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cdc.maria_server import MariaServer, start_server
from tests.integration.cdc.pg_cluster import Cluster, start_cluster


@pytest.fixture(scope="session")
def logical_pg() -> Iterator[Cluster]:
    """A PostgreSQL cluster with ``wal_level=logical`` on a free port, stopped at the end. It
    fails (never skips) when the server binaries are missing."""
    base = Path(tempfile.mkdtemp(prefix="lgsp-pglog-"))
    cluster = start_cluster(base)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def replica_pg() -> Iterator[Cluster]:
    """A cluster with ``wal_level=replica`` (the default of a server nobody prepared)."""
    base = Path(tempfile.mkdtemp(prefix="lgsp-pgrepl-"))
    cluster = start_cluster(base, wal_level="replica")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def binlog_maria() -> Iterator[MariaServer]:
    """A private MariaDB with a ROW binlog (full images and metadata) on a free port, stopped at
    the end. It fails (never skips) when the server binaries are missing or it cannot start."""
    server = start_server(Path(tempfile.mkdtemp(prefix="lgsp-mylog-")))
    try:
        yield server
    finally:
        server.stop()
