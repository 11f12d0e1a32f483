"""Working days and working time, the way administrative deadlines are counted in Vietnam.

A working day is a day that is neither a weekend day (Saturday, Sunday) nor a public holiday
from the ``holidays`` package (Tết included). Saturdays that the government turns into make-up
working days (``weekend_workdays`` in ``holidays``, e.g. 22 Aug 2026 swapped for 31 Aug 2026)
are working days. Working time is the office hours of working days, by default HCMC's
07:30-11:30 and 13:00-17:00 (8 hours = one working day), in Asia/Ho_Chi_Minh.

``add_workdays(t, n)`` adds ``n`` working days of working time: received Friday 15:00 with a
one-day deadline is due Monday 15:00; received on a Saturday, it is due Monday 17:00.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from bus.errors import ConfigurationError, DataError

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
DEFAULT_HOURS: tuple[tuple[dt.time, dt.time], ...] = (
    (dt.time(7, 30), dt.time(11, 30)),
    (dt.time(13, 0), dt.time(17, 0)),
)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_MAX_SCAN_DAYS = 3660  # a calendar with no working day for ten years is a broken calendar


def _no_workday() -> ConfigurationError:
    return ConfigurationError("calendar: no working day found within ten years")


def aware(value: dt.datetime, name: str) -> dt.datetime:
    """``value``, or ``DataError`` naming ``name`` unless it is a datetime with a zone."""
    if not isinstance(value, dt.datetime):
        raise DataError(f"{name}: expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise DataError(f"{name}: expected a timezone-aware datetime, got a naive one")
    return value


def _micros(value: dt.datetime) -> int:
    return (value - _EPOCH) // _US


class WorkCalendar:
    """Working days and office hours of one country and time zone.

    ``extra_holidays`` and ``extra_workdays`` override the package for local decisions.
    """

    def __init__(
        self,
        *,
        country: str = "VN",
        tz: str = DEFAULT_TZ,
        hours: Sequence[tuple[dt.time, dt.time]] = DEFAULT_HOURS,
        extra_holidays: Iterable[dt.date] = (),
        extra_workdays: Iterable[dt.date] = (),
    ) -> None:
        try:
            self.tz = ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigurationError(f"tz: expected an IANA time zone name, got {tz!r}") from exc
        try:
            self._holidays = holidays.country_holidays(country)
        except NotImplementedError as exc:
            raise ConfigurationError(
                f"country: expected a country code known to the holidays package, got {country!r}"
            ) from exc
        self.country = country
        self.hours = self._check_hours(hours)
        self.day_length = sum(
            (
                dt.datetime.combine(dt.date.min, end) - dt.datetime.combine(dt.date.min, start)
                for start, end in self.hours
            ),
            dt.timedelta(),
        )
        self._extra_holidays = frozenset(extra_holidays)
        self._extra_workdays = frozenset(extra_workdays)
        self._cache: dict[dt.date, bool] = {}

    @staticmethod
    def _check_hours(
        hours: Sequence[tuple[dt.time, dt.time]],
    ) -> tuple[tuple[dt.time, dt.time], ...]:
        result = tuple((start, end) for start, end in hours)
        if not result:
            raise ConfigurationError("hours: expected at least one (start, end) office period")
        previous_end = dt.time.min
        for index, (start, end) in enumerate(result):
            if not (isinstance(start, dt.time) and isinstance(end, dt.time)) or start >= end:
                raise ConfigurationError(f"hours[{index}]: expected start < end, both times")
            if index and start < previous_end:
                raise ConfigurationError(
                    f"hours[{index}]: expected periods in order and not overlapping"
                )
            previous_end = end
        return result

    # -- days ---------------------------------------------------------------------------------

    def is_workday(self, day: dt.date) -> bool:
        """Whether ``day`` is a working day (a date, or a datetime taken in the local zone)."""
        day = self.local_date(day)
        cached = self._cache.get(day)
        if cached is not None:
            return cached
        if day in self._extra_workdays:
            result = True
        elif day in self._extra_holidays or day in self._holidays:
            result = False
        elif day in self._holidays.weekend_workdays:
            result = True
        else:
            result = day.weekday() not in self._holidays.weekend
        self._cache[day] = result
        return result

    def holiday_name(self, day: dt.date) -> str | None:
        """The public holiday's name on ``day``, if any."""
        return self._holidays.get(self.local_date(day))

    def local_date(self, value: dt.date) -> dt.date:
        """The calendar date of ``value`` in the calendar's zone (dates pass through)."""
        if isinstance(value, dt.datetime):
            return aware(value, "datetime").astimezone(self.tz).date()
        if isinstance(value, dt.date):
            return value
        raise DataError(f"day: expected a date or datetime, got {type(value).__name__}")

    def next_workday(self, day: dt.date) -> dt.date:
        """The first working day after ``day``."""
        return self._first_workday(self.local_date(day) + dt.timedelta(days=1), 1)

    def workday_on_or_before(self, day: dt.date) -> dt.date:
        """``day`` if it is a working day, else the last working day before it."""
        return self._first_workday(self.local_date(day), -1)

    def _first_workday(self, day: dt.date, step: int) -> dt.date:
        """The first working day from ``day`` on, going ``step`` days at a time."""
        for _ in range(_MAX_SCAN_DAYS):
            if self.is_workday(day):
                return day
            day += dt.timedelta(days=step)
        raise _no_workday()

    def workdays_between(self, a: dt.date, b: dt.date) -> int:
        """Working days ``d`` with ``a < d <= b`` (negative when ``b`` is before ``a``).

        Due Friday, resolved Monday: ``workdays_between(friday, monday) == 1``.
        """
        start, end = self.local_date(a), self.local_date(b)
        sign = 1
        if end < start:
            start, end, sign = end, start, -1
        count = 0
        day = start + dt.timedelta(days=1)
        while day <= end:
            count += self.is_workday(day)
            day += dt.timedelta(days=1)
        return sign * count

    # -- working time -------------------------------------------------------------------------

    def _periods(self, day: dt.date) -> list[tuple[int, int]]:
        """Office periods of ``day`` as UTC microsecond intervals (empty on days off)."""
        if not self.is_workday(day):
            return []
        return [
            (
                _micros(dt.datetime.combine(day, start, tzinfo=self.tz)),
                _micros(dt.datetime.combine(day, end, tzinfo=self.tz)),
            )
            for start, end in self.hours
        ]

    def work_time(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """Working time between two instants (zero when ``end`` is not after ``start``)."""
        lo = _micros(aware(start, "start"))
        hi = _micros(aware(end, "end"))
        if hi <= lo:
            return dt.timedelta()
        total = 0
        day = start.astimezone(self.tz).date()
        last = end.astimezone(self.tz).date()
        while day <= last:
            for p_start, p_end in self._periods(day):
                overlap = min(hi, p_end) - max(lo, p_start)
                if overlap > 0:
                    total += overlap
            day += dt.timedelta(days=1)
        return dt.timedelta(microseconds=total)

    def add_work_time(self, start: dt.datetime, amount: dt.timedelta) -> dt.datetime:
        """The earliest instant by which ``amount`` of working time has passed since ``start``."""
        pos = _micros(aware(start, "start"))
        left = amount // _US
        if left < 0:
            raise DataError("amount: expected a working time of zero or more")
        if left == 0:
            return start.astimezone(self.tz)
        day = start.astimezone(self.tz).date()
        for _ in range(_MAX_SCAN_DAYS):
            for p_start, p_end in self._periods(day):
                if p_end <= pos:
                    continue
                begin = max(p_start, pos)
                available = p_end - begin
                if left <= available:
                    return (_EPOCH + dt.timedelta(microseconds=begin + left)).astimezone(self.tz)
                left -= available
            day += dt.timedelta(days=1)
        raise _no_workday()

    def add_workdays(self, start: dt.datetime, n: int) -> dt.datetime:
        """``start`` plus ``n`` working days of working time (one day = the office hours)."""
        if n < 0:
            raise DataError("n: expected a number of working days of zero or more")
        return self.add_work_time(start, self.day_length * n)


_DEFAULT: WorkCalendar | None = None


def default_calendar() -> WorkCalendar:
    """The shared Vietnamese calendar (Asia/Ho_Chi_Minh, HCMC office hours)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = WorkCalendar()
    return _DEFAULT
