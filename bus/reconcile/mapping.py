"""Reconciling across a reform (``lgsp reconcile CONNECTOR TABLE --against SINK
--through-mapping``): an old unit's table against the new unit's copy of it.

After ``lgsp route reform`` the new unit's topic holds the old unit's rows re-keyed: the same
keys and values, the unit fields (``unit``, ``*_unit``) holding the new code, and the event's
``source`` still the old unit (the sink's ``_lgsp_unit``). The comparison is the ordinary one
(:func:`bus.reconcile.core.reconcile`) with the copy filtered to the rows the old unit
published (``_lgsp_unit`` = old code) *and* whose unit fields hold the code the mapping gives
(so a row re-keyed to the wrong unit shows as missing), the unit fields themselves left out
of the value comparison.

Where the reform reused the old code for the new unit (old 26740 Bến Nghé, new 26740 Sài
Gòn), the new unit's own rows carry the same ``_lgsp_unit`` and unit code: the copy is then
also limited to rows stamped at most at the effective day (``_lgsp_ts_ms``), which a
re-keyed copy of an older row is; a row changed since shows as missing, never hidden.

The sink must be of a unit the old unit's change leads to (or an ancestor of it in the new
hierarchy, such as the city). A split with only a default part sends every row there. A split
whose rule chooses the part by a field (``rule: {field, values, default}``, from an operator's
mapping file) is compared part by part: the sink must be one part's, and the old table is
limited to the rows the rule sends to that part: the field's value one of those mapped to it,
or, for the default part, none of those mapped to another part (or no value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bus.config import Settings
from bus.errors import ConfigurationError
from bus.units.timeline import effective_ms, hierarchy_of_topics, load_timeline


@dataclass(frozen=True)
class ThroughMapping:
    """The old unit, the new unit its rows go to, and both hierarchies."""

    old: str
    new: str
    old_hierarchy: str
    new_hierarchy: str
    kind: str
    effective_ms: int = 0  # the effective day's first millisecond in Vietnam
    # a split by a field: the record field, and the values it sends to ``new`` or (``others``
    # true, ``new`` the default part) the values it sends to another part
    field: str | None = None
    values: tuple[str, ...] = ()
    others: bool = False

    @property
    def same_code(self) -> bool:
        """The old and the new unit share a code (the reform reused it): their rows in the
        copy differ only by time (a re-keyed copy is stamped at most at the effective day)."""
        return self.old == self.new

    def describe(self) -> str:
        text = (
            f"compared through the mapping: {self.old} ({self.old_hierarchy}) -> {self.new} "
            f"({self.new_hierarchy}, {self.kind})"
        )
        if self.field:
            which = "not one of" if self.others else "one of"
            text += f"; the old rows whose {self.field} is {which} {list(self.values)}"
            text += " (or empty)" if self.others else ""
        return text


def through_mapping(
    settings: Settings,
    source_unit: str,
    source_topics: Mapping[str, str],
    sink_unit: str,
    sink_topics: Mapping[str, str],
    in_force: str,
) -> ThroughMapping:
    """Where the source unit's rows went at the reform between the source's hierarchy and
    the sink's; a clear error when the mapping does not lead them to that sink."""
    timeline = load_timeline(settings)
    old_h = hierarchy_of_topics(in_force, source_topics)
    new_h = hierarchy_of_topics(in_force, sink_topics)
    what = f"--through-mapping: source unit {source_unit} ({old_h.name})"
    if old_h.name == new_h.name:
        raise ConfigurationError(
            f"{what} and the sink's unit {sink_unit} are in the same hierarchy: reconcile "
            "without --through-mapping"
        )
    changes = [
        c for c in timeline.changes_of(source_unit, old_h.name) if c.to_hierarchy == new_h.name
    ]
    if not changes:
        raise ConfigurationError(f"{what} has no change into {new_h.name!r}")
    change = changes[0]
    rule = change.rule if change.kind == "split" else None
    if rule is not None and rule.field:
        if sink_unit not in change.new:
            raise ConfigurationError(
                f"{what} was split by its field {rule.field!r} into {', '.join(change.new)} on "
                f"{change.effective.isoformat()}: reconcile against the sink of one part "
                f"(sink unit {sink_unit} is none of them)"
            )
        others = sink_unit == rule.default
        values = sorted(v for v, part in rule.values.items() if (part != sink_unit) == others)
        return ThroughMapping(
            source_unit,
            sink_unit,
            old_h.name,
            new_h.name,
            change.kind,
            effective_ms(change.effective),
            rule.field,
            tuple(values),
            others,
        )
    target = change.target({})
    chain = {target, *(u.code for u in new_h.ancestors(target))}
    if sink_unit not in chain:
        raise ConfigurationError(
            f"{what} went to {target} ({new_h.get(target).name}) on "
            f"{change.effective.isoformat()}; sink unit {sink_unit} does not receive it"
        )
    return ThroughMapping(
        source_unit, target, old_h.name, new_h.name, change.kind, effective_ms(change.effective)
    )
