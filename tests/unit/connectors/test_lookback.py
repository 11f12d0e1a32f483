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

    def state(seconds: int, key: int, name: str = "a", deleted: bool = False) -> tuple:
        return window.key(t0 + dt.timedelta(seconds=seconds), [key], [key, name], deleted)

    keys = [state(30 * i, i) for i in range(5)]
    for key in keys:
        window.add(*key)
    saved = window.dump(t0 + dt.timedelta(seconds=120))  # floor 60 s: rows 0 and 1 forgotten
    assert len(saved) == 3 and all(len(text) == 24 for text in saved.values())  # 16 bytes each
    again = Window(60, saved)
    assert [again.published(*k) for k in keys] == [False, False, True, True, True]
    # another cursor value, another key, another value, a soft-delete: another state
    assert not again.published(*state(61, 2))
    assert not again.published(*state(60, 3))
    assert not again.published(*state(60, 2, "b"))
    assert not again.published(*state(60, 2, deleted=True))
    monkeypatch.setattr(lookback, "MAX_SEEN", 2)
    again.add(*state(150, 5))  # over the cap
    assert again.size == 2 and not again.published(*keys[2])  # the oldest went first
    assert not again.published(*keys[3])
    assert again.published(*keys[4]) and again.published(*state(150, 5))  # the newest stay


def test_window_skips_only_the_last_state_published_for_a_key() -> None:
    """An update within the same second of a whole-second cursor is a new state, and so is a
    change back to an earlier one (A, then B, then A again: the second A is published)."""
    t0 = dt.datetime(2025, 7, 1, 8)
    window = Window(60, None)
    a = window.key(t0, [1], [1, "A"], False)
    b = window.key(t0, [1], [1, "B"], False)
    window.add(*a)
    assert window.published(*a) and not window.published(*b)
    window.add(*b)
    assert window.published(*b) and not window.published(*a)
    again = Window(60, window.dump(t0))
    assert again.published(*b) and not again.published(*a) and again.size == 1
