"""SQL for the canonical row string, its hash and the segment aggregates, per dialect.

Hashes:
- ``portable`` (any pair): the first 60 bits of MD5 of the canonical string, computed with
  ``md5()`` on PostgreSQL, ``MD5()`` + ``CONV`` on MariaDB and a registered Python function on
  SQLite. The same row gives the same number everywhere.
- ``native`` (only when both sides are PostgreSQL 11+): ``hashtextextended`` of the same
  canonical string, about twice as cheap as ``md5()`` there.

Sums of hashes are exact (NUMERIC on PostgreSQL, DECIMAL on MariaDB, a Python aggregate on
SQLite) and folded to 64 bits in Python. Sessions are set to UTC so that time zones render alike.
Every identifier is quoted by the dialect's own preparer; every number put into SQL text is an
integer computed here, never a value from a table or a person.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine, event

from bus.reconcile.canonical import ESCAPED_KINDS, HASH_BITS, MARKED_KINDS, md5_60, row_string
from bus.reconcile.schema import ColumnInfo, TableInfo
from connectors.soft_delete import NOT_SET

_PG_CONCAT_MAX = 90
_NOT_SET = ", ".join(f"'{value}'" for value in NOT_SET)  # plain ASCII words, no quote


class SqlDialect:
    """Renders the reconciliation's SQL for one database."""

    name = "generic"
    supports_native = False

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.preparer = engine.dialect.identifier_preparer
        self.version: tuple[int, ...] = ()
        self.can_nfc = False

    # ---- identifiers -----------------------------------------------------------------------
    def q(self, name: str) -> str:
        return self.preparer.quote(name)

    def table_ref(self, table: TableInfo) -> str:
        return self.preparer.format_table(table.sa_table)

    # ---- canonical string and hashes -------------------------------------------------------
    def part(self, col: ColumnInfo, nfc: bool) -> str:
        raise NotImplementedError

    def canon_string(self, cols: Sequence[ColumnInfo], nfc: bool) -> str:
        raise NotImplementedError

    def hash_expr(
        self, cols: Sequence[ColumnInfo], *, native: str, nfc: bool, stored: bool = False
    ) -> str:
        """The row hash of ``cols``; ``stored``: the portable hash in a form a generated
        stored column accepts (same value as the computed portable hash)."""
        raise NotImplementedError

    def hsum(self, expr: str) -> str:
        return f"SUM({expr})"

    def not_deleted(self, col: ColumnInfo) -> str:
        """Rows whose soft-delete flag is not set: ``connectors.soft_delete`` in SQL."""
        q = self.q(col.name)
        if col.kind in ("int", "bool", "decimal", "float"):
            return f"({q} IS NULL OR {q} = 0)"
        return f"({q} IS NULL OR LOWER(TRIM({q})) IN ({_NOT_SET}))"

    def bucket(self, key_expr: str, lo: int, width: int) -> str:
        return f"(({key_expr} - ({lo})) / {int(width)})"

    def index_hint(self, index: str) -> str:
        """After a table in ``FROM``: read it through ``index`` (empty: the planner's pick)."""
        return ""

    def mod(self, expr: str, modulus: int) -> str:
        return f"(({expr}) % {int(modulus)})"


class PostgresDialect(SqlDialect):
    name = "postgresql"
    supports_native = True

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        event.listen(engine, "connect", self._on_connect)
        with engine.connect() as conn:
            num = int(conn.exec_driver_sql("SHOW server_version_num").scalar() or 0)
            encoding = str(conn.exec_driver_sql("SHOW server_encoding").scalar())
        self.version = (num // 10000, num % 10000)
        self.can_nfc = num >= 130000 and encoding.upper() in ("UTF8", "UTF-8")
        self.has_trim_scale = num >= 130000
        self.supports_native = num >= 110000
        self.has_hash_record = num >= 140000

    @staticmethod
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET TimeZone TO 'UTC'")
        cur.execute("SET DateStyle TO 'ISO, YMD'")
        cur.execute("SET extra_float_digits TO 1")
        # Segment aggregates have a few thousand groups, but the planner expects one per row
        # and, with the default work_mem, sorts them (spilling to disk): 2x slower than the
        # in-memory hash aggregate it picks with room (which then uses a few MB).
        cur.execute("SET work_mem TO '256MB'")
        cur.close()
        dbapi_conn.commit()

    def _nfc(self, text: str, nfc: bool) -> str:
        """``text`` NFC-normalised when asked and the server can (skipped when already NFC)."""
        if not (nfc and self.can_nfc):
            return text
        return f"(CASE WHEN {text} IS NFC NORMALIZED THEN {text} ELSE normalize({text}, NFC) END)"

    def _text(self, col: ColumnInfo, nfc: bool) -> str:
        """A text column under the binary collation ``"C"``: a column's own collation may be
        nondeterministic (case- or accent-insensitive ICU), and the native hashes hash by it;
        NFC only for non-key text."""
        text = f'({self.q(col.name)}::text COLLATE "C")'
        return text if col.kind.startswith("key_") else self._nfc(text, nfc)

    def part(self, col: ColumnInfo, nfc: bool, *, stored: bool = False) -> str:
        """One column's part; ``stored``: in immutable functions only (a generated column:
        the text of dates and timestamps must not follow the writing session's DateStyle)."""
        q = self.q(col.name)
        kind = col.kind
        if stored and kind in ("date", "datetime", "datetime_ms"):
            return self._stored_datetime(col)
        if kind == "int":
            return q
        if kind == "bool":
            return f"{q}::int"
        if kind == "decimal":
            if self.has_trim_scale:
                return f"trim_scale({q})"
            trimmed = f"rtrim(rtrim({q}::text, '0'), '.')"
            return f"CASE WHEN scale({q}) > 0 THEN {trimmed} ELSE {q}::text END"
        if kind == "float":
            return f"{q}::float8"
        if kind == "date":
            return q
        if kind in ("datetime", "datetime_ms"):
            value = f"({q} AT TIME ZONE 'UTC')" if col.timezone else q
            return f"date_trunc('milliseconds', {value})" if kind == "datetime_ms" else value
        if kind in ("time", "time_ms"):
            if "TIME ZONE" in col.type_name.upper():
                return f"{q}::text"
            if kind == "time_ms":
                return f"(date_trunc('milliseconds', DATE '2000-01-01' + {q}))::time"
            return q
        if kind in ("text", "char", "key_text", "key_char"):
            return f"coalesce({self._escape(self._text(col, nfc))}, chr(30))"
        if kind == "binary":
            return f"coalesce(encode({q}, 'hex'), chr(30))"
        if kind in ESCAPED_KINDS:
            return f"coalesce({self._escape(f'{q}::text')}, chr(30))"
        return f"coalesce({q}::text, chr(30))"

    def _stored_datetime(self, col: ColumnInfo) -> str:
        """A date or timestamp as ``canonical`` renders it, from ``extract`` (immutable on
        ``date`` and ``timestamp``) rather than the output function (stable: DateStyle).
        Years 1-9999 render as ``date_out`` does; others (BC) render differently, so those
        rows' hashes differ and the row comparison in Python decides."""
        q = self.q(col.name)
        value = f"({q} AT TIME ZONE 'UTC')" if col.timezone else q
        if col.kind == "datetime_ms":
            value = f"date_trunc('milliseconds', {value})"

        def pad(field: str, width: int) -> str:
            return f"lpad(extract({field} from {value})::int::text, {width}, '0')"

        year = f"extract(year from {value})::int"
        ymd = (
            f"(CASE WHEN {year} < 1000 THEN lpad({year}::text, 4, '0') ELSE {year}::text END"
            f" || '-' || {pad('month', 2)} || '-' || {pad('day', 2)})"
        )
        if col.kind == "date":
            text = ymd
            finite_sample = "DATE '2000-01-01'"
        else:
            seconds = f"extract(second from {value})"
            text = (
                f"({ymd} || ' ' || {pad('hour', 2)} || ':' || {pad('minute', 2)} || ':' || "
                f"(CASE WHEN {seconds} < 10 THEN '0' ELSE '' END) || trim_scale({seconds})::text)"
            )
            finite_sample = "TIMESTAMP '2000-01-01 00:00:00'"
        return (
            f"(CASE WHEN isfinite({value}) THEN {text} "
            f"WHEN {value} > {finite_sample} THEN 'infinity' "
            f"WHEN {value} < {finite_sample} THEN '-infinity' END)"
        )

    @staticmethod
    def _escape(text: str) -> str:
        """``canonical.escape`` in SQL."""
        text = f"replace({text}, chr(29), chr(29) || '0')"
        text = f"replace({text}, chr(31), chr(29) || '1')"
        return f"replace({text}, chr(30), chr(29) || '2')"

    def not_deleted(self, col: ColumnInfo) -> str:
        q = self.q(col.name)
        if col.kind == "bool":
            return f"({q} IS NULL OR NOT {q})"
        if col.kind in ("int", "decimal", "float"):
            return f"({q} IS NULL OR {q} = 0)"
        return f"({q} IS NULL OR lower(trim({q}::text)) IN ({_NOT_SET}))"

    def _text_part(self, col: ColumnInfo, nfc: bool, stored: bool = False) -> str:
        """``part`` as text that is never NULL (NULL renders as ``''``, as ``concat`` does)."""
        part = self.part(col, nfc, stored=stored)
        if col.kind in MARKED_KINDS:
            return part  # already text, NULL already marked
        return f"coalesce(({part})::text, '')"

    def canon_string(self, cols: Sequence[ColumnInfo], nfc: bool, stored: bool = False) -> str:
        """The parts joined by ``||`` (``concat()`` looks up each argument's output function
        on every row: about 10% of a level-0 scan), in groups joined by ``concat()`` so that
        expressions stay shallow on wide tables; every part is non-NULL text, so both agree."""
        args: list[str] = []
        for i, col in enumerate(cols):
            if i:
                args.append("chr(31)")
            args.append(self._text_part(col, nfc, stored))
        groups = [
            "(" + " || ".join(args[i : i + _PG_CONCAT_MAX]) + ")"
            for i in range(0, len(args), _PG_CONCAT_MAX)
        ]
        while len(groups) > 1:
            groups = [
                "concat(" + ", ".join(groups[i : i + _PG_CONCAT_MAX]) + ")"
                for i in range(0, len(groups), _PG_CONCAT_MAX)
            ]
        return groups[0]

    def hash_expr(
        self, cols: Sequence[ColumnInfo], *, native: str, nfc: bool, stored: bool = False
    ) -> str:
        if stored:
            text = self.canon_string(cols, False, stored=True)
            return f"('x' || substr(md5({text}), 1, 15))::bit({HASH_BITS})::bigint"
        if native == "record":
            return (
                f"hash_record_extended(ROW({', '.join(self._hashable(c, nfc) for c in cols)}), 0)"
            )
        text = self.canon_string(cols, nfc)
        if native == "text":
            return f"hashtextextended({text}, 0)"
        return f"('x' || substr(md5({text}), 1, 15))::bit({HASH_BITS})::bigint"

    def _hashable(self, col: ColumnInfo, nfc: bool) -> str:
        """A column as ``hash_record_extended`` takes it: types with an extended hash as they
        are (equal numerics hash alike whatever their scale; int2/4/8 hash alike), others as
        text; time zones and millisecond cuts as in the canonical form."""
        q = self.q(col.name)
        kind = col.kind
        if kind in ("int", "bool", "decimal", "float", "date", "binary", "uuid"):
            return q
        if kind in ("datetime", "datetime_ms"):
            return f"date_trunc('milliseconds', {q})" if kind == "datetime_ms" else q
        if kind in ("time", "time_ms") and "TIME ZONE" not in col.type_name.upper():
            if kind == "time_ms":
                return f"(date_trunc('milliseconds', DATE '2000-01-01' + {q}))::time"
            return q
        if kind in ("text", "char", "key_text", "key_char"):
            return self._text(col, nfc)
        return f"{q}::text"


class MySQLDialect(SqlDialect):
    name = "mysql"

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        event.listen(engine, "connect", self._on_connect)
        with engine.connect() as conn:
            raw = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
        self.version = tuple(int(p) for p in raw.split("-")[0].split(".")[:2] if p.isdigit())

    @staticmethod
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.close()

    @staticmethod
    def _trim_fraction(expr: str) -> str:
        return f"TRIM(TRAILING '.' FROM TRIM(TRAILING '0' FROM {expr}))"

    def part(self, col: ColumnInfo, nfc: bool, *, escape: bool = True, stored: bool = False) -> str:
        """One column's part of the canonical string; ``escape=False`` leaves text as it is
        (the same string when the text holds none of the form's control characters);
        ``stored``: as a generated column accepts it (see ``_text``)."""
        q = self.q(col.name)
        kind = col.kind
        if kind in ("int", "bool", "date", "float"):
            return f"COALESCE({q}, '')"
        if kind == "decimal":
            if col.scale:
                return f"COALESCE({self._trim_fraction(q)}, '')"
            return f"COALESCE({q}, '')"
        if kind in ("datetime", "time", "datetime_ms", "time_ms"):
            if not col.fsp:
                return f"COALESCE({q}, '')"
            if kind.endswith("_ms") and col.fsp > 3:
                text = f"CAST({q} AS CHAR)"
                cut = f"SUBSTR({text}, 1, LOCATE('.', {text}) + 3)"
                return f"COALESCE({self._trim_fraction(cut)}, '')"
            return f"COALESCE({self._trim_fraction(q)}, '')"
        if kind == "binary":
            return f"COALESCE(LOWER(HEX({q})), CHAR(30))"
        text = self._text(col, stored)
        escaped = escape and kind in ESCAPED_KINDS
        return f"COALESCE({self._escape(text) if escaped else text}, CHAR(30))"

    def _text(self, col: ColumnInfo, stored: bool = False) -> str:
        """A text-like column (text, char, JSON, other) as utf8mb4-compatible text; ``stored``:
        a CHAR through ``RTRIM`` (a bare CHAR's text follows the session's sql_mode, which a
        generated column refuses; both drop the trailing spaces)."""
        q = self.q(col.name)
        if stored and col.kind in ("char", "key_char"):
            q = f"RTRIM({q})"
        if col.kind in ("text", "char", "json", "key_text", "key_char"):
            charset = (col.charset or "utf8mb4").lower()
            if charset.startswith("utf8") or charset == "ascii":
                return q
            return f"CONVERT({q} USING utf8mb4)"
        return f"CAST({q} AS CHAR)"

    @staticmethod
    def _escape(text: str) -> str:
        """``canonical.escape`` in SQL."""
        esc = "CHAR(29 USING utf8mb4)"
        text = f"REPLACE({text}, {esc}, CONCAT({esc}, '0'))"
        text = f"REPLACE({text}, CHAR(31 USING utf8mb4), CONCAT({esc}, '1'))"
        return f"REPLACE({text}, CHAR(30 USING utf8mb4), CONCAT({esc}, '2'))"

    def _concat(
        self, cols: Sequence[ColumnInfo], nfc: bool, escape: bool, stored: bool = False
    ) -> str:
        args: list[str] = []
        for i, col in enumerate(cols):
            if i:
                args.append("CHAR(31)")
            args.append(self.part(col, nfc, escape=escape, stored=stored))
        return "CONCAT(" + ", ".join(args) + ")"

    def canon_string(self, cols: Sequence[ColumnInfo], nfc: bool, stored: bool = False) -> str:
        """The parts joined by the separator. Escaping costs three ``REPLACE`` per text
        column (a third of a level-0 scan's CPU on a table with four text columns), and
        text almost never holds the form's control characters: one ``RLIKE`` over the
        row's text picks the escaped string only for rows that do. Both branches give the
        same string for the other rows, so the result is the escaped form on every row."""
        escaped = self._concat(cols, nfc, escape=True, stored=stored)
        texts = [self._text(c, stored) for c in cols if c.kind in ESCAPED_KINDS]
        if not texts:
            return escaped
        plain = self._concat(cols, nfc, escape=False, stored=stored)
        controls = "CONCAT('[', CHAR(29 USING utf8mb4), '-', CHAR(31 USING utf8mb4), ']')"
        return f"IF(CONCAT_WS('', {', '.join(texts)}) RLIKE {controls}, {escaped}, {plain})"

    def hash_expr(
        self, cols: Sequence[ColumnInfo], *, native: str, nfc: bool, stored: bool = False
    ) -> str:
        text = self.canon_string(cols, nfc, stored)
        return f"CAST(CONV(SUBSTR(MD5({text}), 1, 15), 16, 10) AS UNSIGNED)"

    def bucket(self, key_expr: str, lo: int, width: int) -> str:
        return f"(({key_expr} - ({lo})) DIV {int(width)})"

    def index_hint(self, index: str) -> str:
        """MariaDB picks the primary key for a key range even when a narrower index holds
        every column the query needs (measured: the covering index scan costs 40% of it)."""
        return f" FORCE INDEX ({self.q(index)})"


class _HashSum:
    """SQLite aggregate: the exact sum of 60-bit hashes, as text (SQLite's SUM would overflow)."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: Any) -> None:
        if value is not None:
            self.total += int(value)

    def finalize(self) -> str:
        return str(self.total)


_SPEC_CACHE: dict[str, tuple[str, ...]] = {}
_SPEC_LOCK = threading.Lock()


def _kinds(spec: str) -> tuple[str, ...]:
    kinds = _SPEC_CACHE.get(spec)
    if kinds is None:
        kinds = tuple(spec.split(","))
        with _SPEC_LOCK:
            _SPEC_CACHE[spec] = kinds
    return kinds


def _sqlite_rowhash(spec: str, *values: Any) -> int:
    return md5_60(row_string(values, _kinds(spec)))


class SQLiteDialect(SqlDialect):
    name = "sqlite"
    max_columns = 120

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        event.listen(engine, "connect", self._on_connect)
        self.can_nfc = True
        import sqlite3

        self.version = sqlite3.sqlite_version_info

    @staticmethod
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.create_function("lgsp_rowhash", -1, _sqlite_rowhash, deterministic=True)
        dbapi_conn.create_aggregate("lgsp_hsum", 1, _HashSum)

    def part(self, col: ColumnInfo, nfc: bool) -> str:
        return self.q(col.name)

    def not_deleted(self, col: ColumnInfo) -> str:
        q = self.q(col.name)  # a SQLite value has its own type, whatever the column's
        return (
            f"({q} IS NULL OR (typeof({q}) IN ('integer', 'real') AND {q} = 0)"
            f" OR (typeof({q}) = 'text' AND LOWER(TRIM({q})) IN ({_NOT_SET})))"
        )

    def canon_string(self, cols: Sequence[ColumnInfo], nfc: bool) -> str:
        raise NotImplementedError("SQLite renders the canonical string in Python")

    def hash_expr(
        self, cols: Sequence[ColumnInfo], *, native: str, nfc: bool, stored: bool = False
    ) -> str:
        spec = ",".join(c.kind for c in cols)
        if not all(ch.isalpha() or ch in ",_" for ch in spec):
            raise ValueError("column kinds must be plain words")
        args = ", ".join(self.q(c.name) for c in cols)
        return f"lgsp_rowhash('{spec}', {args})"

    def hsum(self, expr: str) -> str:
        return f"lgsp_hsum({expr})"

    def bucket(self, key_expr: str, lo: int, width: int) -> str:
        return f"CAST(({key_expr} - ({lo})) / {int(width)} AS INTEGER)"


def keys_in(
    cols: Sequence[Any], keys: Sequence[Sequence[Any]], chunk: int
) -> Iterator[sa.ColumnElement[bool]]:
    """``cols IN (...)`` over ``keys`` (tuples in ``cols`` order), ``chunk`` keys at a time."""
    for start in range(0, len(keys), chunk):
        part = keys[start : start + chunk]
        if len(cols) == 1:
            yield cols[0].in_([k[0] for k in part])
        else:
            yield sa.tuple_(*cols).in_([tuple(k) for k in part])


def dialect_for(engine: Engine) -> SqlDialect:
    name = engine.dialect.name
    if name == "postgresql":
        return PostgresDialect(engine)
    if name in ("mysql", "mariadb"):
        return MySQLDialect(engine)
    if name == "sqlite":
        return SQLiteDialect(engine)
    from bus.errors import ConfigurationError

    raise ConfigurationError(
        f"reconcile: dialect {name!r} is not supported (postgresql, mysql/mariadb, sqlite)"
    )


def error_code(exc: BaseException) -> str:
    """The error class and the driver's code (SQLSTATE, MySQL number, SQLite name).

    Never the driver's message: PostgreSQL and MariaDB messages may quote row values.
    """
    orig = getattr(exc, "orig", None) or exc
    name = type(orig).__name__
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(state, str) and state:
        return f"{name}, SQLSTATE {state}"
    sqlite_name = getattr(orig, "sqlite_errorname", None)
    if isinstance(sqlite_name, str) and sqlite_name:
        return f"{name}, {sqlite_name}"
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        return f"{name}, error {args[0]}"
    return name


def read_error(exc: BaseException, what: str) -> Exception:
    """The bus error for a failed read of ``what``: retriable when the database does not
    answer, fatal otherwise; named by ``error_code`` only."""
    from bus.errors import DatabaseUnavailableError, FatalError

    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        return DatabaseUnavailableError(f"{what}: the database failed the read ({error_code(exc)})")
    return FatalError(f"{what}: the query failed ({error_code(exc)})")


def display_url(url: str | sa.URL) -> str:
    """A URL with its password hidden."""
    from bus.config import mask_url

    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    return mask_url(url)


def make_engine(url: str | sa.URL, connect_args: dict[str, Any] | None = None) -> Engine:
    """An engine for reading: plain autocommit reads (no transaction held, no locks taken).

    Its errors never quote the statement's parameters (row values, personal data).
    """
    from bus.errors import ConfigurationError

    try:
        engine = sa.create_engine(
            url,
            pool_pre_ping=True,
            isolation_level="AUTOCOMMIT",
            hide_parameters=True,
            connect_args=connect_args or {},
        )
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
        raise ConfigurationError(
            f"url: cannot use {display_url(url)} ({type(exc).__name__}: expected a SQLAlchemy "
            "URL such as postgresql+psycopg://user@host/db, mysql+pymysql://..., sqlite:///f.db)"
        ) from exc
    return engine
