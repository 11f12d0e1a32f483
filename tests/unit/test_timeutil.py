from __future__ import annotations

import datetime as dt

import pytest

from bus.errors import ConfigurationError
from bus.timeutil import VN, as_utc, from_epoch_ms, parse_cli_time, to_epoch_ms


def test_epoch_ms_floors_and_round_trips() -> None:
    assert to_epoch_ms(dt.datetime(1970, 1, 1, 0, 0, 0, 1500)) == 1
    assert to_epoch_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999500)) == -1
    moment = dt.datetime(2026, 3, 1, 7, 0, tzinfo=VN)
    assert from_epoch_ms(to_epoch_ms(moment)) == moment
    assert as_utc(dt.datetime(2026, 1, 1)).tzinfo is dt.UTC


def test_cli_time_needs_a_zone_unless_told() -> None:
    assert parse_cli_time("2026-03-01T00:00:00+07:00", "--as-of").utcoffset() == dt.timedelta(
        hours=7
    )
    with pytest.raises(ConfigurationError, match="--as-of: .* has no time zone"):
        parse_cli_time("2026-03-01T00:00:00", "--as-of")
    assert parse_cli_time("2026-03-01", "--since", naive=VN).hour == 0
    with pytest.raises(ConfigurationError, match="--to: expected an ISO 8601"):
        parse_cli_time("01/03/2026", "--to")
