"""The on-time dossier report behind ``lgsp report sla``: read the city's published dossiers,
roll them up the administrative hierarchy, score them with :mod:`bus.report.sla`.

It reads what the wards published at city level, never the ward databases: by default the city
topic ``lgsp.79.tthc.dossier`` (the latest version of each dossier by the envelope's ``ts_ms``;
a delete drops the dossier), or a SQL table whose rows are dossier records (the city sink).

Each dossier counts for the unit of the requested level that its receiving unit belongs to
(ward → district → city in the 3-level model, ward → city in the 2-level one). A dossier
received by a unit above the level (a district's own one-stop shop in a ward report) counts
for that unit itself. Dossiers received before a reform are placed through the hierarchy's
dated code mapping (see :class:`_Roller`). Nothing here reads the clock: ``as_of`` is an argument.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from bus.config import Settings
from bus.errors import ConfigurationError, DatabaseUnavailableError, DataError, NotFoundError
from bus.report.sla import COUNTERS, DossierTimes, aggregate, from_record
from bus.report.workdays import WorkCalendar, default_calendar
from bus.units import Hierarchy, Unit, load_hierarchy, topic_name

log = logging.getLogger(__name__)

DOSSIER_DATASET = "tthc.dossier"
ALL_FIELDS = "all"
REQUIRED_COLUMNS = ("dossier_id", "received_at", "due_at", "status")
DELETED_COLUMNS = ("_lgsp_deleted", "__deleted", "_deleted", "deleted", "is_deleted")
_TICK = dt.timedelta(microseconds=1)


# -- months and as-of -----------------------------------------------------------------------


def month_window(month: str, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
    """(first instant, last instant) of ``YYYY-MM`` in ``tz``."""
    try:
        year_text, month_text = month.split("-")
        if len(year_text) != 4 or len(month_text) != 2:
            raise ValueError(month)
        start = dt.datetime(int(year_text), int(month_text), 1, tzinfo=tz)
    except (ValueError, AttributeError) as exc:
        raise ConfigurationError(f"month: expected YYYY-MM, got {month!r}") from exc
    following = dt.datetime(start.year + (start.month == 12), start.month % 12 + 1, 1, tzinfo=tz)
    return start, following - _TICK


def default_as_of(month: str, now: dt.datetime, tz: dt.tzinfo) -> dt.datetime:
    """The end of ``month``, or ``now`` while the month is still running."""
    start, end = month_window(month, tz)
    if now < start:
        raise ConfigurationError(f"month: {month} has not started yet")
    return min(end, now.astimezone(tz))


def parse_as_of(
    value: str | None, month: str, tz: dt.tzinfo, *, option: str = "as_of"
) -> dt.datetime:
    """``value`` (ISO 8601; a bare date is the end of that day; naive times are in ``tz``),
    or :func:`default_as_of` of ``month`` when not given."""
    if value is None:
        return default_as_of(month, dt.datetime.now(tz), tz)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise ConfigurationError(
            f"{option}: expected an ISO 8601 date or time, got {value!r}"
        ) from exc
    if len(value) == 10:  # a bare date: the end of that day
        parsed = parsed.replace(hour=23, minute=59, second=59, microsecond=999999)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=tz)


# -- reading the published dossiers ---------------------------------------------------------


class LatestDossiers:
    """The latest version of each dossier from change events (``ts_ms`` order; ties: later)."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._ts: dict[str, int] = {}
        self.events = 0
        self.unreadable = 0

    @staticmethod
    def _dossier_id(event: Mapping[str, Any]) -> str | None:
        for side in ("after", "before"):
            record = event.get(side)
            if isinstance(record, Mapping) and record.get("dossier_id"):
                return str(record["dossier_id"])
        key = event.get("key")
        if isinstance(key, str):
            try:
                parsed = json.loads(key)
            except ValueError:
                return None
            if isinstance(parsed, dict) and parsed.get("dossier_id"):
                return str(parsed["dossier_id"])
        return None

    def add(self, event: Mapping[str, Any]) -> None:
        self.events += 1
        ident = self._dossier_id(event)
        if ident is None:
            self.unreadable += 1
            return
        ts = int(event.get("ts_ms") or 0)
        if ident in self._ts and ts < self._ts[ident]:
            return  # an older version read after a newer one
        self._ts[ident] = ts
        after = event.get("after")
        if event.get("op") == "d" or not isinstance(after, Mapping):
            self._records.pop(ident, None)
        else:
            self._records[ident] = dict(after)

    def records(self) -> list[dict[str, Any]]:
        return list(self._records.values())


def city_topic(h: Hierarchy) -> str:
    """``lgsp.<root>.tthc.dossier``: where the roll-up routes land at city level."""
    return topic_name(h, h.root.code, DOSSIER_DATASET)


def read_topic(settings: Settings, topic: str) -> LatestDossiers:
    """Every event of ``topic`` from the beginning, reduced to the latest dossier versions.

    Records that cannot be decoded are counted (``unreadable``) and skipped, not parked: a
    report only reads.
    """
    from bus.consume import Consumer, SkipCount

    latest = LatestDossiers()
    skip = SkipCount()

    def handle(batch: list[Any]) -> None:
        for message in batch:
            latest.add(message.value)

    with Consumer(settings, "lgsp-report-sla", on_error=skip) as consumer:
        if not consumer.partitions([topic]):
            raise NotFoundError(f"topic {topic} does not exist on the broker (nothing published?)")
        consumer.run_bounded([topic], handle, from_beginning=True, commit=False)
    latest.unreadable = skip.count
    return latest


def read_table(url: str, table: str) -> Iterator[dict[str, Any]]:
    """Dossier records from a SQL table (``schema.table`` allowed), streamed.

    ``status_history`` may be JSON text; rows flagged deleted (the sink's ``_lgsp_deleted``,
    or a ``__deleted``, ``_deleted``, ``deleted`` or ``is_deleted`` column, by the connectors'
    rule ``connectors.soft_delete``) are left out.
    Naive timestamps are read as UTC.
    """
    from connectors.soft_delete import is_deleted
    from connectors.sql.types import split_table

    db_schema, name = split_table(table, "table", plain=True)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigurationError(f"url: not a usable SQLAlchemy URL ({exc})") from exc
    try:
        try:
            reflected = sa.Table(name, sa.MetaData(), schema=db_schema, autoload_with=engine)
        except NoSuchTableError as exc:
            raise NotFoundError(f"table: {table} does not exist in the database") from exc
        columns = set(reflected.c.keys())
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise ConfigurationError(
                f"table {table}: missing column(s) {', '.join(missing)} of a tthc.Dossier record"
            )
        deleted = [c for c in DELETED_COLUMNS if c in columns]
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=2000).execute(sa.select(reflected))
            for row in result.mappings():
                record = dict(row)
                if any(is_deleted(record.get(c)) for c in deleted):
                    continue
                history = record.get("status_history")
                if isinstance(history, str | bytes):
                    try:
                        record["status_history"] = json.loads(history)
                    except ValueError:
                        record["status_history"] = None
                yield record
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailableError(
            f"table {table}: database error ({type(exc.orig).__name__})"
        ) from exc
    except SQLAlchemyError as exc:
        raise ConfigurationError(f"table {table}: cannot read ({type(exc).__name__})") from exc
    finally:
        engine.dispose()


# -- rolling up and scoring -----------------------------------------------------------------


@dataclass
class SlaReport:
    """Counts per reporting unit and field for one month, plus the scope's total.

    ``rows``: one row per unit of the level with ``field == "all"`` (zeros for a unit with no
    dossier), followed by that unit's per-field rows; ``total``: the scope unit as a whole.
    Every row has ``unit``, ``unit_name``, ``level``, ``field``, ``month``, the counters of
    :data:`bus.report.sla.COUNTERS` and ``on_time_rate`` (``None`` when nothing resolved).
    """

    level: str
    month: str
    as_of: dt.datetime
    scope: Unit
    hierarchy: str
    source: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    total: dict[str, Any] = field(default_factory=dict)
    dossiers: int = 0
    invalid: int = 0
    unknown_unit: int = 0
    out_of_scope: int = 0
    unreadable: int = 0

    def unit_rows(self) -> list[dict[str, Any]]:
        """The ``field == "all"`` row of every unit, in unit order."""
        return [r for r in self.rows if r["field"] == ALL_FIELDS]


class _Roller:
    """Receiving unit code → reporting unit code (``None``: unknown or outside the scope).

    A hierarchy made by a reform (its units valid from the mapping's effective date, like
    hcmc-2025) takes the codes of dossiers received before the reform through the mapping,
    one step per effective date up to the report's date; codes recorded after it are already
    the new ones (the reform reused some old codes for other wards).
    """

    def __init__(self, h: Hierarchy, level: str, scope: Unit, on: dt.date) -> None:
        self.h = h
        self.level_index = h.levels.index(level)
        self.scope = scope
        starts = {u.valid_from for u in h if u.valid_from is not None}
        tables: dict[dt.date, dict[str, str]] = {}
        for m in h.mappings:
            if m.effective <= on and m.effective in starts:
                tables.setdefault(m.effective, {})[m.old] = m.new
        self.steps = sorted(tables.items())
        self._cache: dict[tuple[str, int], tuple[str | None, str]] = {}

    def __call__(self, code: str, received: dt.date) -> tuple[str | None, str]:
        """(reporting code or None, reason: '' | 'unknown' | 'scope')."""
        pending = sum(1 for effective, _ in self.steps if received < effective)
        key = (code, pending)
        found = self._cache.get(key)
        if found is None:
            found = self._resolve(code, len(self.steps) - pending)
            self._cache[key] = found
        return found

    def _resolve(self, code: str, first_step: int) -> tuple[str | None, str]:
        h = self.h
        for _, table in self.steps[first_step:]:
            code = table.get(code, code)
        if code not in h:
            return None, "unknown"
        unit = h.get(code)
        chain = [unit, *h.ancestors(unit.code)]
        if self.scope.code not in {u.code for u in chain}:
            return None, "scope"
        if h.levels.index(unit.level) <= self.level_index:
            return unit.code, ""
        wanted = h.levels[self.level_index]
        return next(u.code for u in chain if u.level == wanted), ""


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    resolved = row["resolved"]
    in_time = row["resolved_early"] + row["resolved_on_time"]
    row["on_time_rate"] = in_time / resolved if resolved else None
    return row


def check_level(h: Hierarchy, level: str) -> None:
    if level not in h.levels:
        raise ConfigurationError(
            f"level: expected one of {', '.join(h.levels)} for hierarchy {h.name!r}, got {level!r}"
        )


def build_report(
    records: Iterable[Mapping[str, Any]],
    *,
    hierarchy: Hierarchy,
    level: str,
    month: str,
    as_of: dt.datetime,
    unit: str | None = None,
    calendar: WorkCalendar | None = None,
    source: str = "",
    all_units: bool | None = None,
) -> SlaReport:
    """Score ``records`` (``tthc.Dossier`` records) for ``month`` as of ``as_of``.

    ``all_units``: list every unit of the level in the scope, with zeros where nothing was
    published (default: only when they are the scope's direct subunits; else the units with
    dossiers in the month).
    """
    h = hierarchy
    cal = calendar or default_calendar()
    check_level(h, level)
    if as_of.tzinfo is None or as_of.utcoffset() is None:
        raise ConfigurationError("as_of: expected a timezone-aware datetime")
    start, _ = month_window(month, cal.tz)
    if as_of < start:
        raise ConfigurationError(f"as_of: {as_of.isoformat()} is before the month {month}")
    scope = h.get(unit) if unit is not None else h.root
    if h.levels.index(scope.level) > h.levels.index(level):
        raise ConfigurationError(
            f"unit: {scope.code} is a {scope.level}; the level {level} is above it"
        )
    report = SlaReport(
        level=level,
        month=month,
        as_of=as_of,
        scope=scope,
        hierarchy=h.name,
        source=source,
    )
    roll = _Roller(h, level, scope, cal.local_date(as_of))
    times: list[DossierTimes] = []
    for record in records:
        report.dossiers += 1
        try:
            d = from_record(record)
        except DataError as exc:
            report.invalid += 1
            log.warning("dossier skipped: %s", exc)
            continue
        code, reason = roll(d.unit, cal.local_date(d.received_at))
        if code is None:
            if reason == "unknown":
                report.unknown_unit += 1
            else:
                report.out_of_scope += 1
            continue
        times.append(replace(d, unit=code))

    by_field = aggregate(
        times, ("unit", "field", "month"), as_of=as_of, calendar=cal, months=[month]
    )
    totals: dict[str, dict[str, Any]] = {}
    fields: dict[str, list[dict[str, Any]]] = {}
    depth = h.levels.index(level) - h.levels.index(scope.level)
    if all_units is None:
        all_units = depth <= 1  # the scope itself or the units directly under it
    if depth == 0:
        listed = [scope]
    elif all_units:
        listed = [u for u in h.descendants(scope.code) if u.level == level]
    else:
        listed = []
    order = [u.code for u in listed]
    for code in order:
        totals[code] = dict.fromkeys(COUNTERS, 0)
    for row in by_field:
        code = row["unit"]
        if code not in totals:
            totals[code] = dict.fromkeys(COUNTERS, 0)
            order.append(code)
        for counter in COUNTERS:
            totals[code][counter] += row[counter]
        fields.setdefault(code, []).append(row)

    grand = dict.fromkeys(COUNTERS, 0)
    for code in order:
        unit_info = h.get(code)
        base = {"unit": code, "unit_name": unit_info.name, "level": unit_info.level}
        report.rows.append(_finish({**base, "field": ALL_FIELDS, "month": month, **totals[code]}))
        for row in sorted(fields.get(code, []), key=lambda r: r["field"]):
            counts = {c: row[c] for c in COUNTERS}
            report.rows.append(_finish({**base, "field": row["field"], "month": month, **counts}))
        for counter in COUNTERS:
            grand[counter] += totals[code][counter]
    report.total = _finish(
        {
            "unit": scope.code,
            "unit_name": scope.name,
            "level": scope.level,
            "field": ALL_FIELDS,
            "month": month,
            **grand,
        }
    )
    return report


def sla_report(
    settings: Settings,
    *,
    level: str,
    month: str,
    as_of: dt.datetime,
    unit: str | None = None,
    topic: str | None = None,
    url: str | None = None,
    table: str | None = None,
    hierarchy: str | None = None,
    calendar: WorkCalendar | None = None,
    all_units: bool | None = None,
) -> SlaReport:
    """The report from the city topic (default) or, with ``url`` and ``table``, a SQL table."""
    h = load_hierarchy(hierarchy or settings.hierarchy)
    check_level(h, level)  # before reading anything
    if (url is None) != (table is None):
        raise ConfigurationError("url and table: give both to read a SQL table")
    unreadable = 0
    records: Iterable[Mapping[str, Any]]
    if url is not None and table is not None:
        if topic is not None:
            raise ConfigurationError("topic: not used when reading a SQL table (url, table)")
        records, source = read_table(url, table), f"table {table}"
    else:
        name = topic or city_topic(h)
        latest = read_topic(settings, name)
        records, source, unreadable = latest.records(), f"topic {name}", latest.unreadable
    report = build_report(
        records,
        hierarchy=h,
        level=level,
        month=month,
        as_of=as_of,
        unit=unit,
        calendar=calendar,
        source=source,
        all_units=all_units,
    )
    report.unreadable = unreadable
    return report
