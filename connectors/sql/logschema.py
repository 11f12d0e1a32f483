"""Schema changes seen in a PostgreSQL log (pgoutput Relation messages): which change a
table's stream can go on with and which one stops it.

PostgreSQL writes no DDL into the logical log; the decoder sends a Relation message before
the first change of a table whose definition differs from the one it last sent. Comparing the
previous Relation of the table with the new one tells what changed *at that point of the log*
(unlike the catalog, which shows the definition of now). A Relation carries names, type oids,
type modifiers and the replica-identity flag, not nullability: a dropped column therefore
always stops the table (its field may be a required one), an added column is compatible.

The comparison needs the table's previous Relation *in the same read*: the decoder sends one
before the table's first change of each read, and the stream's columns are discovered from the
catalog (the definition of now), so a change made while the connector was not running, whose
Relation comes first in the next read, is not seen here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from connectors.sql import pgoutput as pg

# type oids of the built-in types whose widening keeps every value (smallint -> integer ->
# bigint, real -> double precision, varchar/char -> text)
_INT2, _INT4, _INT8, _NUMERIC = 21, 23, 20, 1700
_FLOAT4, _FLOAT8 = 700, 701
_BPCHAR, _VARCHAR, _TEXT = 1042, 1043, 25
_WIDER: dict[int, frozenset[int]] = {
    _INT2: frozenset({_INT4, _INT8, _NUMERIC}),
    _INT4: frozenset({_INT8, _NUMERIC}),
    _INT8: frozenset({_NUMERIC}),
    _FLOAT4: frozenset({_FLOAT8}),
    _VARCHAR: frozenset({_TEXT}),
    _BPCHAR: frozenset({_TEXT, _VARCHAR}),
}
_NAMES = {
    _INT2: "smallint",
    _INT4: "integer",
    _INT8: "bigint",
    _NUMERIC: "numeric",
    _FLOAT4: "real",
    _FLOAT8: "double precision",
    _BPCHAR: "char",
    _VARCHAR: "varchar",
    _TEXT: "text",
}


@dataclass(frozen=True)
class Change:
    column: str
    what: str
    compatible: bool


def type_label(oid: int, modifier: int) -> str:
    name = _NAMES.get(oid, f"type oid {oid}")
    if modifier < 0:
        return name
    if oid in (_VARCHAR, _BPCHAR):
        return f"{name}({modifier - 4})"
    if oid == _NUMERIC:
        mod = modifier - 4
        return f"numeric({mod >> 16},{mod & 0xFFFF})"
    return name


def _modifier_narrows(oid: int, old: int, new: int) -> bool:
    """Whether the new type modifier of the same type admits fewer values (-1: no limit)."""
    if old == new or new < 0:
        return False
    if old < 0:
        return True  # a limit where there was none
    if oid in (_VARCHAR, _BPCHAR):
        return new < old
    if oid == _NUMERIC:
        old_p, old_s = (old - 4) >> 16, (old - 4) & 0xFFFF
        new_p, new_s = (new - 4) >> 16, (new - 4) & 0xFFFF
        return new_s != old_s or new_p < old_p  # a scale change alters the Avro decimal
    return True  # a modifier of another type (a time precision, a bit length): not known safe


def _type_change(old: pg.RelationColumn, new: pg.RelationColumn) -> Change | None:
    if (old.type_oid, old.type_modifier) == (new.type_oid, new.type_modifier):
        return None
    before = type_label(old.type_oid, old.type_modifier)
    after = type_label(new.type_oid, new.type_modifier)
    what = f"type changed from {before} to {after}"
    if old.type_oid == new.type_oid:
        narrows = _modifier_narrows(old.type_oid, old.type_modifier, new.type_modifier)
    else:
        # a wider type that keeps no limit of the old one; anything else narrows or converts
        narrows = new.type_oid not in _WIDER.get(old.type_oid, frozenset()) or (
            new.type_oid == _VARCHAR and new.type_modifier >= 0
        )
    return Change(old.name, what if not narrows else f"{what} (narrower)", not narrows)


def relation_changes(
    old: Sequence[pg.RelationColumn], new: Sequence[pg.RelationColumn]
) -> list[Change]:
    """The changes from one column list of a table to the next, in column order."""
    old_by = {c.name: c for c in old}
    new_by = {c.name: c for c in new}
    dropped = [c for c in old if c.name not in new_by]
    added = [c for c in new if c.name not in old_by]
    changes: list[Change] = []
    added_keys = [c.name for c in added if c.key]
    for col in dropped:
        if col.key and added_keys:
            what = f"key column renamed (to {added_keys.pop(0)!r})"
        elif col.key:
            what = "key column dropped"
        else:
            what = "column dropped"
        changes.append(Change(col.name, what, False))
    for col in old:
        if col.name in new_by:
            change = _type_change(col, new_by[col.name])
            if change is not None:
                changes.append(change)
            if col.key != new_by[col.name].key:
                changes.append(Change(col.name, "replica identity (key) changed", False))
    for col in added:
        changes.append(Change(col.name, "column added", not col.key))
    return changes


def stop_reason(table: str, changes: Sequence[Change], at: str, resnapshot: str) -> str | None:
    """The reason a table stops for the incompatible changes among these, or None."""
    bad = [c for c in changes if not c.compatible]
    if not bad:
        return None
    listed = "; ".join(f"column {c.column!r}: {c.what}" for c in bad)
    return (
        f"incompatible schema change of table {table} at {at}: {listed}. The position "
        f"stays before it; re-snapshot the table with: {resnapshot}"
    )
