"""A replay's access goes to the archive's log and the catalogue's log together, or to neither."""

from __future__ import annotations

import datetime as dt

import pytest

from bus.archive.access import AUDIT_AGENCY, list_access, record_access
from bus.catalog.access_log import query_access
from bus.config import Settings
from bus.errors import ConfigurationError

VN = dt.timezone(dt.timedelta(hours=7))


def test_both_logs_get_the_access(offline_settings: Settings) -> None:
    as_of = dt.datetime(2026, 3, 1, 8, tzinfo=VN)
    record_access(
        offline_settings,
        principal="kiem-toan-vien-01",
        dataset="tthc.dossier",
        purpose="thanh tra",
        records=3,
        action="replay-as-of",
        as_of=as_of,
        target="sqlite:///a.db t",
    )
    [mine] = list_access(offline_settings, "tthc.dossier")
    assert (mine.action, mine.records, mine.outcome) == ("replay-as-of", 3, "ok")
    stored = mine.as_of if mine.as_of.tzinfo else mine.as_of.replace(tzinfo=dt.UTC)
    assert stored == as_of
    [shared] = query_access(offline_settings, dataset="tthc.dossier")
    assert (shared.action, shared.agency, shared.records) == ("replay", AUDIT_AGENCY, 3)
    assert shared.detail is not None and shared.detail["kind"] == "replay-as-of"
    assert shared.detail["as_of"] == as_of.isoformat()


def test_a_refused_catalogue_entry_leaves_no_replay_record(offline_settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="agency"):
        record_access(
            offline_settings,
            principal="kiem-toan-vien-01",
            dataset="tthc.dossier",
            purpose="thanh tra",
            records=1,
            agency=" ",  # the catalogue's log refuses it after the replay row was added
        )
    assert list_access(offline_settings) == []
    assert query_access(offline_settings) == []
