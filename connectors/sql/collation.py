"""Text that stays distinct in a MariaDB/MySQL sink: byte-exact key and text columns.

A MariaDB/MySQL text column compares by its collation: the server default
(``utf8mb4_general_ci``) makes ``HS-001`` = ``hs-001`` and ``Hà Nội`` = ``Ha Noi``, and every
``PAD SPACE`` collation, ``utf8mb4_bin`` included, makes ``x`` = ``x ``. A primary key with
such a collation merges distinct source keys into one row. So a sink creates its text columns
``CHARACTER SET utf8mb4`` with a binary ``NO PAD`` collation (``utf8mb4_nopad_bin`` on
MariaDB 10.2+, ``utf8mb4_0900_bin`` on MySQL 8), set per column (a table option alone is lost
with a ``mariadb://`` URL), reads ``information_schema`` back after creating them, and refuses
an existing table whose key column would merge keys.

PostgreSQL text compares byte-exactly unless a column says otherwise: a nondeterministic ICU
collation (``deterministic = false``: case- or accent-blind) or the ``citext`` type. A key
column of either merges keys the same way, so an existing PostgreSQL target with one is refused
too (a sink creates plain ``text``/``varchar`` with the database's deterministic collation).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

CHARSET = "utf8mb4"
# byte-exact collations, preferred first (MariaDB, MySQL 8)
EXACT = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")


def is_exact(collation: str | None) -> bool:
    """A collation (None: not a text column) under which distinct strings stay distinct."""
    if collation is None or collation == "binary":
        return True
    return collation.endswith("_nopad_bin") or collation.endswith("_0900_bin")


def merges(collation: str) -> str:
    """What a collation treats as equal, for messages."""
    if collation == "citext" or collation.endswith("(nondeterministic)"):
        return "letter case (or accents)"
    if collation.endswith("_bin"):
        return "trailing spaces (PAD SPACE)"
    return "letter case, accents or trailing spaces"


def exact_collation(conn: sa.Connection) -> str | None:
    """The byte-exact collation this server has, or None (then text columns are binary)."""
    found = set(
        conn.execute(
            sa.text(
                "SELECT collation_name FROM information_schema.collations "
                "WHERE collation_name IN :names"
            ).bindparams(sa.bindparam("names", expanding=True)),
            {"names": list(EXACT)},
        ).scalars()
    )
    return next((c for c in EXACT if c in found), None)


def exact_type(sql_type: Any, collation: str | None) -> Any:
    """``sql_type`` (of a column to create) with its text made byte-exact on MariaDB/MySQL;
    other types, and other dialects, unchanged."""
    if not isinstance(sql_type, sa.String) or isinstance(sql_type, sa.Enum):
        return sql_type
    if collation is None:  # no NO PAD collation on this server: compare bytes
        native: Any = (
            mysql.LONGBLOB() if isinstance(sql_type, sa.Text) else mysql.VARBINARY(sql_type.length)
        )
    elif isinstance(sql_type, sa.Text):
        native = mysql.LONGTEXT(charset=CHARSET, collation=collation)
    else:
        native = mysql.VARCHAR(sql_type.length, charset=CHARSET, collation=collation)
    return sql_type.with_variant(native, "mysql", "mariadb")


def column_collations(conn: sa.Connection, table: sa.Table) -> dict[str, str | None]:
    """Column -> collation (None for a column that is not text), as the server reports it."""
    schema = table.schema
    rows = conn.execute(
        sa.text(
            "SELECT column_name, collation_name FROM information_schema.columns "
            "WHERE table_schema = COALESCE(:schema, DATABASE()) AND table_name = :name"
        ),
        {"schema": schema, "name": table.name},
    ).all()
    return {str(name): (str(c) if c is not None else None) for name, c in rows}


def merging_columns(
    conn: sa.Connection, table: sa.Table, columns: list[str]
) -> list[tuple[str, str]]:
    """(column, collation) of those of ``columns`` whose collation merges distinct text."""
    if conn.dialect.name == "postgresql":
        return _pg_merging_columns(conn, table, columns)
    collations = column_collations(conn, table)
    return [
        (c, coll) for c in columns if (coll := collations.get(c)) is not None and not is_exact(coll)
    ]


def _pg_merging_columns(
    conn: sa.Connection, table: sa.Table, columns: list[str]
) -> list[tuple[str, str]]:
    """PostgreSQL: (column, what merges) of ``columns`` typed ``citext`` or under a
    nondeterministic collation."""
    rows = conn.execute(
        sa.text(
            "SELECT a.attname, t.typname, c.collname, "
            "COALESCE(c.collisdeterministic, true) "
            "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
            "LEFT JOIN pg_collation c ON c.oid = a.attcollation "
            "WHERE a.attrelid = CAST(:name AS regclass) AND a.attnum > 0 "
            "AND a.attname = ANY(:columns)"
        ),
        {"name": _regclass(table), "columns": columns},
    ).all()
    found = {}
    for column, type_name, coll, deterministic in rows:
        if type_name == "citext":
            found[str(column)] = "citext"
        elif not deterministic:
            found[str(column)] = f"{coll} (nondeterministic)"
    return [(c, found[c]) for c in columns if c in found]


def _regclass(table: sa.Table) -> str:
    """``table`` as a ``regclass`` literal (each part double-quoted)."""
    parts = [table.name] if table.schema is None else [table.schema, table.name]
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)
