"""Time helpers shared by every package: UTC, epoch milliseconds, and times given on the CLI.

The bus stores instants as UTC; a naive ``datetime`` read from a database is taken as UTC
(the convention of the sinks and the generator). Times typed by a person must carry a zone,
or the caller says explicitly which zone a naive one means.
"""

from __future__ import annotations

import datetime as dt

from bus.errors import ConfigurationError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
VN = dt.timezone(dt.timedelta(hours=7), "ICT")  # Asia/Ho_Chi_Minh has no DST


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def as_utc(value: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a naive one is taken as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


def to_epoch_ms(value: dt.datetime) -> int:
    """Milliseconds since the epoch, floored (also before 1970); naive means UTC."""
    delta = as_utc(value) - EPOCH
    return delta.days * 86_400_000 + delta.seconds * 1000 + delta.microseconds // 1000


def from_epoch_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def parse_cli_time(value: str, flag: str, *, naive: dt.tzinfo | None = None) -> dt.datetime:
    """A date-time typed on the command line, e.g. ``2026-03-01T00:00:00+07:00``.

    Without a zone it is refused, unless ``naive`` names the zone to assume (the caller then
    says so in its help text). A bare date means its midnight.
    """
    text = value.strip()
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        example = "2026-03-01T00:00:00" if naive is not None else "2026-03-01T00:00:00+07:00"
        zone = "" if naive is not None else " with zone"
        raise ConfigurationError(
            f"{flag}: expected an ISO 8601 date or time{zone} such as {example}, got {value!r}"
        ) from None
    if parsed.tzinfo is None:
        if naive is None:
            raise ConfigurationError(
                f"{flag}: {value!r} has no time zone; write it with one, "
                "e.g. 2026-03-01T00:00:00+07:00 (Viet Nam) or ...Z (UTC)"
            )
        parsed = parsed.replace(tzinfo=naive)
    return parsed
