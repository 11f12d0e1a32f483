"""The access log's writer (the seam other modules call) and its queries."""

from __future__ import annotations

import datetime as dt

import pytest

from bus.catalog import query_access, record_access
from bus.catalog.access_log import parse_since
from bus.config import Settings
from bus.errors import ConfigurationError
from bus.timeutil import VN


def entry(settings: Settings, **change: object) -> int:
    data: dict = {
        "principal": "auditor-1",
        "agency": "thanh-tra-tp",
        "dataset": "dancu.resident",
        "purpose": "thanh tra",
        "records": 12,
        "action": "replay",
    }
    data.update(change)
    return record_access(settings, **data)


def test_record_and_filter(offline_settings: Settings) -> None:
    first = entry(offline_settings, grant_id=None, detail={"as_of": dt.date(2025, 1, 1)})
    entry(offline_settings, agency="ubnd-q1", action="deliver", grant_id=3, records=0)
    entry(offline_settings, dataset="tthc.dossier")
    every = query_access(offline_settings)
    assert [e.id for e in every][0] == first and len(every) == 3
    assert every[0].detail == {"as_of": "2025-01-01"}
    assert every[0].at.tzinfo is not None
    assert [e.agency for e in query_access(offline_settings, agency="ubnd-q1")] == ["ubnd-q1"]
    assert len(query_access(offline_settings, dataset="dancu.resident")) == 2
    assert len(query_access(offline_settings, action="deliver")) == 1
    assert len(query_access(offline_settings, since="2000-01-01")) == 3
    # a date means its midnight in Viet Nam: tomorrow there (UTC's tomorrow starts 7 h later,
    # so from 17:00 UTC it would still include today's entries)
    tomorrow = (dt.datetime.now(VN) + dt.timedelta(days=1)).date()
    assert query_access(offline_settings, since=tomorrow.isoformat()) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"records": -1}, "records"),
        ({"action": "Delete Everything"}, "action"),
        ({"agency": ""}, "agency"),
        ({"principal": " "}, "principal"),
    ],
)
def test_bad_entries_are_refused(offline_settings: Settings, change: dict, field: str) -> None:
    with pytest.raises(ConfigurationError, match=field):
        entry(offline_settings, **change)
    assert query_access(offline_settings) == []


def test_since_is_viet_nam_time_unless_zoned() -> None:
    assert parse_since("2025-07-01") == dt.datetime(2025, 6, 30, 17, 0, tzinfo=dt.UTC)
    assert parse_since("2025-07-01T08:00+00:00") == dt.datetime(2025, 7, 1, 8, tzinfo=dt.UTC)
    assert parse_since("2025-07-01T08:00") == dt.datetime(2025, 7, 1, 1, tzinfo=dt.UTC)
    assert parse_since(dt.date(2025, 7, 1)) == dt.datetime(2025, 6, 30, 17, tzinfo=dt.UTC)
    assert parse_since(dt.datetime(2025, 7, 1, 8)) == dt.datetime(2025, 7, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(ConfigurationError, match="--since"):
        parse_since("yesterday")


def test_time_window_and_limit_at_their_edges(
    offline_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``since`` inclusive and ``until`` exclusive to the microsecond, a date meaning its
    midnight in Viet Nam (17:00 UTC the day before); ``limit`` the newest, oldest first."""
    midnight = dt.datetime(2025, 6, 30, 17, tzinfo=dt.UTC)  # 1 July 2025 00:00 in Viet Nam
    tick = dt.timedelta(microseconds=1)
    times = [midnight - tick, midnight, midnight + dt.timedelta(days=1) - tick]
    times.append(midnight + dt.timedelta(days=1))
    for i, at in enumerate(times):
        monkeypatch.setattr("bus.catalog.access_log.utcnow", lambda at=at: at)
        entry(offline_settings, records=i)
    window = query_access(offline_settings, since="2025-07-01", until="2025-07-02")
    assert [e.records for e in window] == [1, 2]
    assert [e.at for e in window] == times[1:3]
    assert [e.records for e in query_access(offline_settings, until=midnight)] == [0]
    assert [e.records for e in query_access(offline_settings, limit=2)] == [2, 3]
    newest = query_access(offline_settings, since=midnight, until="2025-07-02", limit=1)
    assert [e.records for e in newest] == [2]
