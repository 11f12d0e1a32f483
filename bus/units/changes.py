"""Dated unit changes (merge, split, rename, move) and the checks an operator's file must pass.

A change says: from ``effective`` on, unit ``old`` of hierarchy ``from_hierarchy`` is
continued by the unit(s) ``new`` of hierarchy ``to_hierarchy`` (the same hierarchy when the
change happens inside one list). A split names the rule that sends each record of the old
unit to one of its parts: by the value of a record field, else to a named default.

The packaged mapping (``bus/data/unit-mapping-*.json``) becomes changes through
:func:`packaged_changes`; an operator's file is read by :func:`parse_change_file` and checked
against the hierarchies and the changes already known by :func:`validate_changes`, which
reports every bad entry by its index and old code.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bus.errors import ConfigurationError

KINDS = ("merge", "split", "rename", "move")


class ChangeFileError(ConfigurationError):
    """An operator's mapping file refused; ``problems`` names each bad entry."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(
            f"mapping {source!r} refused, nothing stored:\n  " + "\n  ".join(self.problems)
        )


@dataclass(frozen=True)
class SplitRule:
    """Which part of a split unit a record goes to: ``values[record[field]]``, else ``default``."""

    default: str
    field: str | None = None
    values: Mapping[str, str] = dc_field(default_factory=dict)

    def target(self, record: Mapping[str, Any] | None) -> str:
        if self.field and record is not None:
            value = record.get(self.field)
            if value is not None and str(value) in self.values:
                return self.values[str(value)]
        return self.default

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "values": dict(self.values), "default": self.default}


@dataclass(frozen=True)
class UnitChange:
    old: str
    new: tuple[str, ...]
    effective: date
    kind: str
    source: str
    from_hierarchy: str
    to_hierarchy: str
    rule: SplitRule | None = None
    name: str | None = None  # rename: the new name
    parent: str | None = None  # move: the new parent

    @property
    def cross_era(self) -> bool:
        return self.from_hierarchy != self.to_hierarchy

    @property
    def ends_old(self) -> bool:
        """Whether the old unit stops existing on ``effective`` (merged away or into a new list)."""
        return self.cross_era or self.old not in self.new

    def refines(self, other: UnitChange) -> bool:
        """Whether this change only gives ``other`` (a split whose rule names a default part
        alone, as the packaged mapping's do) the field its rule reads: the same old unit,
        hierarchies, date and parts. An operator's file may do that for a packaged split
        (the decree names the parts, not which street goes where); it then replaces it."""
        return (
            self.kind == other.kind == "split"
            and (self.old, self.from_hierarchy, self.to_hierarchy, self.effective)
            == (other.old, other.from_hierarchy, other.to_hierarchy, other.effective)
            and set(self.new) == set(other.new)
            and self.rule is not None
            and bool(self.rule.field)
            and (other.rule is None or not other.rule.field)
        )

    def target(self, record: Mapping[str, Any] | None = None) -> str:
        """The unit a record of the old unit belongs to from ``effective`` on."""
        if len(self.new) == 1:
            return self.new[0]
        assert self.rule is not None  # a split always carries a rule (validated)
        return self.rule.target(record)

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": list(self.new),
            "effective": self.effective.isoformat(),
            "kind": self.kind,
            "source": self.source,
            "from": self.from_hierarchy,
            "to": self.to_hierarchy,
            "rule": self.rule.to_dict() if self.rule else None,
            "name": self.name,
            "parent": self.parent,
        }


# --- the packaged mapping ------------------------------------------------------------------


def packaged_changes(
    data: Mapping[str, Any], old_names: Mapping[str, str], new_names: Mapping[str, str]
) -> list[UnitChange]:
    """The changes of a packaged mapping file (``from``/``to``/``effective``/``mappings``).

    An entry with ``split_into`` is a split whose rule sends records to the default part the
    source names (``new``); several old units with one new unit are a merge; one old unit
    alone into a new one is a rename (code or name changed) or a move (only the parent)."""
    effective = date.fromisoformat(str(data["effective"]))
    source, old_h, new_h = str(data["name"]), str(data["from"]), str(data["to"])
    entries = data["mappings"]
    fan_in = Counter(str(e["new"]) for e in entries if not e.get("split_into"))
    for e in entries:
        for part in e.get("split_into", ()):
            fan_in[str(part)] += 1
    out = []
    for e in entries:
        old, default = str(e["old"]), str(e["new"])
        parts = tuple(str(p) for p in e.get("split_into", ()))
        if parts:
            kind, new, rule = "split", parts, SplitRule(default=default)
        else:
            new, rule = (default,), None
            if fan_in[default] > 1:
                kind = "merge"
            elif old != default or old_names.get(old) != new_names.get(default):
                kind = "rename"
            else:
                kind = "move"
        day = date.fromisoformat(str(e["effective"])) if e.get("effective") else effective
        out.append(UnitChange(old, new, day, kind, source, old_h, new_h, rule))
    return out


# --- an operator's file ----------------------------------------------------------------------


def parse_change_file(path: Path) -> tuple[str, list[UnitChange], list[str]]:
    """The name, entries and shape problems of an operator's mapping file (YAML or JSON)::

    name: merge-2027
    from: hcmc-2025            # the hierarchy of the old units
    to: hcmc-2025              # the hierarchy of the new units (default: from)
    effective: 2027-01-01
    changes:
      - {old: "26737", new: ["26740"]}                      # merge
      - old: "26743"
        new: ["26740", "26758"]                             # split: a rule is required
        rule: {field: street, values: {"Lê Lợi": "26740"}, default: "26758"}
      - {old: "26758", new: ["26758"], name: "Phường Bến Thành"}   # rename
    """
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"mapping file {Path(path).name}: cannot read it ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"mapping file {Path(path).name}: expected a mapping at the top")
    problems: list[str] = []
    name = str(data.get("name") or Path(path).stem)
    old_h = str(data.get("from") or "")
    new_h = str(data.get("to") or old_h)
    if not old_h:
        problems.append("from: the hierarchy of the old units is required (e.g. hcmc-2025)")
    effective = _date(data.get("effective"), "effective", problems)
    entries = data.get("changes")
    if not isinstance(entries, list) or not entries:
        problems.append("changes: expected a non-empty list of changes")
        entries = []
    out: list[UnitChange] = []
    for i, e in enumerate(entries):
        where = f"changes[{i}]"
        if not isinstance(e, dict) or not e.get("old"):
            problems.append(f"{where}: expected an object with 'old' (a unit code)")
            continue
        old = str(e["old"])
        where = f"changes[{i}] (old {old})"
        raw_new = e.get("new")
        new = tuple(
            str(c) for c in (raw_new if isinstance(raw_new, list) else [raw_new] if raw_new else [])
        )
        if not new:
            problems.append(f"{where}: new: expected at least one new unit code")
            continue
        day = (
            _date(e.get("effective"), f"{where}.effective", problems)
            if e.get("effective")
            else effective
        )
        rule = None
        if e.get("rule") is not None:
            r = e["rule"]
            if not isinstance(r, dict) or not r.get("default"):
                problems.append(
                    f"{where}: rule: expected {{field, values, default}} with a default"
                )
            else:
                values = r.get("values") or {}
                if not isinstance(values, dict):
                    problems.append(f"{where}: rule.values: expected a mapping value -> code")
                    values = {}
                rule = SplitRule(
                    default=str(r["default"]),
                    field=str(r["field"]) if r.get("field") else None,
                    values={str(k): str(v) for k, v in values.items()},
                )
        if len(new) > 1:
            kind = "split"
        elif e.get("parent"):
            kind = "move"
        elif e.get("name") or new[0] == old:
            kind = "rename"
        else:
            kind = "merge"
        if day is None:
            continue
        out.append(
            UnitChange(
                old,
                new,
                day,
                kind,
                name,
                old_h,
                new_h,
                rule,
                name=str(e["name"]) if e.get("name") else None,
                parent=str(e["parent"]) if e.get("parent") else None,
            )
        )
    return name, out, problems


def _date(value: Any, where: str, problems: list[str]) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        problems.append(f"{where}: expected an ISO date (YYYY-MM-DD), got {value!r}")
        return None


def validate_changes(
    changes: Sequence[UnitChange],
    hierarchies: Mapping[str, Any],
    known: Iterable[UnitChange],
    era_order: Sequence[str],
) -> list[str]:
    """Every problem of ``changes`` against the hierarchies (name -> ``Hierarchy``) and the
    changes already known: unknown codes, a split without a rule, dates that do not fit the
    units' validity, two changes of one unit on one date, and cycles."""
    problems: list[str] = []
    known = list(known)
    for i, c in enumerate(changes):
        where = f"changes[{i}] (old {c.old})"
        before, after = hierarchies.get(c.from_hierarchy), hierarchies.get(c.to_hierarchy)
        if before is None or after is None:
            missing = c.from_hierarchy if before is None else c.to_hierarchy
            problems.append(
                f"{where}: hierarchy {missing!r} is unknown; expected one of {list(era_order)}"
            )
            continue
        if era_order.index(c.to_hierarchy) < era_order.index(c.from_hierarchy):
            problems.append(
                f"{where}: 'to' ({c.to_hierarchy}) is older than 'from' ({c.from_hierarchy})"
            )
        if c.old not in before:
            problems.append(f"{where}: unknown code {c.old} in hierarchy {c.from_hierarchy!r}")
            continue
        unknown = [n for n in c.new if n not in after]
        if unknown:
            problems.append(
                f"{where}: new: unknown code(s) {', '.join(unknown)} "
                f"in hierarchy {c.to_hierarchy!r}"
            )
            continue
        if c.kind == "split":
            if c.rule is None:
                problems.append(
                    f"{where}: a split into {', '.join(c.new)} needs a rule "
                    "(rule: {field, values, default}) that sends each record to one part"
                )
            else:
                outside = sorted({c.rule.default, *c.rule.values.values()} - set(c.new))
                if outside:
                    problems.append(
                        f"{where}: rule: {', '.join(outside)} is not one of the parts "
                        f"{', '.join(c.new)}"
                    )
                if c.rule.values and not c.rule.field:
                    problems.append(
                        f"{where}: rule: 'values' needs the record 'field' they are read from"
                    )
        if c.parent is not None and c.parent not in after:
            problems.append(
                f"{where}: parent: unknown code {c.parent} in hierarchy {c.to_hierarchy!r}"
            )
        old_unit = before.get(c.old)
        if not old_unit.valid_on(c.effective - timedelta(days=1)):
            problems.append(
                f"{where}: effective {c.effective}: unit {c.old} is not valid the day before "
                f"(valid {old_unit.valid_from or '…'} to {old_unit.valid_to or '…'})"
            )
        for n in c.new:
            if not after.get(n).valid_on(c.effective):
                problems.append(
                    f"{where}: effective {c.effective}: new unit {n} is not valid that day"
                )
    problems.extend(_overlaps(changes, known))
    problems.extend(_cycles(changes, known))
    return problems


def _overlaps(changes: Sequence[UnitChange], known: Sequence[UnitChange]) -> list[str]:
    problems = []
    seen: dict[tuple[str, str], list[tuple[int | None, UnitChange]]] = defaultdict(list)
    for k in known:
        seen[(k.from_hierarchy, k.old)].append((None, k))
    for i, c in enumerate(changes):
        where = f"changes[{i}] (old {c.old})"
        for j, other in seen[(c.from_hierarchy, c.old)]:
            what = f"changes[{j}]" if j is not None else f"mapping {other.source!r}"
            if j is None and c.refines(other):
                continue  # gives a known split the field its rule reads
            if other.effective == c.effective:
                problems.append(
                    f"{where}: overlapping dates: {what} already changes unit {c.old} "
                    f"on {c.effective}"
                )
            elif other.ends_old and other.effective < c.effective:
                problems.append(
                    f"{where}: overlapping dates: unit {c.old} ceased on {other.effective} "
                    f"({what}), before this change on {c.effective}"
                )
            elif c.ends_old and c.effective < other.effective:
                problems.append(
                    f"{where}: overlapping dates: unit {c.old} would cease on {c.effective}, but "
                    f"{what} changes it on {other.effective}"
                )
        seen[(c.from_hierarchy, c.old)].append((i, c))
    return problems


def _cycles(changes: Sequence[UnitChange], known: Sequence[UnitChange]) -> list[str]:
    """A cycle: within one hierarchy and date, following old -> new codes comes back."""
    edges: dict[tuple[str, date], dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for c in [*known, *changes]:
        if not c.cross_era:
            for n in c.new:
                if n != c.old:
                    edges[(c.from_hierarchy, c.effective)][c.old].add(n)
    problems = []
    for i, c in enumerate(changes):
        if c.cross_era:
            continue
        graph = edges[(c.from_hierarchy, c.effective)]
        stack, seen = [(n, [c.old, n]) for n in graph.get(c.old, ())], set()
        while stack:
            code, trail = stack.pop()
            if code == c.old:
                problems.append(
                    f"changes[{i}] (old {c.old}): cycle {' -> '.join(trail)} on {c.effective}"
                )
                break
            if code in seen:
                continue
            seen.add(code)
            stack.extend((n, [*trail, n]) for n in graph.get(code, ()))
    return problems
