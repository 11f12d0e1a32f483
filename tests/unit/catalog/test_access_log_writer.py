"""The access log's group commit: each write returns once its own entry is committed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from bus.catalog import query_access
from bus.catalog.access_log import AccessLogWriter
from bus.config import Settings
from bus.errors import ConfigurationError


def entry(i: int, **change: object) -> dict[str, object]:
    data: dict[str, object] = {
        "principal": "api-key:abc",
        "agency": "ubnd-q1",
        "dataset": "dancu.resident",
        "purpose": "Xác minh",
        "records": i % 3,
        "action": "lookup",
        "grant_id": 7,
        "detail": {"keys": 1, "n": i},
    }
    data.update(change)
    return data


def test_concurrent_writes_each_get_their_committed_entry(offline_settings: Settings) -> None:
    writer = AccessLogWriter(offline_settings)
    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(lambda i: writer.write(**entry(i)), range(200)))
    assert len(set(ids)) == 200
    stored = {e.id: e for e in query_access(offline_settings, action="lookup")}
    assert set(stored) == set(ids)
    for i, entry_id in enumerate(ids):  # every caller got the id of its own entry
        assert stored[entry_id].detail == {"keys": 1, "n": i}
        assert stored[entry_id].records == i % 3


def test_a_wrong_entry_is_refused_alone_and_nothing_of_it_is_written(
    offline_settings: Settings,
) -> None:
    writer = AccessLogWriter(offline_settings)
    with pytest.raises(ConfigurationError, match="action"):
        writer.write(**entry(1, action="Not A Word"))
    with pytest.raises(ConfigurationError, match="agency"):
        writer.write(**entry(1, agency=" "))
    assert writer.write(**entry(2)) > 0
    assert [e.detail for e in query_access(offline_settings)] == [{"keys": 1, "n": 2}]
