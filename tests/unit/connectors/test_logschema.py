"""The comparison of a table's columns before and after a change: pgoutput Relation columns
(PostgreSQL) and binlog Table_map columns (MariaDB) through the same rule."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from connectors.sql import logschema
from connectors.sql.pgoutput import RelationColumn

INT4, INT8, VARCHAR, TEXT, NUMERIC = 23, 20, 1043, 25, 1700


def col(name: str, oid: int, mod: int = -1, key: bool = False) -> RelationColumn:
    return RelationColumn(name, oid, mod, key)


BASE = (col("id", INT8, key=True), col("name", VARCHAR, 104), col("n", INT4))


def test_added_nullable_column_is_compatible() -> None:
    changes = logschema.relation_changes(BASE, (*BASE, col("note", TEXT)))
    assert changes == [logschema.Change("note", "column added", True)]
    assert logschema.stop_reason("public.t", changes, "LSN 0/1", "lgsp x") is None


def test_bigint_to_int_narrows() -> None:
    new = (col("id", INT4, key=True), *BASE[1:])
    changes = logschema.relation_changes(BASE, new)
    assert [(c.column, c.compatible) for c in changes] == [("id", False)]
    assert "bigint to integer" in changes[0].what


def test_varchar_shorter_narrows_longer_widens() -> None:
    shorter = logschema.relation_changes(BASE, (BASE[0], col("name", VARCHAR, 14), BASE[2]))
    assert not shorter[0].compatible and "varchar(100) to varchar(10)" in shorter[0].what
    longer = logschema.relation_changes(BASE, (BASE[0], col("name", VARCHAR, 204), BASE[2]))
    assert longer[0].compatible
    to_text = logschema.relation_changes(BASE, (BASE[0], col("name", TEXT), BASE[2]))
    assert to_text[0].compatible
    widen = logschema.relation_changes(BASE, (*BASE[:2], col("n", INT8)))
    assert widen[0].compatible


def test_numeric_scale_change_is_incompatible() -> None:
    old = (col("x", NUMERIC, ((10 << 16) | 2) + 4),)
    assert not logschema.relation_changes(old, (col("x", NUMERIC, ((12 << 16) | 3) + 4),))[
        0
    ].compatible
    assert logschema.relation_changes(old, (col("x", NUMERIC, ((12 << 16) | 2) + 4),))[0].compatible


def test_dropped_column_and_renamed_key_stop_with_the_names() -> None:
    new = (col("ident", INT8, key=True), BASE[1])
    changes = logschema.relation_changes(BASE, new)
    reason = logschema.stop_reason(
        "public.t", changes, "LSN 0/16B3F48", "lgsp connector reset c --resnapshot"
    )
    assert reason is not None
    assert "column 'id': key column renamed (to 'ident')" in reason
    assert "table public.t" in reason and "column 'n': column dropped" in reason
    assert "LSN 0/16B3F48" in reason and "lgsp connector reset c --resnapshot" in reason


# ---- MariaDB: binlog Table_map columns through the same rule ------------------------------------


def my(name: str, code: int, nullable: bool = True, **attrs: Any) -> logschema.Column:
    """A Table_map column as pymysqlreplication gives it (utf8mb4: 4 bytes a character)."""
    column = SimpleNamespace(type=code, name=name, collation_name="utf8mb4_general_ci", **attrs)
    return logschema.binlog_column(column, nullable)


LONGLONG, LONG, SHORT, VARCHAR_M, BLOB, NEWDECIMAL, ENUM = 8, 3, 2, 15, 252, 246, 247
MY = (
    my("id", LONGLONG, False, is_primary=True),
    my("ten", VARCHAR_M, False, max_length=400),
    my("n", LONG),
)


def test_mariadb_varchar_lengths_are_characters_and_narrowing_stops() -> None:
    assert MY[1].label == "varchar(100)" and MY[1].size == 100
    shorter = logschema.column_changes(
        MY, (MY[0], my("ten", VARCHAR_M, False, max_length=80), MY[2])
    )
    assert shorter == [
        logschema.Change("ten", "type changed from varchar(100) to varchar(20) (narrower)", False)
    ]
    to_text = logschema.column_changes(MY, (MY[0], my("ten", BLOB, False, length_size=2), MY[2]))
    assert to_text[0].compatible and "varchar(100) to text" in to_text[0].what


def test_mariadb_integers_compare_by_range_and_sign() -> None:
    narrowed = logschema.column_changes(MY, (my("id", LONG, False, is_primary=True), *MY[1:]))
    assert narrowed == [logschema.Change("id", "type changed from bigint to int (narrower)", False)]
    assert logschema.column_changes(MY, (*MY[:2], my("n", LONGLONG)))[0].compatible
    assert not logschema.column_changes(MY, (*MY[:2], my("n", LONG, unsigned=True)))[0].compatible
    unsigned = (my("n", SHORT, unsigned=True),)
    assert logschema.column_changes(unsigned, (my("n", LONG),))[0].compatible
    assert not logschema.column_changes(unsigned, (my("n", SHORT),))[0].compatible


def test_mariadb_added_column_nullability_and_enum_members() -> None:
    added = logschema.column_changes(MY, (*MY, my("ghi_chu", BLOB, length_size=2)))
    assert added == [logschema.Change("ghi_chu", "column added", True)]
    relaxed = logschema.column_changes(
        MY, (MY[0], my("ten", VARCHAR_M, True, max_length=400), MY[2])
    )
    assert relaxed == [logschema.Change("ten", "now nullable", True)]
    old = (my("loai", ENUM, enum_values=["", "moi", "cu"]),)
    more = logschema.column_changes(old, (my("loai", ENUM, enum_values=["", "moi", "cu", "huy"]),))
    assert more[0].compatible and "enum('moi', 'cu') to enum('moi', 'cu', 'huy')" in more[0].what
    fewer = logschema.column_changes(old, (my("loai", ENUM, enum_values=["", "moi"]),))
    assert not fewer[0].compatible


def test_mariadb_decimal_scale_key_change_and_drop_stop() -> None:
    old = (my("x", NEWDECIMAL, precision=14, decimals=2),)
    assert logschema.column_changes(old, (my("x", NEWDECIMAL, precision=16, decimals=2),))[
        0
    ].compatible
    assert not logschema.column_changes(old, (my("x", NEWDECIMAL, precision=16, decimals=3),))[
        0
    ].compatible
    rekeyed = (
        my("id", LONGLONG, False),
        my("ten", VARCHAR_M, False, max_length=400, is_primary=True),
        MY[2],
    )
    reason = logschema.stop_reason(
        "test.t",
        logschema.column_changes(MY, rekeyed),
        "binlog 0-1-42 (mysql-bin.000001:1234) (ALTER TABLE)",
        "lgsp connector reset m && lgsp connector run m",
    )
    assert reason is not None
    assert "column 'id': key (primary key / replica identity) changed" in reason
    assert "column 'ten': key (primary key / replica identity) changed" in reason
    dropped = logschema.column_changes(MY, MY[:2])
    assert dropped == [logschema.Change("n", "column dropped", False)]


def test_columns_survive_a_position() -> None:
    columns = [*MY, my("loai", ENUM, enum_values=["", "a"])]
    assert [logschema.Column.from_list(c.to_list()) for c in columns] == columns
