"""The comparison of a table's pgoutput Relation columns before and after a change."""

from __future__ import annotations

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
