"""Positions as shown to people: the cursor value, and only a short digest of the last key."""

from __future__ import annotations

import datetime as dt
import decimal
import json

from connectors import positions

CITIZEN_ID = "079203004512"


def test_an_incremental_position_shows_its_cursor_and_a_digest_of_the_key() -> None:
    stamp = dt.datetime(2025, 7, 1, 8, 0, tzinfo=dt.UTC)
    stored = {"mode": "incremental", "after": positions.dump([stamp, CITIZEN_ID])}
    shown = positions.display(json.loads(json.dumps(stored)))
    assert shown is not None
    assert shown["after"]["cursor"] == "2025-07-01T08:00:00+00:00"
    assert shown["after"]["key"].startswith("sha256:") and len(shown["after"]["key"]) == 15
    assert CITIZEN_ID not in json.dumps(shown)
    line = positions.describe(stored)
    assert line.startswith("after 2025-07-01T08:00:00+00:00, key sha256:")
    assert CITIZEN_ID not in line
    # the same key gives the same digest, another key another one
    again = positions.display({"mode": "incremental", "after": [None, CITIZEN_ID]})
    other = positions.display({"mode": "incremental", "after": [None, "079203004513"]})
    assert again and other and again["after"]["key"] == shown["after"]["key"]
    assert other["after"]["key"] != shown["after"]["key"]


def test_a_snapshot_position_digests_its_whole_keyset() -> None:
    stored = {
        "mode": "snapshot",
        "snapshot_ms": 1751356800000,
        "after": positions.dump([CITIZEN_ID, decimal.Decimal("12.50")]),
        "done": False,
        "rows": 500,
    }
    shown = positions.display(stored)
    assert shown is not None and set(shown["after"]) == {"key"}
    assert (shown["mode"], shown["done"], shown["rows"]) == ("snapshot", False, 500)
    assert CITIZEN_ID not in json.dumps(shown)
    assert positions.describe(stored).startswith("snapshot in progress, key sha256:")


def test_sink_state_and_unknown_keys() -> None:
    assert positions.describe({"lag": {"t[0]": 3, "t[1]": 4}}) == "lag 7"
    shown = positions.display({"mode": "incremental", "page_token": CITIZEN_ID, "after": None})
    assert shown is not None and CITIZEN_ID not in json.dumps(shown)
    assert shown["page_token"].startswith("sha256:")
    assert positions.display(None) is None and positions.describe(None) == ""


def test_a_log_position_is_shown_as_its_wal_position() -> None:
    state = {
        "mode": "log",
        "phase": "stream",
        "lsn": 0x16_B374D848,
        "index": 3,
        "end": 0x16_B374D900,
        "slot": "lgsp_tan_dinh",
    }
    assert positions.display(state) == state  # WAL positions carry no row values
    assert positions.describe(state) == "log at 16/B374D848:3 (slot lgsp_tan_dinh)"
    assert positions.describe({**state, "phase": "snapshot", "index": -1}) == (
        "log: snapshot in progress, stream from 16/B374D848"
    )
