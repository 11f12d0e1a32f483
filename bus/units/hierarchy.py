"""The administrative hierarchy: units (code, name, level, parent, validity) and dated code maps.

A hierarchy is read from a shipped JSON file ``bus/data/units-<name>.json`` (made by
``scripts/build_units.py``). Its levels are data: ``["city", "district", "ward"]`` for
``hcmc-2024``, ``["city", "ward"]`` for ``hcmc-2025``. Mapping files
``bus/data/unit-mapping-*.json`` take old unit codes to new ones from a date on, so that
history recorded under the old codes still rolls up.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from bus.errors import ConfigurationError, UnknownUnitError

DATA_PACKAGE = "bus"
DATA_DIR = "data"


@dataclass(frozen=True)
class Unit:
    """One administrative unit; ``parent`` is the parent's code (``None`` for the root)."""

    code: str
    name: str
    level: str
    parent: str | None
    valid_from: date | None = None
    valid_to: date | None = None

    def valid_on(self, day: date) -> bool:
        """Whether the unit exists on ``day`` (an open bound means no limit on that side)."""
        day = _as_date(day)
        if self.valid_from is not None and day < self.valid_from:
            return False
        return not (self.valid_to is not None and day > self.valid_to)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "level": self.level,
            "parent": self.parent,
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
        }


@dataclass(frozen=True)
class CodeMapping:
    """From ``effective`` on, unit ``old`` is replaced by ``new`` (``split_into``: all parts)."""

    old: str
    new: str
    effective: date
    source: str
    split_into: tuple[str, ...] = ()


class Hierarchy:
    """A validated tree of units, with lookups by code and the code mappings that touch it."""

    def __init__(
        self,
        name: str,
        levels: Sequence[str],
        units: Sequence[Unit],
        mappings: Sequence[CodeMapping] = (),
        description: str = "",
        source: str = "",
    ) -> None:
        self.name = name
        self.description = description
        self.source = source
        self._levels = list(levels)
        self._units: dict[str, Unit] = {}
        self._children: dict[str, list[Unit]] = {}
        self._check_and_index(units)
        roots = [u for u in self._units.values() if u.parent is None]
        self._root = roots[0]
        self._mappings = sorted(mappings, key=lambda m: m.effective)
        self._mapping_codes = {m.old for m in self._mappings} | {m.new for m in self._mappings}
        # one lookup table per effective date: codes move one step per date, never chain
        # within a date (an old code may equal another old code's new code).
        steps: dict[date, dict[str, str]] = {}
        for m in self._mappings:
            table = steps.setdefault(m.effective, {})
            if table.get(m.old, m.new) != m.new:
                raise ConfigurationError(
                    f"hierarchy {name!r}: code {m.old} maps to two codes on {m.effective}"
                )
            table[m.old] = m.new
        self._steps = sorted(steps.items())

    def _check_and_index(self, units: Sequence[Unit]) -> None:
        where = f"hierarchy {self.name!r}"
        if not self._levels or len(set(self._levels)) != len(self._levels):
            raise ConfigurationError(f"{where}: levels must be a non-empty list of distinct names")
        for unit in units:
            if not unit.code or not unit.code.isdigit():
                raise ConfigurationError(f"{where}: unit code {unit.code!r} is not all digits")
            if unit.code in self._units:
                raise ConfigurationError(f"{where}: unit code {unit.code} appears twice")
            if unit.level not in self._levels:
                raise ConfigurationError(
                    f"{where}: unit {unit.code} has level {unit.level!r}, expected one of "
                    f"{self._levels}"
                )
            if unit.valid_from and unit.valid_to and unit.valid_from > unit.valid_to:
                raise ConfigurationError(f"{where}: unit {unit.code} has valid_from > valid_to")
            self._units[unit.code] = unit
        roots = [u for u in self._units.values() if u.parent is None]
        if len(roots) != 1:
            raise ConfigurationError(f"{where}: expected exactly one root unit, got {len(roots)}")
        if roots[0].level != self._levels[0]:
            raise ConfigurationError(f"{where}: the root must have level {self._levels[0]!r}")
        for unit in self._units.values():
            if unit.parent is None:
                continue
            parent = self._units.get(unit.parent)
            if parent is None:
                raise ConfigurationError(
                    f"{where}: unit {unit.code} has parent {unit.parent}, which is not a unit"
                )
            depth = self._levels.index(parent.level) + 1
            if depth >= len(self._levels) or self._levels[depth] != unit.level:
                raise ConfigurationError(
                    f"{where}: unit {unit.code} ({unit.level}) cannot be a child of "
                    f"{parent.code} ({parent.level})"
                )
            self._children.setdefault(parent.code, []).append(unit)
        for kids in self._children.values():
            kids.sort(key=lambda u: int(u.code))

    # --- lookups -------------------------------------------------------------------------

    @property
    def levels(self) -> list[str]:
        return list(self._levels)

    @property
    def root(self) -> Unit:
        return self._root

    @property
    def mappings(self) -> list[CodeMapping]:
        return list(self._mappings)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str | int) and _norm(code) in self._units

    def __iter__(self) -> Iterator[Unit]:
        return iter(self._units.values())

    def __len__(self) -> int:
        return len(self._units)

    def __repr__(self) -> str:
        return f"Hierarchy({self.name!r}, levels={self._levels}, units={len(self._units)})"

    def get(self, code: str | int) -> Unit:
        """The unit with this code, or ``UnknownUnitError`` naming the code and the hierarchy."""
        key = _norm(code)
        unit = self._units.get(key)
        if unit is None:
            raise UnknownUnitError(self._unknown_message(key))
        return unit

    def _unknown_message(self, key: str) -> str:
        msg = f"unit {key!r} is not in the administrative hierarchy {self.name!r}"
        replaced = [m for m in self._mappings if m.old == key and m.new in self._units]
        if replaced:
            m = replaced[-1]
            return f"{msg}; it was replaced by {m.new} on {m.effective.isoformat()}"
        if key in self._mapping_codes:
            return f"{msg}; it belongs to another hierarchy linked by a code mapping"
        return msg

    def parent(self, code: str | int) -> Unit | None:
        unit = self.get(code)
        return None if unit.parent is None else self._units[unit.parent]

    def children(self, code: str | int) -> list[Unit]:
        return list(self._children.get(self.get(code).code, []))

    def ancestors(self, code: str | int) -> list[Unit]:
        """Parent first, root last."""
        chain: list[Unit] = []
        unit = self.get(code)
        while unit.parent is not None:
            unit = self._units[unit.parent]
            chain.append(unit)
        return chain

    def descendants(self, code: str | int) -> list[Unit]:
        """Every unit below, depth first, children in code order."""
        out: list[Unit] = []
        stack = list(reversed(self.children(code)))
        while stack:
            unit = stack.pop()
            out.append(unit)
            stack.extend(reversed(self._children.get(unit.code, [])))
        return out

    def path(self, code: str | int) -> str:
        """The codes from the root down, dot-joined: ``79.760.26734``."""
        unit = self.get(code)
        return ".".join([u.code for u in reversed(self.ancestors(unit.code))] + [unit.code])

    def check_level(self, level: str, option: str = "level") -> str:
        """``level``, or ``ConfigurationError`` naming ``option`` unless it is one of ours."""
        if level not in self._levels:
            raise ConfigurationError(
                f"{option}: expected one of {', '.join(self._levels)} for hierarchy "
                f"{self.name!r}, got level {level!r}"
            )
        return level

    def units(self, level: str | None = None, parent: str | int | None = None) -> list[Unit]:
        """Units filtered by level and/or direct parent, in (level, code) order."""
        if level is not None:
            self.check_level(level)
        pool = self.children(parent) if parent is not None else list(self._units.values())
        if level is not None:
            pool = [u for u in pool if u.level == level]
        return sorted(pool, key=lambda u: (self._levels.index(u.level), int(u.code)))

    def map_code(self, code: str | int, *, on: date) -> str:
        """The code that stands for ``code`` on ``on``, following every mapping in force by then
        (identity when none applies). Unknown to this hierarchy and its mappings: an error."""
        key = _norm(code)
        if key not in self._units and key not in self._mapping_codes:
            raise UnknownUnitError(self._unknown_message(key))
        day = _as_date(on)
        for effective, table in self._steps:
            if effective > day:
                break
            key = table.get(key, key)
        return key


# --- loading -----------------------------------------------------------------------------


def _norm(code: str | int) -> str:
    if isinstance(code, bool) or not isinstance(code, str | int):
        raise UnknownUnitError(f"a unit code must be a string of digits, got {type(code).__name__}")
    return str(code).strip()


def _as_date(value: date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    raise ConfigurationError(f"expected a date, got {type(value).__name__}")


def _parse_date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise ConfigurationError(f"{where}: expected an ISO date (YYYY-MM-DD)") from exc


def _data_dir() -> Path:
    return Path(str(resources.files(DATA_PACKAGE).joinpath(DATA_DIR)))


def available_hierarchies() -> list[str]:
    """Names of the shipped hierarchies (``units-<name>.json`` in the package data)."""
    return sorted(p.name[len("units-") : -len(".json")] for p in _data_dir().glob("units-*.json"))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"cannot read unit data file {path.name}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigurationError(f"unit data file {path.name}: expected a JSON object")
    return data


def _units_from(data: dict[str, Any], where: str) -> list[Unit]:
    raw = data.get("units")
    if not isinstance(raw, list):
        raise ConfigurationError(f"{where}: 'units' must be a list")
    units = []
    for i, item in enumerate(raw):
        at = f"{where}: units[{i}]"
        if not isinstance(item, dict):
            raise ConfigurationError(f"{at}: expected an object")
        missing = [k for k in ("code", "name", "level") if not item.get(k)]
        if missing:
            raise ConfigurationError(f"{at}: missing {', '.join(missing)}")
        parent = item.get("parent")
        units.append(
            Unit(
                code=str(item["code"]),
                name=str(item["name"]),
                level=str(item["level"]),
                parent=None if parent is None else str(parent),
                valid_from=_parse_date(item.get("valid_from"), f"{at}.valid_from"),
                valid_to=_parse_date(item.get("valid_to"), f"{at}.valid_to"),
            )
        )
    return units


def load_mappings(path: Path) -> tuple[set[str], list[CodeMapping]]:
    """The hierarchy names a mapping file links (``from``, ``to``) and its entries."""
    data = _read_json(path)
    where = f"mapping file {path.name}"
    effective = _parse_date(data.get("effective"), f"{where}: effective")
    if effective is None:
        raise ConfigurationError(f"{where}: 'effective' is required")
    entries = data.get("mappings")
    if not isinstance(entries, list):
        raise ConfigurationError(f"{where}: 'mappings' must be a list")
    name = str(data.get("name", path.stem))
    out = []
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not e.get("old") or not e.get("new"):
            raise ConfigurationError(f"{where}: mappings[{i}] needs 'old' and 'new'")
        day = _parse_date(e.get("effective"), f"{where}: mappings[{i}].effective") or effective
        split = tuple(str(c) for c in e.get("split_into", ()))
        out.append(CodeMapping(str(e["old"]), str(e["new"]), day, name, split))
    linked = {str(data[k]) for k in ("from", "to") if data.get(k)}
    return linked, out


def hierarchy_from_file(path: Path, mappings: Sequence[CodeMapping] = ()) -> Hierarchy:
    """A hierarchy from a units JSON file (the shipped format)."""
    data = _read_json(path)
    where = f"unit data file {path.name}"
    levels = data.get("levels")
    if not isinstance(levels, list) or not all(isinstance(x, str) for x in levels):
        raise ConfigurationError(f"{where}: 'levels' must be a list of names")
    name = str(data.get("name") or path.stem.removeprefix("units-"))
    return Hierarchy(
        name=name,
        levels=levels,
        units=_units_from(data, where),
        mappings=mappings,
        description=str(data.get("description", "")),
        source=str(data.get("source", "")),
    )


@lru_cache(maxsize=8)
def _load(name: str) -> Hierarchy:
    path = _data_dir() / f"units-{name}.json"
    if not path.is_file():
        raise ConfigurationError(
            f"hierarchy {name!r} does not exist; expected one of {available_hierarchies()}"
        )
    mappings: list[CodeMapping] = []
    for mpath in sorted(_data_dir().glob("unit-mapping-*.json")):
        linked, entries = load_mappings(mpath)
        if name in linked:
            mappings.extend(entries)
    return hierarchy_from_file(path, mappings)


def load_hierarchy(name: str | None = None) -> Hierarchy:
    """The shipped hierarchy ``name`` (default: ``get_settings().hierarchy``), cached."""
    if name is None:
        from bus.config import get_settings

        name = get_settings().hierarchy
    return _load(name)
