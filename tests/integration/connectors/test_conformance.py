"""The conformance kit on the SQL connector: SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest

from conftest import MYSQL_URL, PG_URL
from connectors.testing import SqlHarness, conformance_suite

pytestmark = pytest.mark.integration

TestSQLiteConformance = conformance_suite(
    lambda tmp_path, unique: SqlHarness("sqlite", f"sqlite:///{tmp_path}/kit.db", unique)
)
TestPostgresConformance = conformance_suite(
    lambda tmp_path, unique: SqlHarness("postgresql", PG_URL, unique)
)
TestMariaDBConformance = conformance_suite(
    lambda tmp_path, unique: SqlHarness("mariadb", MYSQL_URL, unique)
)
