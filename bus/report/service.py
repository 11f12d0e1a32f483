"""The on-time dossier report behind ``lgsp report sla``: read the city's published dossiers,
roll them up the administrative hierarchy, score them with :mod:`bus.report.sla`.

It reads what the wards published at city level, never the ward databases: by default the city
topic ``lgsp.79.tthc.dossier`` (the latest version of each dossier by the envelope's ``ts_ms``;
a delete drops the dossier), or a SQL table whose rows are dossier records (the city sink).

Each dossier counts for the unit of the requested level that its receiving unit belongs to
(ward → district → city in the 3-level model, ward → city in the 2-level one). A dossier
received by a unit above the level (a district's own one-stop shop in a ward report) counts
for that unit itself. Dossiers received before a reform are placed through the dated unit
changes (:class:`bus.report.regroup.Regrouping`: a split that names no rule field cannot be
divided and is listed as not regrouped). Nothing here reads the clock: ``as_of`` is an argument.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Required, TypedDict, TypeVar, Unpack

import sqlalchemy as sa
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from bus.config import Settings
from bus.errors import ConfigurationError, DatabaseUnavailableError, DataError, NotFoundError
from bus.report.regroup import NotRegrouped, Regrouping
from bus.report.sla import COUNTERS, DossierTimes, aggregate, from_record
from bus.report.workdays import WorkCalendar, default_calendar
from bus.units import Hierarchy, Unit, load_hierarchy, topic_name
from bus.units.timeline import Timeline

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


class Originals:
    """A reform's re-keyed copy (``lgsp route reform``) holds the new unit's code in its unit
    fields and the old unit as its ``source`` (a sink's ``_lgsp_unit``): counted with the
    original code, the code of the era its dossier was received in (codes are reused across
    eras, and the dossier's dates are the original's)."""

    def __init__(self, timeline: Timeline) -> None:
        self._successors: dict[str, set[str]] = {}
        for c in timeline.changes:
            if c.cross_era:
                self._successors.setdefault(c.old, set()).update(c.new)
        self.restored = 0

    def __call__(self, record: dict[str, Any], source_unit: object) -> dict[str, Any]:
        old = str(source_unit or "")
        new = str(record.get("receiving_unit") or record.get("unit") or "")
        if not old or old == new or new not in self._successors.get(old, ()):
            return record
        from bus.units.rekey import rekey_record

        self.restored += 1
        return rekey_record(record, new, old)


class LatestDossiers:
    """The latest version of each dossier from change events (``ts_ms`` order; ties: later).

    ``originals``: a reform's re-keyed copies (snapshot reads) count with their original
    unit codes (see :class:`Originals`)."""

    def __init__(self, originals: Originals | None = None) -> None:
        self._records: dict[str, dict[str, Any]] = {}
        self._ts: dict[str, int] = {}
        self.events = 0
        self.unreadable = 0
        self.originals = originals

    @property
    def rekeyed(self) -> int:
        return self.originals.restored if self.originals is not None else 0

    def _original(self, event: Mapping[str, Any], after: dict[str, Any]) -> dict[str, Any]:
        source = event.get("source")
        if self.originals is None or event.get("op") != "r" or not isinstance(source, Mapping):
            return after
        return self.originals(after, source.get("unit"))

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
            self._records[ident] = self._original(event, dict(after))

    def records(self) -> list[dict[str, Any]]:
        return list(self._records.values())


def city_topic(h: Hierarchy) -> str:
    """``lgsp.<root>.tthc.dossier``: where the roll-up routes land at city level."""
    return topic_name(h, h.root.code, DOSSIER_DATASET)


def read_topic(settings: Settings, topic: str) -> LatestDossiers:
    """Every event of ``topic`` from the beginning, reduced to the latest dossier versions
    (a reform's re-keyed copies with their original codes).

    Records that cannot be decoded are counted (``unreadable``) and skipped, not parked: a
    report only reads.
    """
    from bus.consume import Consumer, SkipCount
    from bus.units.timeline import load_timeline

    latest = LatestDossiers(Originals(load_timeline(settings)))
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


def read_table(
    url: str, table: str, originals: Originals | None = None
) -> Iterator[dict[str, Any]]:
    """Dossier records from a SQL table (``schema.table`` allowed), streamed.

    ``status_history`` may be JSON text; rows flagged deleted (the sink's ``_lgsp_deleted``,
    or a ``__deleted``, ``_deleted``, ``deleted`` or ``is_deleted`` column, by the connectors'
    rule ``connectors.soft_delete``) are left out.
    Naive timestamps are read as UTC. ``originals``: a row a reform re-keyed (its
    ``_lgsp_unit`` the old unit) counts with its original code.
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
                if originals is not None and record.get("_lgsp_unit"):
                    record = originals(record, record["_lgsp_unit"])
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
    regrouped_from: str = ""  # --as-hierarchy: the figures were recorded in other eras
    not_regrouped: list[NotRegrouped] = field(default_factory=list)

    def unit_rows(self) -> list[dict[str, Any]]:
        """The ``field == "all"`` row of every unit, in unit order."""
        return [r for r in self.rows if r["field"] == ALL_FIELDS]


class _Roller:
    """Reporting unit of a code of the report's hierarchy (``None``: unknown or outside the
    scope): the unit itself, or its ancestor at the report's level. Codes of other eras are
    placed in the hierarchy first (:class:`bus.report.regroup.Regrouping`)."""

    def __init__(self, h: Hierarchy, level: str, scope: Unit) -> None:
        self.h = h
        self.level_index = h.levels.index(level)
        self.scope = scope
        self._cache: dict[str, tuple[str | None, str]] = {}

    def __call__(self, code: str) -> tuple[str | None, str]:
        """(reporting code or None, reason: '' | 'unknown' | 'scope')."""
        found = self._cache.get(code)
        if found is None:
            found = self._cache[code] = self._resolve(code)
        return found

    def _resolve(self, code: str) -> tuple[str | None, str]:
        h = self.h
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


def made_by_reform(h: Hierarchy) -> bool:
    """Whether ``h`` came into force through a reform (its units valid from the effective
    date of a mapping into it, like hcmc-2025): dossiers received before it carry the codes
    of the hierarchy then in force and are regrouped into ``h``."""
    starts = {u.valid_from for u in h if u.valid_from is not None}
    return any(m.effective in starts for m in h.mappings)


def implied_regrouping(h: Hierarchy, level: str) -> Regrouping | None:
    """The regrouping a report in a reform-made hierarchy applies by itself (the packaged
    changes), or None."""
    if not made_by_reform(h):
        return None
    from bus.units.timeline import load_timeline

    timeline = load_timeline()
    if h.name not in timeline.by_name:
        return None
    return Regrouping(timeline, timeline.hierarchy(h.name), level)


def _finish(row: dict[str, Any]) -> dict[str, Any]:
    resolved = row["resolved"]
    in_time = row["resolved_early"] + row["resolved_on_time"]
    row["on_time_rate"] = in_time / resolved if resolved else None
    return row


def place_dossiers(
    records: Iterable[Mapping[str, Any]],
    report: SlaReport,
    h: Hierarchy,
    level: str,
    cal: WorkCalendar,
    regroup: Regrouping | None = None,
    since: dt.datetime | None = None,
) -> list[DossierTimes]:
    """Each record as scored times of the reporting unit of ``level`` it counts for, the
    report's skip counters kept. With ``regroup``, codes are first taken from the era of the
    dossier's received date into the report's hierarchy (the ones that cannot be placed are
    listed in ``report.not_regrouped``, counting the dossiers received from ``since`` to the
    report's ``as_of``)."""
    roll = _Roller(h, level, report.scope)
    if regroup is None:
        regroup = implied_regrouping(h, level)
    times: list[DossierTimes] = []
    for record in records:
        report.dossiers += 1
        try:
            d = from_record(record)
        except DataError as exc:
            report.invalid += 1
            log.warning("dossier skipped: %s", exc)
            continue
        received = cal.local_date(d.received_at)
        if regroup is not None:
            counted = (since is None or d.received_at >= since) and d.received_at <= report.as_of
            placed, why = regroup.place(d.unit, received, record, count=counted)
            if placed is None:
                if why == "unknown":
                    report.unknown_unit += 1
                continue
            d = replace(d, unit=placed)
        code, reason = roll(d.unit)
        if code is None:
            if reason == "unknown":
                report.unknown_unit += 1
            else:
                report.out_of_scope += 1
            continue
        times.append(replace(d, unit=code))
    if regroup is not None:
        report.not_regrouped = regroup.not_regrouped()
        report.regrouped_from = ", ".join(
            n for n in regroup.timeline.era_names if n != report.hierarchy
        )
    return times


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
    regroup: Regrouping | None = None,
) -> SlaReport:
    """Score ``records`` (``tthc.Dossier`` records) for ``month`` as of ``as_of``; with
    ``regroup`` (its target is ``hierarchy``), regrouped across reforms.

    ``all_units``: list every unit of the level in the scope, with zeros where nothing was
    published (default: only when they are the scope's direct subunits; else the units with
    dossiers in the month).
    """
    h = hierarchy
    cal = calendar or default_calendar()
    h.check_level(level)
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
    times = place_dossiers(records, report, h, level, cal, regroup, since=start)

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


def _read_records(
    settings: Settings,
    h: Hierarchy,
    topic: str | None,
    url: str | None,
    table: str | None,
) -> tuple[Iterable[Mapping[str, Any]], str, int]:
    """(records, what was read, undecodable events): the city topic or a SQL table."""
    if (url is None) != (table is None):
        raise ConfigurationError("url and table: give both to read a SQL table")
    if url is not None and table is not None:
        if topic is not None:
            raise ConfigurationError("topic: not used when reading a SQL table (url, table)")
        from bus.units.timeline import load_timeline

        originals = Originals(load_timeline(settings))
        return read_table(url, table, originals), f"table {table}", 0
    name = topic or city_topic(h)
    latest = read_topic(settings, name)
    return latest.records(), f"topic {name}", latest.unreadable


def _regrouping(settings: Settings, as_hierarchy: str | None, level: str) -> Regrouping | None:
    if as_hierarchy is None:
        return None
    from bus.units.timeline import load_timeline

    timeline = load_timeline(settings)
    return Regrouping(timeline, timeline.hierarchy(as_hierarchy), level)


_Report = TypeVar("_Report", "SlaReport", "TrendReport")


class ReportRead(TypedDict, total=False):
    """What a report reads and for which scope: the keywords :func:`sla_report` and
    :func:`sla_trend` share (``lgsp report sla`` builds one)."""

    level: Required[str]
    month: Required[str]
    as_of: Required[dt.datetime]
    unit: str | None
    topic: str | None
    url: str | None
    table: str | None
    hierarchy: str | None
    as_hierarchy: str | None
    calendar: WorkCalendar | None


def _from_sources(
    settings: Settings,
    build: Callable[..., _Report],
    *,
    level: str,
    month: str,
    as_of: dt.datetime,
    topic: str | None = None,
    url: str | None = None,
    table: str | None = None,
    hierarchy: str | None = None,
    as_hierarchy: str | None = None,
    **options: Any,
) -> _Report:
    """``build`` (:func:`build_report` or :func:`trend_report`) over the city topic (default)
    or a SQL table, in the hierarchy ``as_hierarchy``, else ``hierarchy``, else the configured
    one; the level is checked before anything is read."""
    h = load_hierarchy(as_hierarchy or hierarchy or settings.hierarchy)
    h.check_level(level)  # before reading anything
    regroup = _regrouping(settings, as_hierarchy, level)
    records, source, unreadable = _read_records(settings, h, topic, url, table)
    report = build(
        records,
        hierarchy=h,
        level=level,
        month=month,
        as_of=as_of,
        source=source,
        regroup=regroup,
        **options,
    )
    report.unreadable = unreadable
    return report


def sla_report(
    settings: Settings, *, all_units: bool | None = None, **read: Unpack[ReportRead]
) -> SlaReport:
    """The report from the city topic (default) or, with ``url`` and ``table``, a SQL table.
    ``as_hierarchy``: the figures regrouped into that hierarchy's units, whatever era each
    dossier was received in (see :mod:`bus.report.regroup`)."""
    return _from_sources(settings, build_report, all_units=all_units, **read)


def trend_months(month: str, count: int) -> list[str]:
    """``count`` months ending with ``month`` (YYYY-MM), oldest first."""
    if count < 1:
        raise ConfigurationError(f"trend: expected at least 1 month, got {count}")
    month_window(month, dt.UTC)  # checks the form
    year, number = (int(p) for p in month.split("-"))
    index = year * 12 + number - 1
    return [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in range(index - count + 1, index + 1)]


@dataclass
class TrendReport:
    """Counts per unit and month over several months (``--trend N``), one row per pair."""

    level: str
    months: list[str]
    as_of: dt.datetime
    hierarchy: str
    source: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    dossiers: int = 0
    invalid: int = 0
    unknown_unit: int = 0
    out_of_scope: int = 0
    unreadable: int = 0
    regrouped_from: str = ""
    not_regrouped: list[NotRegrouped] = field(default_factory=list)


def trend_report(
    records: Iterable[Mapping[str, Any]],
    *,
    hierarchy: Hierarchy,
    level: str,
    month: str,
    months: int,
    as_of: dt.datetime,
    unit: str | None = None,
    calendar: WorkCalendar | None = None,
    source: str = "",
    regroup: Regrouping | None = None,
    all_units: bool = False,
) -> TrendReport:
    """Each unit of ``level`` month by month for the ``months`` months ending with ``month``
    (the same placing and scoring as :func:`build_report`, one reporting period per month)."""
    cal = calendar or default_calendar()
    labels = trend_months(month, months)
    probe = build_report(
        [],
        hierarchy=hierarchy,
        level=level,
        month=labels[-1],
        as_of=as_of,
        unit=unit,
        calendar=cal,
    )  # checks level, unit and as_of the way a one-month report does
    first, _ = month_window(labels[0], cal.tz)
    times = place_dossiers(records, probe, hierarchy, level, cal, regroup, since=first)
    counted = aggregate(times, ("unit", "month"), as_of=as_of, calendar=cal, months=labels)
    table = {(r["unit"], r["month"]): r for r in counted}
    codes = {r["unit"] for r in counted}
    if all_units:
        codes |= {u.code for u in hierarchy.descendants(probe.scope.code) if u.level == level}
    report = TrendReport(level, labels, as_of, hierarchy.name, source)
    for code in sorted(codes, key=int):
        info = hierarchy.get(code)
        for label in labels:
            row = table.get((code, label)) or dict.fromkeys(COUNTERS, 0)
            counts = {c: row[c] for c in COUNTERS}
            report.rows.append(
                _finish(
                    {
                        "unit": code,
                        "unit_name": info.name,
                        "level": info.level,
                        "month": label,
                        **counts,
                    }
                )
            )
    for name in ("dossiers", "invalid", "unknown_unit", "out_of_scope", "regrouped_from"):
        setattr(report, name, getattr(probe, name))
    report.not_regrouped = probe.not_regrouped
    return report


def sla_trend(
    settings: Settings, *, months: int, all_units: bool = False, **read: Unpack[ReportRead]
) -> TrendReport:
    """:func:`trend_report` of the city topic (default) or a SQL table."""
    return _from_sources(settings, trend_report, months=months, all_units=all_units, **read)
