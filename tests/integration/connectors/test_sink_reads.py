"""A sink run's read of its topics: the broker guard judged once per read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import broker_guard
from bus.config import Settings
from bus.sync import run
from tests.integration.connectors.test_roundtrip import T0, Pair, _row

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(settings: Settings, tmp_path: Path, unique: str) -> Iterator[Pair]:
    made = Pair(settings, "sqlite", "sqlite", tmp_path, unique)
    try:
        yield made
    finally:
        made.drop()


def test_a_sink_run_consults_the_broker_guard_once(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.insert([_row(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 26)])
    run(pair.settings, pair.source_name)
    asked: list[list[str] | None] = []
    known = broker_guard.known

    def counted(settings: Settings, topics: list[str] | None = None) -> broker_guard.Known:
        asked.append(None if topics is None else sorted(topics))
        return known(settings, topics)

    monkeypatch.setattr(broker_guard, "known", counted)
    assert run(pair.settings, pair.sink_name).rows == 25
    assert asked == [[pair.topic]]
    pair.assert_equal()
