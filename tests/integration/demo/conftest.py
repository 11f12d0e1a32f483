"""Fixtures of the demo tests: each demo gets its own embedded broker."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import broker
from bus.config import Settings
from bus.db.engine import dispose_engines


@contextlib.contextmanager
def _broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The bootstrap of a broker for demo runs (``LGSP_KAFKA_BOOTSTRAP`` when set): the demo's
    topic and group names are fixed, so runs must not see each other's records or committed
    offsets. Its state lives outside the demo's home, which ``fresh=True`` empties (its pid
    file with it)."""
    external = os.environ.get("LGSP_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    own = Settings(home=tmp_path_factory.mktemp("demo-broker"))
    bootstrap = broker.start_embedded(own).bootstrap
    assert bootstrap
    try:
        yield bootstrap
    finally:
        broker.stop_embedded(own)


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of one test's own."""
    with _broker(tmp_path_factory) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="module")
def module_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker shared by a module's tests that share one demo state."""
    with _broker(tmp_path_factory) as bootstrap:
        yield bootstrap


@pytest.fixture
def settings(home: Path, own_broker: str) -> Iterator[Settings]:
    """Settings of a fresh home on the demo's own broker."""
    yield Settings(home=home, kafka_bootstrap=own_broker)
    dispose_engines()
