"""Fixtures of the catalogue's unit tests (no broker: control database only)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.config import reset_settings
from bus.db.engine import dispose_engines


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
