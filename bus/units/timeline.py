"""The hierarchy as dated data: every shipped hierarchy (an era, valid while its root is) and
every unit change between them (the packaged mappings and the operators' stored files).

``Timeline.hierarchy_on(day)`` is the hierarchy in force on a day; ``became(code, h, on)`` is
what a unit turned into by a date; ``history(code)`` lists the changes that touch a code.
A cut-over (``lgsp route reform``) is recorded in the control database: from then on the
process context uses the new hierarchy and sources registered for replaced units are refused.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from bus.config import Settings
from bus.errors import ConfigurationError
from bus.units.changes import (
    ChangeFileError,
    SplitRule,
    UnitChange,
    packaged_changes,
    parse_change_file,
    validate_changes,
)
from bus.units.hierarchy import (
    Hierarchy,
    Unit,
    _data_dir,
    _read_json,
    available_hierarchies,
    load_hierarchy,
)


@dataclass(frozen=True)
class Successor:
    """What a unit became: the unit, its hierarchy and the changes that led there."""

    unit: Unit
    hierarchy: str
    via: tuple[UnitChange, ...]


class Timeline:
    def __init__(self, eras: Sequence[Hierarchy], changes: Sequence[UnitChange]) -> None:
        self.eras = sorted(eras, key=lambda h: h.root.valid_from or date.min)
        self.by_name = {h.name: h for h in self.eras}
        self.changes = sorted(changes, key=lambda c: (c.effective, c.from_hierarchy, c.old))
        self._from: dict[tuple[str, str], list[UnitChange]] = {}
        for c in self.changes:
            self._from.setdefault((c.from_hierarchy, c.old), []).append(c)

    @property
    def era_names(self) -> list[str]:
        return [h.name for h in self.eras]

    def hierarchy(self, name: str) -> Hierarchy:
        if name not in self.by_name:
            raise ConfigurationError(
                f"hierarchy {name!r} does not exist; expected one of {self.era_names}"
            )
        return self.by_name[name]

    def hierarchy_on(self, day: date) -> Hierarchy:
        """The hierarchy whose root is valid on ``day``."""
        for h in self.eras:
            if h.root.valid_on(day):
                return h
        raise ConfigurationError(f"no hierarchy is in force on {day.isoformat()}")

    def changes_of(
        self, code: str, hierarchy: str, *, until: date | None = None
    ) -> list[UnitChange]:
        """The changes of unit ``code`` of ``hierarchy`` (effective by ``until``), oldest first."""
        out = self._from.get((hierarchy, str(code)), [])
        return [c for c in out if until is None or c.effective <= until]

    def became(
        self,
        code: str,
        hierarchy: str,
        on: date,
        record: Mapping | None = None,
        eras: Collection[str] | None = None,
    ) -> list[Successor]:
        """What unit ``code`` of ``hierarchy`` is on ``on``: itself when nothing changed it;
        after a merge/rename/move the new unit; after a split every part (or, given a record,
        the part its rule chooses). ``eras``: follow only changes into those hierarchies."""
        h = self.hierarchy(hierarchy)
        start = Successor(h.get(code), hierarchy, ())
        out, todo = [], [start]
        while todo:
            s = todo.pop()
            steps = [
                c
                for c in self.changes_of(s.unit.code, s.hierarchy, until=on)
                if (not s.via or c.effective > s.via[-1].effective)
                and (eras is None or c.to_hierarchy in eras)
            ]
            if not steps:
                out.append(s)
                continue
            c = steps[0]
            targets = [c.target(record)] if record is not None else list(c.new)
            nh = self.hierarchy(c.to_hierarchy)
            for n in targets:
                todo.append(Successor(_renamed(nh.get(n), c), c.to_hierarchy, (*s.via, c)))
        return sorted(out, key=lambda s: int(s.unit.code))

    def history(self, code: str) -> list[UnitChange]:
        """Every change naming ``code`` as old or new unit, in date order."""
        code = str(code)
        return [c for c in self.changes if c.old == code or code in c.new]

    def predecessors(self, code: str, hierarchy: str) -> list[UnitChange]:
        """The changes into unit ``code`` of ``hierarchy``."""
        return [c for c in self.changes if c.to_hierarchy == hierarchy and code in c.new]


def _renamed(unit: Unit, change: UnitChange) -> Unit:
    if change.cross_era or (change.name is None and change.parent is None):
        return unit
    return Unit(
        unit.code,
        change.name or unit.name,
        unit.level,
        change.parent or unit.parent,
        unit.valid_from,
        unit.valid_to,
    )


# --- loading -------------------------------------------------------------------------------


def _packaged() -> list[UnitChange]:
    out: list[UnitChange] = []
    for path in sorted(_data_dir().glob("unit-mapping-*.json")):
        data = _read_json(path)
        names = {n: {u.code: u.name for u in load_hierarchy(n)} for n in (data["from"], data["to"])}
        out.extend(packaged_changes(data, names[data["from"]], names[data["to"]]))
    return out


def _stored(settings: Settings) -> list[UnitChange]:
    from sqlalchemy import select

    from bus.db import session_scope
    from bus.units.models import UnitChangeRow

    with session_scope(settings) as s:
        rows = s.scalars(select(UnitChangeRow).order_by(UnitChangeRow.id)).all()
        return [
            UnitChange(
                r.old_code,
                tuple(r.new_codes),
                r.effective,
                r.kind,
                r.mapping,
                r.from_hierarchy,
                r.to_hierarchy,
                SplitRule(r.rule["default"], r.rule.get("field"), r.rule.get("values") or {})
                if r.rule
                else None,
                name=r.new_name,
                parent=r.new_parent,
            )
            for r in rows
        ]


def load_timeline(settings: Settings | None = None) -> Timeline:
    """Every shipped hierarchy and packaged change, plus the stored ones when ``settings``."""
    eras = [load_hierarchy(n) for n in available_hierarchies()]
    return Timeline(eras, with_refinements(_packaged(), _stored(settings) if settings else []))


def with_refinements(known: Sequence[UnitChange], added: Sequence[UnitChange]) -> list[UnitChange]:
    """``known`` and ``added``, where an added split that gives a known split its rule's
    field (:meth:`UnitChange.refines`) replaces it: one change per unit and date."""
    out = [k for k in known if not any(a.refines(k) for a in added)]
    return out + list(added)


def add_change_file(settings: Settings, path: Path) -> list[UnitChange]:
    """Validate an operator's mapping file against everything known and store it in one
    transaction; any problem: ``ChangeFileError`` naming each bad entry, nothing stored."""
    from bus.db import session_scope
    from bus.units.models import UnitChangeRow

    name, changes, problems = parse_change_file(path)
    timeline = load_timeline(settings)
    if any(c.source == name for c in timeline.changes):
        problems.append(f"name: a mapping named {name!r} is already stored")
    problems += validate_changes(changes, timeline.by_name, timeline.changes, timeline.era_names)
    if problems:
        raise ChangeFileError(name, problems)
    now = dt.datetime.now(dt.UTC)
    with session_scope(settings) as s:
        for c in changes:
            s.add(
                UnitChangeRow(
                    mapping=name,
                    from_hierarchy=c.from_hierarchy,
                    to_hierarchy=c.to_hierarchy,
                    old_code=c.old,
                    new_codes=list(c.new),
                    kind=c.kind,
                    effective=c.effective,
                    rule=c.rule.to_dict() if c.rule else None,
                    new_name=c.name,
                    new_parent=c.parent,
                    added_at=now,
                )
            )
    return changes


def era_units(
    configured: str,
    units: list[str],
    era: str,
    settings: Settings | None = None,
    today: date | None = None,
) -> list[str]:
    """The publishing units (codes of the configured hierarchy) as units of ``era``: what
    they became on the day that hierarchy came into force, and the units that changes inside
    ``era`` effective by ``today`` made of them (a source's later events go there:
    :class:`EventUnits`); ``settings``: with the operators' stored changes."""
    timeline = load_timeline(settings)
    start = timeline.hierarchy(era).root.valid_from
    if era == configured:
        base = list(units)
    elif start is None:
        return []
    else:
        became = [
            s for u in units for s in timeline.became(u, configured, start) if s.hierarchy == era
        ]
        base = sorted({s.unit.code for s in became}, key=int)
    day = max(today or date.today(), start or date.min)
    later = {s.unit.code for u in base for s in timeline.became(u, era, day, eras=(era,))}
    return [*dict.fromkeys(base), *sorted(later - set(base), key=int)]


def era_names_in_force(settings: Settings) -> list[str]:
    """The hierarchies a bus configured with ``settings.hierarchy`` has topics in: that one up
    to the one in force (after a cut-over, both: old topics keep their history)."""
    names = load_timeline().era_names
    first = names.index(settings.hierarchy)
    last = names.index(hierarchy_name_in_force(settings))
    return names[first : max(first, last) + 1]


VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


def vn_day(ts_ms: int) -> date:
    """The Vietnamese calendar day of a change time in epoch milliseconds."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, VIETNAM).date()


@dataclass(frozen=True)
class EventUnits:
    """The unit a source's event is published for: the hierarchy in force at the event's time.

    A source is registered for unit ``code`` of ``hierarchy``. An event dated (``ts_ms``, in
    Vietnam) before any change that ends that unit is the unit's own: its topic. An event dated
    on or after such a change (a merge, a code change, a split) belongs to the unit that
    continues it on that day, as :meth:`Timeline.became` follows it with the event's record
    (a split's rule picks the part, by its field, else its default part: the re-keying route's
    choice), but only through changes into ``eras`` (the hierarchies the bus has topics in:
    before a reform's cut-over is recorded the new list's topics do not exist yet, and the
    re-keying route carries such events over when it runs). Never backwards: an event dated
    before the source's unit began (a new ward's system holding an older record) is that
    unit's own; the units before it are closed history."""

    timeline: Timeline
    code: str
    hierarchy: str
    eras: tuple[str, ...]
    since_ms: int | None  # the first moment a change ends the unit (into ``eras``); None: never

    def of(self, event: Mapping) -> Successor | None:
        """The unit that continues the source's on the event's day; None: the source's own."""
        ts = int(event.get("ts_ms") or 0)
        if self.since_ms is None or ts < self.since_ms:
            return None
        record = event.get("after") or event.get("before") or {}
        day = vn_day(ts)
        [unit] = self.timeline.became(self.code, self.hierarchy, day, dict(record), self.eras)
        if (unit.hierarchy, unit.unit.code) == (self.hierarchy, self.code):
            return None
        return unit


def event_units(settings: Settings, code: str, registered: Hierarchy) -> EventUnits:
    """:class:`EventUnits` of a source registered for ``code`` of ``registered``."""
    timeline = load_timeline(settings)
    eras = tuple(era_names_in_force(settings))
    if registered.name not in eras:
        eras = (registered.name, *eras)
    ends = [
        c.effective
        for c in timeline.changes_of(code, registered.name)
        if c.ends_old and c.to_hierarchy in eras
    ]
    since = effective_ms(min(ends)) if ends else None
    return EventUnits(timeline, str(code), registered.name, eras, since)


# --- cut-overs --------------------------------------------------------------------------------


def effective_ms(day: date) -> int:
    """The first millisecond of ``day`` in Vietnam: when a reform effective that day starts
    (a route's redirect, a re-keyed copy's earliest stamp, reconcile's boundary)."""
    return int(dt.datetime.combine(day, dt.time(), VIETNAM).timestamp() * 1000)


@dataclass(frozen=True)
class Cutover:
    from_hierarchy: str
    to_hierarchy: str
    effective: date


def cutovers(settings: Settings) -> list[Cutover]:
    from sqlalchemy import select

    from bus.db import session_scope
    from bus.units.models import UnitCutover

    with session_scope(settings) as s:
        rows = s.scalars(select(UnitCutover).order_by(UnitCutover.effective, UnitCutover.id)).all()
        return [Cutover(r.from_hierarchy, r.to_hierarchy, r.effective) for r in rows]


def record_cutover(settings: Settings, cut: Cutover, detail: dict | None = None) -> bool:
    """Record ``cut`` once: False when the same cut-over (from, to, effective) is already
    recorded (a rerun of the reform), then nothing is written."""
    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError

    from bus.db import session_scope
    from bus.units.models import UnitCutover

    same = select(UnitCutover.id).where(
        UnitCutover.from_hierarchy == cut.from_hierarchy,
        UnitCutover.to_hierarchy == cut.to_hierarchy,
        UnitCutover.effective == cut.effective,
    )
    with session_scope(settings) as s:
        if s.scalars(same).first() is not None:
            return False
    try:
        with session_scope(settings) as s:
            s.add(
                UnitCutover(
                    from_hierarchy=cut.from_hierarchy,
                    to_hierarchy=cut.to_hierarchy,
                    effective=cut.effective,
                    applied_at=dt.datetime.now(dt.UTC),
                    detail=detail,
                )
            )
    except IntegrityError:  # recorded meanwhile by another run (the unique constraint)
        return False
    return True


def hierarchy_name_in_force(settings: Settings, today: date | None = None) -> str:
    """The configured hierarchy, or the newest one a cut-over effective by ``today`` moved to."""
    today = today or date.today()
    name = settings.hierarchy
    for cut in cutovers(settings):
        if cut.from_hierarchy == name and cut.effective <= today:
            name = cut.to_hierarchy
    return name


def refuse_replaced_unit(
    settings: Settings, code: str, topics: Mapping[str, str] | None = None
) -> None:
    """After a cut-over, a source of a unit the reform ended is refused, naming what replaced
    it. ``topics``: a registered connector's stored topics; their unit path tells which
    hierarchy it was registered in (codes are reused across hierarchies). A unit that the new
    hierarchy lacks and no change continues (a district of the 3-level model) is refused too,
    naming the units that continue the ones below it."""
    today = date.today()
    cuts = [c for c in cutovers(settings) if c.effective <= today]
    if not cuts:
        return
    timeline = load_timeline(settings)
    for cut in cuts:
        old_h = timeline.hierarchy(cut.from_hierarchy)
        new_h = timeline.hierarchy(cut.to_hierarchy)
        if code not in old_h:
            continue
        if topics:
            registered_old = all(_topic_in(old_h, t) for t in topics.values())
        else:
            registered_old = code not in new_h
        if not registered_old:
            continue
        ended = [
            c for c in timeline.changes_of(code, old_h.name, until=cut.effective) if c.ends_old
        ]
        where = (
            f"unit: {code} belongs to hierarchy {cut.from_hierarchy!r}, replaced by "
            f"{cut.to_hierarchy!r} on {cut.effective.isoformat()}"
        )
        if ended:
            after = timeline.became(code, cut.from_hierarchy, cut.effective)
            names = ", ".join(f"{s.unit.code} ({s.unit.name})" for s in after)
            raise ConfigurationError(
                f"{where}; its successor is {names}: register the source under the new unit code"
            )
        if code not in new_h or old_h.get(code).level not in new_h.levels:
            raise ConfigurationError(
                f"{where}; the {old_h.get(code).level} {code} ({old_h.get(code).name}) has no "
                f"successor there ({no_successor_hint(timeline, old_h, code, cut)}): register "
                "the source under a unit of the new hierarchy, or add a mapping for it "
                "(lgsp units mapping add)"
            )


def no_successor_hint(timeline: Timeline, old_h: Hierarchy, code: str, cut: Cutover) -> str:
    """What became of the units below ``code`` (a district the reform abolished): the
    distinct successors of its wards, or that it has none below."""
    below = [u.code for u in old_h.descendants(code)]
    after = sorted(
        {
            s.unit.code
            for b in below
            for s in timeline.became(b, old_h.name, cut.effective)
            if s.hierarchy == cut.to_hierarchy
        },
        key=int,
    )
    if not after:
        return "nor any unit below it"
    shown = ", ".join(after[:12]) + (f" and {len(after) - 12} more" if len(after) > 12 else "")
    return f"the units below it became {shown} of {cut.to_hierarchy!r}"


def hierarchy_of_topics(first: str, topics: Mapping[str, str]) -> Hierarchy:
    """The hierarchy a connector was registered in: ``first`` (the one in force) when its
    stored topics name units of it, else the shipped hierarchy whose units they name (topics
    keep their names across a reform)."""
    names = [first, *(n for n in available_hierarchies() if n != first)]
    for name in names:
        h = load_hierarchy(name)
        if all(_topic_in(h, t) for t in topics.values()):
            return h
    return load_hierarchy(first)


def _topic_in(h: Hierarchy, topic: str) -> bool:
    from bus.units.topics import parse_topic

    try:
        parse_topic(h, topic)
    except ConfigurationError:
        return False
    return True
