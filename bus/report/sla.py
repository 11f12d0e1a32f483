"""On-time scoring of administrative dossiers, the way Decision 766/QĐ-TTg counts progress.

Definitions (all dates in Asia/Ho_Chi_Minh, working time from :mod:`bus.report.workdays`):

- **effective due**: ``due_at`` moved later by the working time spent in "supplement
  requested" pauses. The clock stops during a pause, so only pauses that start before the
  (already moved) due time count; a pause still running counts up to the moment of scoring.
- **due working day**: the working day on or before the local date of the effective due.
- A resolved dossier is **late** when resolved after the effective due time, **early** when
  resolved on a date before the due working day, and **on_time** otherwise (resolved on the
  due working day, at or before the due time).
- An unresolved dossier is **overdue** when ``as_of`` is past the effective due, else **open**.
- A withdrawn dossier is **withdrawn** and is not scored.
- ``on_time_rate = (early + on_time) / resolved``, ``None`` when nothing was resolved.

A rejected dossier has a result (the refusal), so it is scored like a resolved one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bus.errors import ConfigurationError, DataError
from bus.report.workdays import WorkCalendar, aware, default_calendar

Outcome = Literal["early", "on_time", "late", "open", "overdue", "withdrawn"]
SUPPLEMENT_REQUESTED = "supplement_requested"
RESOLVED_STATUSES = ("resolved", "rejected")
GROUP_KEYS = ("unit", "field", "channel", "procedure_code", "month")
COUNTERS = (
    "received",
    "resolved",
    "resolved_early",
    "resolved_on_time",
    "resolved_late",
    "open",
    "overdue",
    "withdrawn",
)
_TICK = dt.timedelta(microseconds=1)

Pause = tuple[dt.datetime, dt.datetime | None]


def _check_aware(value: dt.datetime | None, name: str) -> None:
    if value is not None:
        aware(value, name)


@dataclass(frozen=True, slots=True)
class DossierTimes:
    """What scoring needs of one dossier; ``pauses`` are (start, end or None if running)."""

    received_at: dt.datetime
    due_at: dt.datetime
    resolved_at: dt.datetime | None = None
    pauses: tuple[Pause, ...] = ()
    withdrawn_at: dt.datetime | None = None
    dossier_id: str = ""
    unit: str = ""
    field: str = ""
    channel: str = ""
    procedure_code: str = ""

    def __post_init__(self) -> None:
        _check_aware(self.received_at, "received_at")
        _check_aware(self.due_at, "due_at")
        _check_aware(self.resolved_at, "resolved_at")
        _check_aware(self.withdrawn_at, "withdrawn_at")
        for index, (start, end) in enumerate(self.pauses):
            _check_aware(start, f"pauses[{index}].start")
            _check_aware(end, f"pauses[{index}].end")


# -- building from a tthc.Dossier record ----------------------------------------------------


def _instant(value: Any, name: str, naive_tz: dt.tzinfo) -> dt.datetime | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=naive_tz)
    if isinstance(value, int) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError as exc:
            raise DataError(f"{name}: expected an ISO 8601 timestamp") from exc
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=naive_tz)
    raise DataError(f"{name}: expected a timestamp, got {type(value).__name__}")


def _required(value: dt.datetime | None, name: str) -> dt.datetime:
    if value is None:
        raise DataError(f"{name}: expected a timestamp, got null")
    return value


def pauses_from_history(
    history: Iterable[Mapping[str, Any]], *, naive_tz: dt.tzinfo = dt.UTC
) -> tuple[Pause, ...]:
    """Supplement pauses: from each ``supplement_requested`` change to the next change."""
    changes: list[tuple[dt.datetime, str]] = []
    for index, change in enumerate(history):
        at = _required(
            _instant(change.get("at"), f"status_history[{index}].at", naive_tz),
            f"status_history[{index}].at",
        )
        changes.append((at, str(change.get("status"))))
    changes.sort(key=lambda item: item[0])
    pauses: list[Pause] = []
    for index, (at, status) in enumerate(changes):
        if status == SUPPLEMENT_REQUESTED:
            end = changes[index + 1][0] if index + 1 < len(changes) else None
            pauses.append((at, end))
    return tuple(pauses)


def from_record(record: Mapping[str, Any], *, naive_tz: dt.tzinfo = dt.UTC) -> DossierTimes:
    """A :class:`DossierTimes` from a ``tthc.Dossier`` record (decoded Avro or a sink row).

    Timestamps may be aware datetimes, epoch milliseconds or ISO strings; naive values are
    taken in ``naive_tz``. ``status_history`` may be absent (no pauses then).
    """
    history = list(record.get("status_history") or [])
    status = str(record.get("status") or "")

    def last_change(wanted: str) -> dt.datetime | None:
        times = [
            _instant(change.get("at"), "status_history.at", naive_tz)
            for change in history
            if str(change.get("status")) == wanted
        ]
        return max((t for t in times if t is not None), default=None)

    resolved_at = _instant(record.get("resolved_at"), "resolved_at", naive_tz)
    if resolved_at is None and status in RESOLVED_STATUSES:
        resolved_at = last_change(status)
        if resolved_at is None:
            raise DataError(f"resolved_at: expected a timestamp for a dossier with status {status}")
    withdrawn_at = None
    if status == "withdrawn":
        withdrawn_at = last_change("withdrawn") or _instant(
            record.get("updated_at"), "updated_at", naive_tz
        )
        if withdrawn_at is None:
            raise DataError("updated_at: expected a timestamp for a withdrawn dossier")
    return DossierTimes(
        received_at=_required(
            _instant(record.get("received_at"), "received_at", naive_tz), "received_at"
        ),
        due_at=_required(_instant(record.get("due_at"), "due_at", naive_tz), "due_at"),
        resolved_at=resolved_at,
        pauses=pauses_from_history(history, naive_tz=naive_tz),
        withdrawn_at=withdrawn_at,
        dossier_id=str(record.get("dossier_id") or ""),
        unit=str(record.get("receiving_unit") or record.get("unit") or ""),
        field=str(record.get("field") or ""),
        channel=str(record.get("channel") or ""),
        procedure_code=str(record.get("procedure_code") or ""),
    )


# -- scoring --------------------------------------------------------------------------------


def _merged_pauses(d: DossierTimes, as_of: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Pauses clipped to [received, resolution or as_of], sorted and merged."""
    stop = as_of
    if d.resolved_at is not None and d.resolved_at <= as_of:
        stop = d.resolved_at
    clipped: list[tuple[dt.datetime, dt.datetime]] = []
    for start, end in d.pauses:
        lo = max(start, d.received_at)
        hi = stop if end is None else min(end, stop)
        if hi > lo:
            clipped.append((lo, hi))
    clipped.sort()
    merged: list[tuple[dt.datetime, dt.datetime]] = []
    for lo, hi in clipped:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def effective_due(
    d: DossierTimes, as_of: dt.datetime, calendar: WorkCalendar | None = None
) -> dt.datetime:
    """``due_at`` plus the working time of the pauses that began before it, as of ``as_of``."""
    _check_aware(as_of, "as_of")
    cal = calendar or default_calendar()
    due = d.due_at
    for start, end in _merged_pauses(d, as_of):
        if start >= due:
            break  # the deadline had already passed when this pause began
        due = cal.add_work_time(due, cal.work_time(start, end))
    return due.astimezone(cal.tz)


def due_workday(due: dt.datetime, calendar: WorkCalendar | None = None) -> dt.date:
    """The working day a deadline belongs to: its local date, or the last working day before."""
    cal = calendar or default_calendar()
    return cal.workday_on_or_before(cal.local_date(due))


def classify(d: DossierTimes, as_of: dt.datetime, calendar: WorkCalendar | None = None) -> Outcome:
    """Score one dossier as of ``as_of`` (events after ``as_of`` are not seen)."""
    _check_aware(as_of, "as_of")
    cal = calendar or default_calendar()
    resolved = d.resolved_at is not None and d.resolved_at <= as_of
    if d.withdrawn_at is not None and d.withdrawn_at <= as_of:
        if not resolved or (d.resolved_at is not None and d.withdrawn_at < d.resolved_at):
            return "withdrawn"
    due = effective_due(d, as_of, cal)
    if resolved and d.resolved_at is not None:
        if d.resolved_at > due:
            return "late"
        if cal.local_date(d.resolved_at) < due_workday(due, cal):
            return "early"
        return "on_time"
    return "overdue" if as_of > due else "open"


def workdays_late(d: DossierTimes, as_of: dt.datetime, calendar: WorkCalendar | None = None) -> int:
    """Working days from the due working day to the resolution (or ``as_of`` if unresolved).

    0 when not late, and for a dossier finished late on its own due working day.
    """
    cal = calendar or default_calendar()
    outcome = classify(d, as_of, cal)
    if outcome not in ("late", "overdue"):
        return 0
    end = d.resolved_at if outcome == "late" and d.resolved_at is not None else as_of
    return max(0, cal.workdays_between(due_workday(effective_due(d, as_of, cal), cal), end))


# -- aggregation ----------------------------------------------------------------------------


def _month_label(value: dt.datetime, cal: WorkCalendar) -> str:
    return value.astimezone(cal.tz).strftime("%Y-%m")


def _month_window(label: str, cal: WorkCalendar) -> tuple[dt.datetime, dt.datetime]:
    try:
        year, month = (int(part) for part in label.split("-"))
        start = dt.datetime(year, month, 1, tzinfo=cal.tz)
    except ValueError as exc:
        raise ConfigurationError(f"months: expected YYYY-MM, got {label!r}") from exc
    nxt = dt.datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=cal.tz)
    return start, nxt


def _months_between(first: str, last: str, cal: WorkCalendar) -> list[str]:
    labels = []
    current = first
    while current <= last:
        labels.append(current)
        current = _month_label(_month_window(current, cal)[1], cal)
    return labels


def _rate(counts: Mapping[str, int]) -> float | None:
    if not counts["resolved"]:
        return None
    return (counts["resolved_early"] + counts["resolved_on_time"]) / counts["resolved"]


def aggregate(
    rows: Iterable[DossierTimes],
    group_by: Sequence[str] = ("unit", "field", "month"),
    *,
    as_of: dt.datetime,
    calendar: WorkCalendar | None = None,
    months: Sequence[str] | None = None,
    unit_of: Callable[[str], str] | None = None,
) -> list[dict[str, Any]]:
    """Counts and on-time rate per group, each counter a dict key.

    With ``month`` in ``group_by`` each month is a reporting period, as in the public-service
    portal's reports: ``received`` and ``resolved_*`` count what happened in the month;
    ``open`` and ``overdue`` count what was unresolved at the month's end (or at ``as_of`` for
    the current month), including dossiers received in earlier months. Without ``month``,
    the period is everything up to ``as_of``. Months default to the first month with a
    received dossier through the month of ``as_of``. ``unit_of`` maps a dossier's unit to
    the reporting unit (ward to district, say) before grouping.
    """
    _check_aware(as_of, "as_of")
    cal = calendar or default_calendar()
    for key in group_by:
        if key not in GROUP_KEYS:
            raise ConfigurationError(
                f"group_by: expected keys among {', '.join(GROUP_KEYS)}, got {key!r}"
            )
    items = list(rows)
    by_month = "month" in group_by
    windows: list[tuple[str, dt.datetime | None, dt.datetime]]
    if by_month:
        if months is None:
            received = [d.received_at for d in items if d.received_at <= as_of]
            if not received:
                return []
            labels = _months_between(
                _month_label(min(received), cal), _month_label(as_of, cal), cal
            )
        else:
            labels = sorted(set(months))
        windows = []
        for label in labels:
            start, nxt = _month_window(label, cal)
            if start > as_of:
                continue
            windows.append((label, start, min(nxt - _TICK, as_of)))
    else:
        windows = [("", None, as_of)]

    table: dict[tuple[str, ...], dict[str, int]] = {}

    def bump(d: DossierTimes, label: str, counter: str) -> None:
        values = {
            "unit": unit_of(d.unit) if unit_of else d.unit,
            "field": d.field,
            "channel": d.channel,
            "procedure_code": d.procedure_code,
            "month": label,
        }
        key = tuple(values[k] for k in group_by)
        counts = table.setdefault(key, dict.fromkeys(COUNTERS, 0))
        counts[counter] += 1

    def within(t: dt.datetime | None, start: dt.datetime | None, end: dt.datetime) -> bool:
        return t is not None and t <= end and (start is None or t >= start)

    for d in items:
        finished = [t for t in (d.resolved_at, d.withdrawn_at) if t is not None]
        stop = min(finished) if finished else None
        for label, start, end in windows:
            if d.received_at > end or (start is not None and stop is not None and start > stop):
                continue  # not yet received, or already finished before this month
            if within(d.received_at, start, end):
                bump(d, label, "received")
            outcome = classify(d, end, cal)
            if outcome in ("early", "on_time", "late"):
                if within(d.resolved_at, start, end):
                    bump(d, label, "resolved")
                    bump(d, label, f"resolved_{outcome}")
            elif outcome == "withdrawn":
                if within(d.withdrawn_at, start, end):
                    bump(d, label, "withdrawn")
            else:
                bump(d, label, outcome)

    result = []
    for key in sorted(table):
        counts = table[key]
        row: dict[str, Any] = dict(zip(group_by, key, strict=True))
        row.update(counts)
        row["on_time_rate"] = _rate(counts)
        result.append(row)
    return result
