"""Repair events' ``ts_ms``: after the copy's stored version, else the change's own time as
far as the repair knows it (cursor time, or when the repair observed the row)."""

from __future__ import annotations

import datetime as dt

from bus.reconcile.repair import repair_ts
from connectors.sql.types import ts_ms

NOW = 1_800_000_000_000


def test_upserts_follow_the_cursor_and_pass_the_stored_version() -> None:
    assert repair_ts(1_000, None, NOW) == 1_000  # missing key: the cursor time
    assert repair_ts(1_000, 999, NOW) == 1_000
    assert repair_ts(1_000, 1_000, NOW) == 1_001
    assert repair_ts(1_000, NOW + 5, NOW) == NOW + 6  # the copy ran ahead
    assert repair_ts(None, None, NOW) == NOW  # no cursor: the time of the read
    assert repair_ts(None, NOW + 5, NOW) == NOW + 6


def test_deletes_carry_the_time_the_repair_observed_them() -> None:
    """Not the row's old version + 1: the row still existed until the repair saw it gone."""
    assert repair_ts(None, 1_000, NOW) == NOW
    assert repair_ts(None, None, NOW) == NOW
    assert repair_ts(None, NOW + 5, NOW) == NOW + 6  # still after a copy that ran ahead


def test_cursor_values_become_epoch_ms_as_the_connector_stamps_them() -> None:
    # repair stamps cursor values with the connector's own ts_ms
    assert ts_ms(dt.datetime(1970, 1, 1, 0, 0, 1, 500)) == 1_000  # naive means UTC
    assert ts_ms(dt.datetime(1970, 1, 1, 7, tzinfo=dt.timezone(dt.timedelta(hours=7)))) == 0
    assert ts_ms(dt.date(1970, 1, 2)) == 86_400_000
    assert ts_ms(42) is None
    assert (
        ts_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999_500)) == -1
    )  # floored, before 1970  # an integer cursor: no time, the read's time is used
