"""Shared fixtures: one real broker per test session, a fresh state folder per test.

The broker is started through the same code as ``lgsp broker start`` (the embedded Tansu
broker), unless ``LGSP_KAFKA_BOOTSTRAP`` names a cluster to test against instead.
PostgreSQL and MariaDB are the machine's real services (``.ci/run`` starts them).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import broker
from bus.config import Settings, reset_settings
from bus.db.engine import dispose_engines

PG_URL = os.environ.get("LGSP_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LGSP_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


@pytest.fixture(scope="session")
def broker_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("LGSP_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    home = tmp_path_factory.mktemp("broker-home")
    session_settings = Settings(home=home)
    status = broker.start_embedded(session_settings)
    assert status.bootstrap
    try:
        yield status.bootstrap
    finally:
        broker.stop_embedded(session_settings)


@pytest.fixture(scope="session")
def control_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A control database migrated once per session (``alembic upgrade heads`` on a new SQLite
    file costs ~0.1 s, a copy ~1 ms): every test's state folder starts with a copy, which the
    bus then finds at the newest revision (its own migrate is a no-op)."""
    from bus.db.engine import open_engine

    settings = Settings(home=tmp_path_factory.mktemp("control-template"))
    open_engine(settings)
    dispose_engines()
    path = settings.home / "control.db"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything in the main file
    finally:
        conn.close()
    return path


@pytest.fixture
def home(tmp_path: Path, control_db_template: Path) -> Path:
    path = tmp_path / "lgsp-home"
    path.mkdir()
    shutil.copyfile(control_db_template, path / control_db_template.name)
    return path


@pytest.fixture
def settings(home: Path, broker_bootstrap: str) -> Iterator[Settings]:
    """Settings with a fresh state folder and control DB, on the session's broker."""
    yield Settings(home=home, kafka_bootstrap=broker_bootstrap)
    dispose_engines()


@pytest.fixture
def offline_settings(home: Path) -> Iterator[Settings]:
    """Settings without any broker (for control-DB-only tests)."""
    yield Settings(home=home)
    dispose_engines()


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, home: Path, broker_bootstrap: str
) -> Iterator[dict[str, str]]:
    """Environment for CLI tests: LGSP_HOME and the session broker, settings re-read."""
    env = {"LGSP_HOME": str(home), "LGSP_KAFKA_BOOTSTRAP": broker_bootstrap}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LGSP_DATABASE_URL", raising=False)
    reset_settings()
    yield env
    reset_settings()
    dispose_engines()


@pytest.fixture
def offline_cli_env(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[dict[str, str]]:
    """Environment for CLI commands that need only the control database."""
    monkeypatch.setenv("LGSP_HOME", str(home))
    for name in ("LGSP_KAFKA_BOOTSTRAP", "LGSP_DATABASE_URL", "LGSP_PII_KEY", "LGSP_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    reset_settings()
    yield {"LGSP_HOME": str(home)}
    reset_settings()
    dispose_engines()


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, table and group names.

    Never all digits: a run of 9+ digits looks like a citizen id or a phone, and messages
    shown to people mask it (``bus.dlq.mask_numbers``), so a name ending in one would be
    masked in the assertions that read it back (1 run in ~110 drew such a suffix)."""
    suffix = uuid.uuid4().hex[:10]
    return suffix if not suffix.isdigit() else "a" + suffix[1:]


@pytest.fixture(scope="session")
def pg_url() -> str:
    return PG_URL


@pytest.fixture(scope="session")
def mysql_url() -> str:
    return MYSQL_URL
