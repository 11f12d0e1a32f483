"""Which events a set of units covers across reforms: the rule that grants written for some
units (``lgsp grant add --unit``) apply to deliveries, lookups and the broker's ACLs.

A scope is some units of one hierarchy (a district stands for itself and every unit below
it). An event belongs to one unit on one day: its record's unit field (``unit``, ``*_unit``)
when that holds a known code, else the unit of its topic (below the city), else its source's
unit; the day is its change time (``ts_ms``) in Vietnam, never the wall clock. A bare code is
read in the hierarchy in force that day (else the newest earlier one that has it: an old
ward's late event).

The event is covered when the scope and the event's unit, both followed forward through the
dated changes (:meth:`bus.units.timeline.Timeline.became`) to a common day (the latest of the
event's day and the start of either unit's hierarchy), meet:

- a scope of an old unit covers that unit's events before its change, and every unit it
  became (all parts of a split) after it;
- a scope of a new unit covers the earlier events of every old unit merged into it; of an old
  unit split into it, the events whose record the split's rule sends to it (by its field, else
  to the default part), decided record by record, as the re-keying route decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bus.units.rekey import is_unit_field
from bus.units.timeline import Timeline, vn_day

Placed = tuple[str, str]  # (hierarchy name, unit code)


def record_unit(record: Mapping[str, Any] | None) -> str | None:
    """The first unit field of ``record`` holding text: ``unit``, then ``*_unit`` by name."""
    if not record:
        return None
    names = sorted((n for n in record if is_unit_field(n)), key=lambda n: (n != "unit", n))
    for name in names:
        value = record.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


@dataclass
class UnitScope:
    """Units ``codes`` of hierarchy ``hierarchy``, followed through ``timeline``."""

    timeline: Timeline
    hierarchy: str
    codes: tuple[str, ...]
    _projected: dict[date, set[Placed]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        h = self.timeline.hierarchy(self.hierarchy)
        below = {d.code for c in self.codes for d in h.descendants(c)}
        self.expanded = tuple(dict.fromkeys([*self.codes, *sorted(below, key=int)]))

    def _start(self, hierarchy: str) -> date:
        return self.timeline.hierarchy(hierarchy).root.valid_from or date.min

    def projected(self, on: date) -> set[Placed]:
        """The units the scope is on ``on`` (no record: every part of a split)."""
        held = self._projected.get(on)
        if held is None:
            held = {
                (s.hierarchy, s.unit.code)
                for code in self.expanded
                for s in self.timeline.became(code, self.hierarchy, on)
            }
            self._projected[on] = held
        return held

    def placed(self, code: str, day: date, hierarchy: str | None = None) -> str | None:
        """The hierarchy ``code`` is read in on ``day`` (``hierarchy`` when given): the one in
        force then if it has the code, else the newest earlier one that has it, else the
        oldest later one; None when no hierarchy knows it."""
        if hierarchy is not None:
            return hierarchy if code in self.timeline.hierarchy(hierarchy) else None
        eras = self.timeline.eras
        before = [h for h in eras if (h.root.valid_from or date.min) <= day and code in h]
        if before:
            return before[-1].name
        after = [h for h in eras if code in h]
        return after[0].name if after else None

    def covers(
        self,
        code: str,
        day: date,
        record: Mapping[str, Any] | None = None,
        hierarchy: str | None = None,
    ) -> bool:
        """Whether an event of unit ``code`` (of ``hierarchy``, else read by ``day``) on
        ``day`` with ``record`` (a split's rule reads it) is within the scope."""
        where = self.placed(str(code), day, hierarchy)
        if where is None:
            return False
        on = max(day, self._start(self.hierarchy), self._start(where))
        event = {
            (s.hierarchy, s.unit.code)
            for s in self.timeline.became(str(code), where, on, dict(record or {}))
        }
        return not event.isdisjoint(self.projected(on))

    def covers_event(self, event: Mapping[str, Any], topic_unit: Placed | None = None) -> bool:
        """:meth:`covers` for a change event: its unit (record field, else the topic's unit
        ``topic_unit`` when below the city, else the source's) on its ``ts_ms`` day."""
        record = event.get("after") or event.get("before")
        day = vn_day(int(event.get("ts_ms") or 0))
        code = record_unit(record)
        below_city = None
        if topic_unit is not None:
            h = self.timeline.hierarchy(topic_unit[0])
            below_city = topic_unit if topic_unit[1] != h.root.code else None
        if code is not None and below_city is not None and code in h:
            # a unit topic names its hierarchy: a record of it dated before that hierarchy
            # began (a new ward's system holding an older record) is read in it, not by day
            return self.covers(code, day, record, below_city[0])
        if code is not None and self.placed(code, day) is not None:
            return self.covers(code, day, record)
        if below_city is not None:
            return self.covers(below_city[1], day, record, below_city[0])
        source = event.get("source")
        unit = record_unit({"unit": source.get("unit")}) if isinstance(source, Mapping) else None
        return unit is not None and self.covers(unit, day, record)

    def whole(self, hierarchy: str, code: str) -> bool:
        """Whether every event of unit ``code`` of ``hierarchy`` is within the scope, whatever
        its record and time in that hierarchy's era (what a broker ACL on its topic can
        grant): a unit of the scope or below it, a unit it became, or an old unit whose
        every record goes into it (not a split by a field with a part outside)."""
        h = self.timeline.hierarchy(hierarchy)
        if code not in h:
            return False
        start = self._start(self.hierarchy)
        begins = h.root.valid_from or date.min
        if hierarchy == self.hierarchy:
            return code in self.expanded
        if begins > start:
            return (hierarchy, code) in self.projected(begins)
        mine = self.projected(start)
        changes = [
            c for c in self.timeline.changes_of(code, hierarchy) if c.to_hierarchy == self.hierarchy
        ]
        if not changes:
            return False
        c = changes[0]
        if c.rule is not None and c.rule.field:
            return all((c.to_hierarchy, n) in mine for n in c.new)
        return (c.to_hierarchy, c.target({})) in mine

    def eras(self) -> list[dict[str, Any]]:
        """Per hierarchy, the units the scope covers while it is in force: the scope's own
        units in its hierarchy, what they became in later ones, and in earlier ones the units
        that changed into them (a split's part: only the records its rule sends there)."""
        out: list[dict[str, Any]] = []
        own = self.timeline.hierarchy(self.hierarchy)
        start = self._start(self.hierarchy)
        for h in self.timeline.eras:
            begins = h.root.valid_from or date.min
            if h.name == own.name:
                units = [_shown(h, c) for c in self.codes]
            elif begins > start:
                units = sorted(
                    {_shown(h, c) for hn, c in self.projected(begins) if hn == h.name},
                    key=_code_of,
                )
            else:
                units = self._earlier(h.name)
            out.append(
                {
                    "hierarchy": h.name,
                    "from": h.root.valid_from.isoformat() if h.root.valid_from else None,
                    "to": h.root.valid_to.isoformat() if h.root.valid_to else None,
                    "units": units,
                }
            )
        return out

    def _earlier(self, hierarchy: str) -> list[str]:
        h = self.timeline.hierarchy(hierarchy)
        shown: dict[str, str] = {}
        mine = set(self.projected(self._start(self.hierarchy)))
        for c in self.timeline.changes:
            if c.from_hierarchy != hierarchy or c.old not in h:
                continue
            reached = {(c.to_hierarchy, n) for n in c.new} & mine
            if not reached:
                continue
            text = _shown(h, c.old)
            if len(c.new) > 1 and len(reached) < len(c.new):
                parts = ", ".join(sorted(n for _, n in reached))
                if c.rule is not None and c.rule.field:
                    text += f" (split: the records whose {c.rule.field} sends them to {parts})"
                elif (c.to_hierarchy, c.target({})) in reached:
                    text += f" (split: all its records go to {c.target({})})"
                else:
                    continue  # its rule sends every record to another part
            shown[c.old] = text
        return [shown[k] for k in sorted(shown, key=int)]


def _shown(h: Any, code: str) -> str:
    return f"{code} {h.get(code).name}" if code in h else code


def _code_of(text: str) -> int:
    return int(text.split(" ", 1)[0])
