"""Regrouping report figures across a reform (``lgsp report sla --as-hierarchy NAME``).

A dossier is recorded with the code of its receiving unit in the hierarchy in force on the
day it was received. :class:`Regrouping` places it in another hierarchy through the dated
unit changes (:class:`bus.units.timeline.Timeline`):

- **forward** (an older era into a newer one, June 2025 into ``hcmc-2025``): a merged,
  renamed or moved unit goes to its successor; a split goes to the part its rule chooses by
  a field of the dossier; a split whose rule has no field (the packaged 2025 mapping names
  only a default part) cannot place a dossier, so the old unit is **not regrouped**, with
  that reason;
- **backward** (a newer era into an older one, ``hcmc-2025`` into ``hcmc-2024``): a new unit
  goes to the one old unit of the report's level that all its predecessors lie in (at ward
  level: exactly one predecessor, not split; at district level: the district of all of
  them). A unit formed from several old units of that level, or from part of a split one,
  is **not regrouped**, with the units it came from named.

Codes are reused across eras (26737 is Đa Kao in 2024 and Tân Định in 2025), so the era of
a code comes from the dossier's received date, never from the code alone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bus.errors import ConfigurationError
from bus.units import Hierarchy
from bus.units.timeline import Timeline


@dataclass
class NotRegrouped:
    """The dossiers of one unit that could not be placed in the target hierarchy, and why."""

    unit: str
    name: str
    hierarchy: str
    why: str
    dossiers: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "unit": self.unit,
            "unit_name": self.name,
            "hierarchy": self.hierarchy,
            "why": self.why,
            "dossiers": self.dossiers,
        }


@dataclass
class Regrouping:
    """Places a (code, received date, record) in ``target`` at ``level``."""

    timeline: Timeline
    target: Hierarchy
    level: str
    refused: dict[tuple[str, str], NotRegrouped] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.target.check_level(self.level)
        self._order = {name: i for i, name in enumerate(self.timeline.era_names)}
        # (era, code) -> placement, for codes whose placement does not depend on the record
        self._placed: dict[tuple[str, str], tuple[str | None, str]] = {}

    def place(
        self,
        code: str,
        received: dt.date,
        record: Mapping[str, Any] | None = None,
        *,
        count: bool = True,
    ) -> tuple[str | None, str]:
        """(a code of ``target`` or None, reason: '' | 'unknown' | 'not regrouped'); a dossier
        not regrouped is counted for its unit when ``count`` (received in the report's period)."""
        try:
            era = self.timeline.hierarchy_on(received)
        except ConfigurationError:
            return None, "unknown"
        if era.name == self.target.name:
            return (code, "") if code in era else (None, "unknown")
        if code not in era:
            return None, "unknown"
        key = (era.name, code)
        found = self._placed.get(key)
        if found is not None:
            placed, why = found
        elif self._order[era.name] < self._order[self.target.name]:
            placed, why = self._forward(era, code, record)
            if not any(c.rule and c.rule.field for c in self.timeline.changes_of(code, era.name)):
                self._placed[key] = (placed, why)
        else:
            placed, why = self._placed[key] = self._backward(era, code)
        if placed is None:
            if key not in self.refused:
                self.refused[key] = NotRegrouped(code, era.get(code).name, era.name, why)
            self.refused[key].dossiers += int(count)
            return None, "not regrouped"
        return placed, ""

    def _forward(
        self, era: Hierarchy, code: str, record: Mapping[str, Any] | None
    ) -> tuple[str | None, str]:
        day = self.target.root.valid_from
        if day is None:
            return None, f"hierarchy {self.target.name!r} has no start date"
        for change in self.timeline.changes_of(code, era.name, until=day):
            if change.kind == "split" and (change.rule is None or not change.rule.field):
                parts = ", ".join(change.new)
                return None, (
                    f"split on {change.effective.isoformat()} into {parts} with no rule field "
                    "to place each dossier (the mapping names only a default part)"
                )
        after = [
            s
            for s in self.timeline.became(code, era.name, day, record or {})
            if s.hierarchy == self.target.name
        ]
        if len(after) != 1:
            return None, f"no successor in {self.target.name!r}"
        return after[0].unit.code, ""

    def _backward(self, era: Hierarchy, code: str) -> tuple[str | None, str]:
        into = [c for c in self.timeline.predecessors(code, era.name)]
        into = [c for c in into if c.from_hierarchy == self.target.name]
        if not into:
            return None, f"no predecessor in {self.target.name!r}"
        target = self.target
        wanted = target.levels.index(self.level)
        homes: set[str] = set()
        for change in into:
            if change.old not in target:
                return None, f"predecessor {change.old} is not in {target.name!r}"
            unit = target.get(change.old)
            chain = [unit, *target.ancestors(unit.code)]
            home = next((u.code for u in chain if target.levels.index(u.level) == wanted), None)
            if home is None:
                return None, f"predecessor {change.old} lies above the {self.level} level"
            if home == change.old and change.kind == "split":
                return None, (
                    f"formed in part from {change.old} (split into {', '.join(change.new)}): "
                    "its figures cannot be divided back"
                )
            homes.add(home)
        if len(homes) != 1:
            olds = ", ".join(sorted({c.old for c in into}, key=int))
            return None, (
                f"formed from {olds}, in {len(homes)} {self.level}s of {target.name!r}: its "
                "figures cannot be divided among them"
            )
        return homes.pop(), ""

    def not_regrouped(self) -> list[NotRegrouped]:
        """The units with dossiers received in the report's period that were not placed."""
        found = [n for n in self.refused.values() if n.dossiers]
        return sorted(found, key=lambda n: (n.hierarchy, int(n.unit)))
