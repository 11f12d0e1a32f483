"""Schema changes seen in a change log: which change a table's stream can go on with and which
one stops it. One rule (``column_changes``) for both engines, over an engine-neutral
description of a column (``Column``): PostgreSQL's pgoutput Relation messages
(``pg_columns``) and MariaDB's binlog Table_map events (``binlog_columns``) are both mapped to
it.

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

MariaDB (``binlog_row_metadata = FULL``) writes a Table_map event before each row event: the
column names, types with their lengths (bytes), precision and scale, signedness, the members of
an ENUM/SET, nullability and the primary key. ``connectors.sql.mylog`` keeps the columns of the
last Table_map of each table in its position, so a change is compared across runs too.

The rule: a dropped column, a narrowed or converted type, a changed or renamed key column, an
added key column stop the table; an added column, a widened type (a longer varchar, ``int`` to
``bigint``, ``float`` to ``double``, new ENUM members), a column that became nullable or NOT
NULL go on (the values still fit the published schema; the registry judges the new one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.sql import pgoutput as pg

# kinds of a column's type: their values compare by size (see _narrows); any other change of
# a type (its label) is a conversion that is not known to keep every value
INT, FLOAT, DECIMAL, TEXT, BINARY, ENUM, SET, OTHER = (
    "int",
    "float",
    "decimal",
    "text",
    "binary",
    "enum",  # ENUM, SET: their members
    "set",
    "other",
)
CHAR = "char"  # text of a fixed length (padded)


@dataclass(frozen=True)
class Column:
    """A column as a log describes it.

    ``size``: INT/FLOAT the bytes; DECIMAL the precision; CHAR/TEXT the characters, BINARY the
    bytes (None: no limit); ``scale``: DECIMAL's; ``members``: an ENUM's or SET's values;
    ``nullable``: None where the log does not say (PostgreSQL)."""

    name: str
    kind: str
    label: str
    size: int | None = None
    scale: int | None = None
    unsigned: bool = False
    key: bool = False
    nullable: bool | None = None
    members: tuple[str, ...] = ()

    def to_list(self) -> list[Any]:
        """A compact form to keep in a position (``from_list`` reads it back)."""
        return [
            self.name,
            self.kind,
            self.label,
            self.size,
            self.scale,
            self.unsigned,
            self.key,
            self.nullable,
            list(self.members),
        ]

    @classmethod
    def from_list(cls, data: Sequence[Any]) -> Column:
        name, kind, label, size, scale, unsigned, key, nullable, members = data
        return cls(
            name, kind, label, size, scale, bool(unsigned), bool(key), nullable, tuple(members)
        )


@dataclass(frozen=True)
class Change:
    column: str
    what: str
    compatible: bool


# ---- PostgreSQL: pgoutput Relation columns ------------------------------------------------------

_INT2, _INT4, _INT8, _NUMERIC = 21, 23, 20, 1700
_FLOAT4, _FLOAT8 = 700, 701
_BPCHAR, _VARCHAR, _TEXT = 1042, 1043, 25
_PG_NAMES = {
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
_PG_SIZES = {_INT2: 2, _INT4: 4, _INT8: 8, _FLOAT4: 4, _FLOAT8: 8}


def type_label(oid: int, modifier: int) -> str:
    name = _PG_NAMES.get(oid, f"type oid {oid}")
    if modifier < 0:
        return name
    if oid in (_VARCHAR, _BPCHAR):
        return f"{name}({modifier - 4})"
    if oid == _NUMERIC:
        mod = modifier - 4
        return f"numeric({mod >> 16},{mod & 0xFFFF})"
    return f"{name} (modifier {modifier})"


def pg_column(col: pg.RelationColumn) -> Column:
    oid, mod = col.type_oid, col.type_modifier
    label = type_label(oid, mod)
    if oid in (_INT2, _INT4, _INT8):
        return Column(col.name, INT, label, _PG_SIZES[oid], key=col.key)
    if oid in (_FLOAT4, _FLOAT8):
        return Column(col.name, FLOAT, label, _PG_SIZES[oid], key=col.key)
    if oid == _NUMERIC:
        if mod < 0:
            return Column(col.name, DECIMAL, label, None, None, key=col.key)
        return Column(col.name, DECIMAL, label, (mod - 4) >> 16, (mod - 4) & 0xFFFF, key=col.key)
    if oid in (_VARCHAR, _TEXT, _BPCHAR):
        size = mod - 4 if mod >= 0 and oid != _TEXT else None
        return Column(col.name, CHAR if oid == _BPCHAR else TEXT, label, size, key=col.key)
    return Column(col.name, OTHER, label, key=col.key)


def pg_columns(columns: Sequence[pg.RelationColumn]) -> list[Column]:
    return [pg_column(c) for c in columns]


# ---- MariaDB/MySQL: binlog Table_map columns (pymysqlreplication) -------------------------------

# pymysqlreplication.constants.FIELD_TYPE
_TINY, _SHORT, _LONG, _FLOAT, _DOUBLE, _LONGLONG, _INT24 = 1, 2, 3, 4, 5, 8, 9
_YEAR, _VARCHAR_M, _BIT, _NEWDECIMAL, _ENUM, _SET = 13, 15, 16, 246, 247, 248
_TINY_BLOB, _MEDIUM_BLOB, _LONG_BLOB, _BLOB, _VAR_STRING, _STRING = 249, 250, 251, 252, 253, 254
_INTS = {_TINY: (1, "tinyint"), _SHORT: (2, "smallint"), _INT24: (3, "mediumint")}
_INTS |= {_LONG: (4, "int"), _LONGLONG: (8, "bigint")}
_OTHER_NAMES = {
    7: "timestamp",
    10: "date",
    11: "time",
    12: "datetime",
    13: "year",
    14: "date",
    16: "bit",
    17: "timestamp",
    18: "datetime",
    19: "time",
    245: "json",
    255: "geometry",
}
# a BLOB/TEXT's length bytes -> (its limit in bytes, the text and the binary type's name)
_BLOBS = {
    1: (255, "tinytext", "tinyblob"),
    2: (65535, "text", "blob"),
    3: (16777215, "mediumtext", "mediumblob"),
    4: (4294967295, "longtext", "longblob"),
}
# a character set's bytes per character at most (a length in the log is in bytes)
_MBMAXLEN = {"utf8mb4": 4, "utf16": 4, "utf32": 4, "utf8mb3": 3, "utf8": 3, "ucs2": 2}
_MBMAXLEN |= {"big5": 2, "gbk": 2, "sjis": 2, "euckr": 2, "gb2312": 2, "ujis": 3, "gb18030": 4}


def _chars(col: Any, length: int) -> int:
    """A character column's length in the log (bytes) as characters (by its collation's
    character set; an unknown one counts a byte a character)."""
    charset = str(getattr(col, "collation_name", None) or "").split("_", 1)[0].lower()
    return length // _MBMAXLEN.get(charset, 1)


def binlog_column(col: Any, nullable: bool) -> Column:
    """A pymysqlreplication ``Column`` of a Table_map event (``binlog_row_metadata = FULL``)."""
    kind_code = int(col.type)
    name = str(col.name)
    key = bool(getattr(col, "is_primary", False))
    unsigned = bool(getattr(col, "unsigned", False))
    binary = str(getattr(col, "collation_name", None) or "") == "binary"
    common: dict[str, Any] = {"key": key, "nullable": nullable}
    if kind_code in _INTS:
        size, label = _INTS[kind_code]
        label = f"{label} unsigned" if unsigned else label
        return Column(name, INT, label, size, unsigned=unsigned, **common)
    if kind_code in (_FLOAT, _DOUBLE):
        size = 4 if kind_code == _FLOAT else 8
        return Column(name, FLOAT, "float" if size == 4 else "double", size, **common)
    if kind_code == _NEWDECIMAL:
        p, s = int(col.precision), int(col.decimals)
        label = f"decimal({p},{s}) unsigned" if unsigned else f"decimal({p},{s})"
        return Column(name, DECIMAL, label, p, s, unsigned=unsigned, **common)
    if kind_code in (_VARCHAR_M, _VAR_STRING, _STRING):
        length = int(getattr(col, "max_length", 0) or 0)
        fixed = kind_code == _STRING
        if binary:
            label = f"{'binary' if fixed else 'varbinary'}({length})"
            return Column(name, OTHER if fixed else BINARY, label, length, **common)
        chars = _chars(col, length)
        label = f"{'char' if fixed else 'varchar'}({chars})"
        return Column(name, CHAR if fixed else TEXT, label, chars, **common)
    if kind_code in (_BLOB, _TINY_BLOB, _MEDIUM_BLOB, _LONG_BLOB):
        limit, text, blob = _BLOBS.get(int(getattr(col, "length_size", 4) or 4), _BLOBS[4])
        if binary:
            return Column(name, BINARY, blob, limit, **common)
        return Column(name, TEXT, text, _chars(col, limit), **common)
    if kind_code in (_ENUM, _SET):
        members = tuple(v for v in (col.enum_values or col.set_values or []) if v != "")
        word = "enum" if kind_code == _ENUM else "set"
        label = f"{word}({', '.join(repr(m) for m in members)})"
        return Column(name, ENUM if kind_code == _ENUM else SET, label, members=members, **common)
    base = _OTHER_NAMES.get(kind_code, f"type {kind_code}")
    fsp = getattr(col, "fsp", None)
    if kind_code == _BIT:
        base = f"bit({getattr(col, 'bits', '?')})"
    elif fsp:
        base = f"{base}({fsp})"
    return Column(name, OTHER, base, **common)


def binlog_columns(columns: Sequence[Any], null_bitmask: bytes) -> list[Column]:
    """A Table_map event's columns (its null bitmap: bit i set, column i is nullable)."""
    return [
        binlog_column(c, bool(null_bitmask[i // 8] & (1 << (i % 8)))) for i, c in enumerate(columns)
    ]


# ---- the rule -----------------------------------------------------------------------------------

_INT_DIGITS = {1: 3, 2: 5, 3: 8, 4: 10, 8: 19}


def _int_range(col: Column) -> tuple[int, int]:
    bits = 8 * (col.size or 8)
    return (0, 2**bits - 1) if col.unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def _within(old: int | None, new: int | None) -> bool:
    """Whether a limit ``new`` admits every value under ``old`` (None: no limit)."""
    return new is None or (old is not None and new >= old)


def _narrows(old: Column, new: Column) -> bool:
    """Whether some value of the old type does not fit the new one unchanged."""
    if old.kind == INT and new.kind == INT:
        lo, hi = _int_range(old)
        new_lo, new_hi = _int_range(new)
        return lo < new_lo or hi > new_hi
    if old.kind == INT and new.kind == DECIMAL:
        if new.size is None:
            return False
        digits = _INT_DIGITS.get(old.size or 8, 20) + (1 if old.unsigned and old.size == 8 else 0)
        return new.size - (new.scale or 0) < digits or (new.unsigned and not old.unsigned)
    if old.kind == FLOAT and new.kind == FLOAT:
        return (new.size or 8) < (old.size or 8)
    if old.kind == DECIMAL and new.kind == DECIMAL:
        if old.size is None and new.size is None:
            return False
        return (
            new.scale != old.scale
            or not _within(old.size, new.size)
            or (new.unsigned and not old.unsigned)
        )
    if old.kind in (CHAR, TEXT) and new.kind in (CHAR, TEXT):
        # to a fixed length pads the values; from one keeps them (as the driver gave them)
        return (new.kind == CHAR and old.kind != CHAR) or not _within(old.size, new.size)
    if old.kind == BINARY and new.kind == BINARY:
        return not _within(old.size, new.size)
    if old.kind == new.kind and old.kind in (ENUM, SET):
        return not set(old.members) <= set(new.members)
    return True  # another conversion (a time precision, a type of another kind): not known safe


def _type_change(old: Column, new: Column) -> Change | None:
    if (old.kind, old.label, old.size, old.scale, old.unsigned, old.members) == (
        new.kind,
        new.label,
        new.size,
        new.scale,
        new.unsigned,
        new.members,
    ):
        return None
    what = f"type changed from {old.label} to {new.label}"
    narrows = _narrows(old, new)
    return Change(old.name, f"{what} (narrower)" if narrows else what, not narrows)


def column_changes(old: Sequence[Column], new: Sequence[Column]) -> list[Change]:
    """The changes from one column list of a table to the next, in column order: the one rule
    of what a log table goes on with (``compatible``) and what stops it."""
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
        after = new_by.get(col.name)
        if after is None:
            continue
        change = _type_change(col, after)
        if change is not None:
            changes.append(change)
        if col.key != after.key:
            changes.append(Change(col.name, "key (primary key / replica identity) changed", False))
        if (
            col.nullable is not None
            and after.nullable is not None
            and col.nullable != after.nullable
        ):
            changes.append(
                Change(col.name, "now nullable" if after.nullable else "now NOT NULL", True)
            )
    for col in added:
        changes.append(Change(col.name, "column added", not col.key))
    return changes


def relation_changes(
    old: Sequence[pg.RelationColumn], new: Sequence[pg.RelationColumn]
) -> list[Change]:
    """The changes from one pgoutput Relation column list of a table to the next."""
    return column_changes(pg_columns(old), pg_columns(new))


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
