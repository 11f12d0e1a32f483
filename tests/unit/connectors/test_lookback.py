"""The lookback window's pieces: durations, cursor floors, the digests it keeps."""

from __future__ import annotations

import datetime as dt

import pytest

from connectors.sql import lookback
from connectors.sql.config import SqlConnectorConfig
from connectors.sql.lookback import Window, cursor_floor, parse_duration


@pytest.mark.parametrize(
    ("value", "seconds"), [(0, 0), (300, 300), ("0", 0), ("90s", 90), ("5m", 300), ("2h", 7200)]
)
def test_durations(value: object, seconds: int) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5 minutes", "-1", -1, 1.5, True, "8d", "1w"])
def test_bad_durations(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_duration(value)


def _config(**table: object) -> dict[str, object]:
    return {
        "name": "s",
        "type": "postgresql",
        "role": "source",
        "agency": "a",
        "unit": "26734",
        "connection": {"url": "postgresql://u@h/db"},
        "tables": [{"table": "t", "dataset": "a.b", **table}],
    }


def test_lookback_only_for_incremental_source_tables() -> None:
    cfg = SqlConnectorConfig.model_validate(_config(mode="snapshot", lookback="5m"))
    assert cfg.problems() == ["tables[0].lookback: only for incremental tables (with a cursor)"]
    sink = SqlConnectorConfig.model_validate({**_config(lookback=60), "role": "sink"})
    assert "tables[0].lookback: only for sources" in sink.problems()
    assert SqlConnectorConfig.model_validate(_config(cursor="c", lookback="5m")).problems() == []


def test_floors_keep_the_type_and_the_text_layout() -> None:
    aware = dt.datetime(2025, 7, 1, 8, 0, 0, 123456, tzinfo=dt.UTC)
    assert cursor_floor(aware, 90) == aware - dt.timedelta(seconds=90)
    assert cursor_floor(dt.date(2025, 7, 1), 300) == dt.date(2025, 6, 30)
    assert cursor_floor(dt.date(2025, 7, 1), 0) == dt.date(2025, 7, 1)
    # SQLite compares the stored text: the floor has the same layout
    assert cursor_floor("2025-07-01 08:00:00.000000", 60) == "2025-07-01 07:59:00.000000"
    assert cursor_floor("2025-07-01T08:00:00", 1) == "2025-07-01T07:59:59"
    assert cursor_floor("2025-07-01 08:00:00.5", 1) == "2025-07-01 07:59:59.5"
    assert cursor_floor("2025-07-01T08:00:00Z", 1) == "2025-07-01T07:59:59Z"
    assert cursor_floor("2025-07-01", 1) == "2025-06-30"
    with pytest.raises(ValueError, match="ISO"):
        cursor_floor("yesterday", 1)
    with pytest.raises(ValueError, match="date or timestamp"):
        cursor_floor(42, 1)


def test_window_forgets_below_the_floor_and_beyond_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t0 = dt.datetime(2025, 7, 1, 8)
    window = Window(60, None)
    keys = [window.key(t0 + dt.timedelta(seconds=30 * i), [i], False) for i in range(5)]
    for key in keys:
        window.add(*key)
    saved = window.dump(t0 + dt.timedelta(seconds=120))  # floor 60 s: rows 0 and 1 forgotten
    assert len(saved) == 3 and all(len(text) == 12 for text in saved.values())  # 8 bytes each
    again = Window(60, saved)
    assert [again.published(*k) for k in keys] == [False, False, True, True, True]
    # another cursor value, another key, a soft-delete: another row
    assert not again.published(*again.key(t0 + dt.timedelta(seconds=61), [2], False))
    assert not again.published(*again.key(t0 + dt.timedelta(seconds=60), [3], False))
    assert not again.published(*again.key(t0 + dt.timedelta(seconds=60), [2], True))
    monkeypatch.setattr(lookback, "MAX_SEEN", 2)
    again.add(*again.key(t0 + dt.timedelta(seconds=150), [5], False))  # over the cap
    assert again.size <= 2 and not again.published(*keys[2])  # the oldest went first
