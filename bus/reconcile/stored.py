"""A stored row hash on a copy: a generated column the database keeps, read instead of computed.

``lgsp reconcile prepare URL TABLE`` adds ``_lgsp_rowhash``: a generated stored column
(PostgreSQL 14+ ``GENERATED ALWAYS AS (...) STORED``, MariaDB ``AS (...) PERSISTENT``) holding
the row's portable hash (the first 60 bits of the MD5 of its canonical string,
``bus.reconcile.canonical``) over every column but ``_lgsp_*``, keys byte-exact, timestamps to
the microsecond: the same number the reconciliation computes for that row. On PostgreSQL it
also adds ``_lgsp_rowhash_native``, the record hash (``hash_record_extended``) a PostgreSQL
pair uses; on MariaDB/MySQL an index ``_lgsp_rowhash_k`` over the primary key then the column,
from which the segment sums read key and hash without the row (a copy prepared without it is
still read, from the table). A reconciliation then sums the column of the pair's hash instead
of computing each row's hash on that side (for the portable hash, building the canonical
string is most of a segment scan's cost); the other side still computes its hashes, so the
pair stays comparable whatever the other database.

The column is trusted only when its comment names the current rule and the fingerprints of
both the expression the reconciliation would compute for that side now and of the generation
expression the database holds now: a column made under an older rule, over other columns or
kinds (a column added or retyped since), with a changed expression, or compared with other
options (``--milliseconds``, ``--ignore``, a connector's ``columns:``) is left alone and the
hash is computed as before. The column is a ``_lgsp_*`` column: the reconciliation never
compares it (whatever ``--ignore`` says), and sinks write only their records' columns.

Where a rendering cannot be immutable it is refused: PostgreSQL floats (their text follows
``extra_float_digits``), MariaDB ``TIMESTAMP`` (its text follows the session's time zone).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from bus.errors import ConfigurationError, FatalError
from bus.reconcile.canonical import KEY_KINDS
from bus.reconcile.dialects import SqlDialect, error_code
from bus.reconcile.schema import DEFAULT_IGNORED, ColumnInfo, TableInfo, compare_schemas

COLUMN = "_lgsp_rowhash"
NATIVE_COLUMN = "_lgsp_rowhash_native"
# the column of each hash a reconciliation may use: portable (""), PostgreSQL's record hash
COLUMNS = {"": COLUMN, "record": NATIVE_COLUMN}
# MariaDB/MySQL: an index over the primary key then the portable column. A segment's sums
# read the key and the hash from it alone: read from the table, the stored column costs
# about 2.5x as much (the server reads every column of the row with it).
INDEX = "_lgsp_rowhash_k"
RULE = "lgsp-rowhash v1"
_COMMENT = re.compile(r"^lgsp-rowhash v(\d+) e=([0-9a-f]{16}) c=([0-9a-f]{16})$")


@dataclass(frozen=True)
class Catalog:
    """The stored column as the database describes it."""

    expression: str
    comment: str
    stored: bool


def fingerprint(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def comment_for(expression: str, catalog_expression: str) -> str:
    return f"{RULE} e={fingerprint(expression)} c={fingerprint(catalog_expression)}"


def table_columns(info: TableInfo) -> list[ColumnInfo]:
    """The columns a stored hash covers, as a reconciliation of the table with a copy of the
    same columns compares them: every column but ``_lgsp_*``, sorted, keys byte-exact."""
    check = compare_schemas(info, info, DEFAULT_IGNORED)
    if not check.key:
        raise ConfigurationError(
            f"table {info.display} has no primary key: a reconciliation needs one"
        )
    out = []
    for name in check.compared:
        col = info.columns[name]
        kind = KEY_KINDS.get(col.kind) if name in check.key else None
        out.append(replace(col, kind=kind) if kind else col)
    return out


def expression(dialect: SqlDialect, cols: Sequence[ColumnInfo], native: str = "") -> str:
    """The generated column's expression over ``cols`` for the hash ``native`` ('' portable,
    'record'); ``ConfigurationError`` when a column has no rendering the database can keep
    (see the module docstring)."""
    if native == "record":
        if dialect.name != "postgresql" or dialect.version < (14,):
            raise ConfigurationError("a stored native row hash needs PostgreSQL 14 or later")
        return dialect.hash_expr(cols, native="record", nfc=False)
    if native:
        raise ConfigurationError(f"no stored row hash of kind {native!r}")
    if dialect.name == "postgresql":
        if dialect.version < (14,):
            raise ConfigurationError("a stored row hash needs PostgreSQL 14 or later")
        floats = [c.name for c in cols if c.kind == "float"]
        if floats:
            raise ConfigurationError(
                f"column(s) {', '.join(floats)}: a float's text on PostgreSQL follows the "
                "session's extra_float_digits, so no stored hash can match; leave the table "
                "without one"
            )
    elif dialect.name == "mysql":
        zoned = [c.name for c in cols if c.type_name.upper().startswith("TIMESTAMP")]
        if zoned:
            raise ConfigurationError(
                f"column(s) {', '.join(zoned)}: a MariaDB/MySQL TIMESTAMP's text follows the "
                "session's time zone, so no stored hash can match; leave the table without one"
            )
    else:
        raise ConfigurationError(
            f"a stored row hash needs PostgreSQL or MariaDB/MySQL, not {dialect.name}"
        )
    return dialect.hash_expr(cols, native="", nfc=False, stored=True)


def read_catalog(
    engine: Engine, dialect: SqlDialect, info: TableInfo, column: str = COLUMN
) -> Catalog | None:
    """A stored column's generation expression and comment, None when there is none."""
    if dialect.name == "postgresql":
        sql = (
            "SELECT pg_get_expr(d.adbin, d.adrelid), col_description(a.attrelid, a.attnum), "
            "a.attgenerated = 's' FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
            "WHERE a.attrelid = to_regclass(:t) AND a.attname = :c AND NOT a.attisdropped"
        )
        params = {"t": dialect.table_ref(info), "c": column}
    elif dialect.name == "mysql":
        sql = (
            "SELECT GENERATION_EXPRESSION, COLUMN_COMMENT, EXTRA LIKE '%%STORED%%' "
            "OR EXTRA LIKE '%%PERSISTENT%%' FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t "
            "AND COLUMN_NAME = :c"
        )
        params = {"s": info.schema, "t": info.name, "c": column}
    else:
        return None
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text(sql), params).first()
    except SQLAlchemyError as exc:
        raise FatalError(
            f"{info.label} table {info.display}: reading the stored hash column failed "
            f"({error_code(exc)})"
        ) from exc
    if row is None:
        return None
    return Catalog(str(row[0] or ""), str(row[1] or ""), bool(row[2]))


def trusted(catalog: Catalog | None, wanted: str) -> bool:
    """The column holds, on every row, the hash ``wanted`` computes: the current rule, the
    same expression, and the database's expression unchanged since it was made."""
    if catalog is None or not catalog.stored or not catalog.expression:
        return False
    match = _COMMENT.match(catalog.comment.strip())
    if match is None or f"lgsp-rowhash v{match.group(1)}" != RULE:
        return False
    return match.group(2) == fingerprint(wanted) and match.group(3) == fingerprint(
        catalog.expression
    )


def usable(
    engine: Engine,
    dialect: SqlDialect,
    info: TableInfo,
    cols: Sequence[ColumnInfo],
    native: str = "",
) -> bool:
    """Whether a reconciliation comparing ``cols`` with the hash ``native`` may read the
    stored column of that hash."""
    column = COLUMNS.get(native)
    if column is None or column not in info.columns:
        return False
    if dialect.name not in ("postgresql", "mysql"):
        return False
    try:
        wanted = expression(dialect, cols, native)
    except ConfigurationError:
        return False
    return trusted(read_catalog(engine, dialect, info, column), wanted)


def index_columns(engine: Engine, dialect: SqlDialect, info: TableInfo) -> list[str] | None:
    """The columns of ``INDEX`` in order (MariaDB/MySQL), None when there is none."""
    if dialect.name != "mysql":
        return None
    sql = (
        "SELECT COLUMN_NAME FROM information_schema.STATISTICS "
        "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t AND INDEX_NAME = :i "
        "ORDER BY SEQ_IN_INDEX"
    )
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(sql), {"s": info.schema, "t": info.name, "i": INDEX}).all()
    except SQLAlchemyError as exc:
        raise FatalError(
            f"{info.label} table {info.display}: reading the stored hash's index failed "
            f"({error_code(exc)})"
        ) from exc
    return [str(r[0]) for r in rows] or None


def covered(engine: Engine, dialect: SqlDialect, info: TableInfo, key: Sequence[str]) -> bool:
    """Whether ``INDEX`` holds ``key`` then the portable column: a query that needs only
    those may read the index alone (the reconciliation's segment sums and row hashes)."""
    return index_columns(engine, dialect, info) == [*key, COLUMN]


def _index_clauses(
    dialect: SqlDialect, info: TableInfo, present: list[str] | None, column_made: bool
) -> list[str]:
    """``ALTER TABLE`` clauses that (re)make ``INDEX`` over the primary key and ``COLUMN``
    (``column_made``: the column is added or replaced in the same statement)."""
    wanted = [*info.primary_key, COLUMN]
    if present == wanted and not column_made:
        return []
    drop = [f"DROP INDEX {dialect.q(INDEX)}"] if present else []
    return [*drop, f"ADD INDEX {dialect.q(INDEX)} ({', '.join(dialect.q(c) for c in wanted)})"]


def _ddl(conn: sa.Connection, statement: str) -> None:
    conn.exec_driver_sql(statement)


def _probe_expression(conn: sa.Connection, dialect: SqlDialect, info: TableInfo, expr: str) -> str:
    """MariaDB's text of ``expr`` as a generated column of a scratch table shaped like the
    table (made empty with ``CREATE TABLE ... LIKE``, dropped after): the comment must carry
    it, and setting a comment after the column exists would copy the table again."""
    probe = f"_lgsp_probe_{hashlib.sha256(info.display.encode()).hexdigest()[:8]}"
    probe_ref = (
        dialect.q(probe) if info.schema is None else f"{dialect.q(info.schema)}.{dialect.q(probe)}"
    )
    _ddl(conn, f"DROP TABLE IF EXISTS {probe_ref}")
    _ddl(conn, f"CREATE TABLE {probe_ref} LIKE {dialect.table_ref(info)}")
    try:
        if COLUMN in info.columns:
            _ddl(conn, f"ALTER TABLE {probe_ref} DROP COLUMN {dialect.q(COLUMN)}")
        _ddl(
            conn,
            f"ALTER TABLE {probe_ref} ADD COLUMN {dialect.q(COLUMN)} BIGINT AS ({expr}) PERSISTENT",
        )
        row = conn.execute(
            sa.text(
                "SELECT GENERATION_EXPRESSION FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND TABLE_NAME = :t "
                "AND COLUMN_NAME = :c"
            ),
            {"s": info.schema, "t": probe, "c": COLUMN},
        ).first()
    finally:
        _ddl(conn, f"DROP TABLE IF EXISTS {probe_ref}")
    if row is None or not row[0]:
        raise FatalError(
            f"table {info.display}: the database did not report the probe's expression"
        )
    return str(row[0])


def prepare(engine: Engine, dialect: SqlDialect, info: TableInfo) -> str:
    """Add (or replace stale) stored hash columns; what was done, in words. PostgreSQL gets
    two: the portable hash (pairs with MariaDB) and the native record hash (PostgreSQL pairs,
    which hash natively on both sides); MariaDB the portable one.

    Adding a stored column rewrites the table (its size in time and disk, a lock meanwhile on
    PostgreSQL): run it when the table may be locked for that long."""
    cols = table_columns(info)
    kinds = ["", "record"] if dialect.name == "postgresql" else [""]
    wanted = {COLUMNS[k]: expression(dialect, cols, k) for k in kinds}
    state: dict[str, str] = {}
    for column, expr in wanted.items():
        if column not in info.columns:
            state[column] = "added"
        elif trusted(read_catalog(engine, dialect, info, column), expr):
            state[column] = "up to date"
        else:
            state[column] = "replaced"
    todo = [c for c in wanted if state[c] != "up to date"]
    table = dialect.table_ref(info)
    present = index_columns(engine, dialect, info)
    indexing = _index_clauses(dialect, info, present, COLUMN in todo)
    try:
        if todo and dialect.name == "postgresql":
            clauses = [f"DROP COLUMN {dialect.q(c)}" for c in todo if state[c] == "replaced"]
            clauses += [
                f"ADD COLUMN {dialect.q(c)} BIGINT GENERATED ALWAYS AS ({wanted[c]}) STORED"
                for c in todo
            ]
            with engine.connect() as conn, conn.begin():
                _ddl(conn, f"ALTER TABLE {table} {', '.join(clauses)}")
                for column in todo:
                    catalog = conn.execute(
                        sa.text(
                            "SELECT pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
                            "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                            "WHERE a.attrelid = to_regclass(:t) AND a.attname = :c"
                        ),
                        {"t": table, "c": column},
                    ).scalar_one()
                    comment = comment_for(wanted[column], str(catalog))
                    _ddl(conn, f"COMMENT ON COLUMN {table}.{dialect.q(column)} IS '{comment}'")
        elif todo:
            expr = wanted[COLUMN]
            drop_old = f"DROP COLUMN {dialect.q(COLUMN)}, " if state[COLUMN] == "replaced" else ""
            with engine.connect() as conn:
                catalog = _probe_expression(conn, dialect, info, expr)
                comment = comment_for(expr, catalog)
                _ddl(
                    conn,
                    f"ALTER TABLE {table} {drop_old}ADD COLUMN {dialect.q(COLUMN)} BIGINT "
                    f"AS ({expr}) PERSISTENT COMMENT '{comment}', {', '.join(indexing)}",
                )
        elif indexing and dialect.name == "mysql":
            with engine.connect() as conn:
                _ddl(conn, f"ALTER TABLE {table} {', '.join(indexing)}")
    except SQLAlchemyError as exc:
        raise FatalError(
            f"table {info.display}: adding {', '.join(todo) or INDEX} failed ({error_code(exc)})"
        ) from exc
    for column in todo:
        if not trusted(read_catalog(engine, dialect, info, column), wanted[column]):
            raise FatalError(f"table {info.display}: {column} was added but does not check out")
    done = ", ".join(f"{c} {state[c]}" for c in wanted)
    if dialect.name == "mysql" and not todo and indexing:
        done += f", index {INDEX} {'replaced' if present else 'added'}"
    return f"{info.display}: {done} ({len(cols)} columns)"


def drop(engine: Engine, dialect: SqlDialect, info: TableInfo) -> str:
    """Remove the stored hash columns; what was done, in words."""
    present = [c for c in COLUMNS.values() if c in info.columns]
    if not present:
        return f"{info.display}: no {COLUMN}"
    clauses = ", ".join(f"DROP COLUMN {dialect.q(c)}" for c in present)
    if index_columns(engine, dialect, info):
        clauses = f"DROP INDEX {dialect.q(INDEX)}, {clauses}"
    try:
        with engine.connect() as conn:
            _ddl(conn, f"ALTER TABLE {dialect.table_ref(info)} {clauses}")
    except SQLAlchemyError as exc:
        raise FatalError(
            f"table {info.display}: dropping {', '.join(present)} failed ({error_code(exc)})"
        ) from exc
    return f"{info.display}: {', '.join(present)} dropped"


def prepare_url(url: str | sa.URL, table: str, *, remove: bool = False) -> str:
    """``prepare`` (or ``drop``) on ``table`` at ``url``; what was done, in words."""
    from bus.reconcile.dialects import dialect_for
    from bus.reconcile.schema import reflect_table

    try:
        engine = sa.create_engine(url, hide_parameters=True)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"url: not a usable SQLAlchemy URL ({type(exc).__name__}; expected "
            "postgresql+psycopg://user@host/db or mysql+pymysql://...)"
        ) from exc
    try:
        dialect = dialect_for(engine)
        info = reflect_table(engine, table, "copy")
        if remove:
            return drop(engine, dialect, info)
        return prepare(engine, dialect, info)
    finally:
        engine.dispose()
