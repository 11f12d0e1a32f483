"""The SQL connector types, one per database: ``SqlPlugin`` puts the shared surface, the
source and the sink together; each dialect sets its class flags (``backends``,
``default_driver``, ``sqlite_types``, ``on_conflict_insert``, ``default_lookback_s``) and
overrides only its URL, driver options, error classification, type quirks and upsert."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import URL, Connection

from bus.text import decode_utf8
from connectors.base import Batch, Stream, WriteReport
from connectors.errors import ConnectorConfigError, FieldError
from connectors.sql import mylog, pglog
from connectors.sql.bulk import CopyUpsert
from connectors.sql.config import SqlTable
from connectors.sql.connector import SqlConnector, sqlite_path
from connectors.sql.pglog import PgLogReader
from connectors.sql.sink import SinkTable, SqlSink
from connectors.sql.source import SqlSource
from connectors.sql.types import OutOfRangeDate
from connectors.sql.upsert import VERSION, version_condition

# PostgreSQL: connection exception, insufficient resources, operator intervention, system
# error, transaction rollback (deadlock, serialization); lock not available
_PG_TRANSIENT_CLASSES = ("08", "53", "57", "58", "40")
_PG_TRANSIENT_STATES = ("55P03",)
# MySQL/MariaDB errors about a row's values: NOT NULL, duplicate key, out of range, truncated,
# incorrect value, too long, foreign keys, invalid JSON, check constraints
_MYSQL_ROW_ERRORS = frozenset(
    {1048, 1062, 1216, 1217, 1264, 1265, 1292, 1366, 1406, 1451, 1452, 3140, 3819, 4025}
)
# too many connections, shutdown, lock wait timeout, deadlock, connection killed, timeouts
_MYSQL_TRANSIENT = frozenset({1040, 1053, 1205, 1213, 1927, 3024})
_SQLITE_TRANSIENT = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CANTOPEN",
    "SQLITE_IOERR",
    "SQLITE_FULL",
)


def _orig(exc: BaseException) -> BaseException:
    return getattr(exc, "orig", None) or exc


class SqlPlugin(SqlConnector):
    """A SQL connector type: the shared surface with its source and sink pieces."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.source = SqlSource(self)
        self.sink = SqlSink(self)

    def discover_table(self, conn: Connection, cfg: SqlTable, table: sa.Table | None) -> Stream:
        if self.role == "sink":
            return self.sink.stream(conn, cfg, table)
        if table is None:
            raise self.missing_table(conn, cfg.table)
        return self.source.stream(cfg, table)

    def read_stream(self, stream: Stream, position: dict[str, Any] | None) -> Iterator[Batch]:
        return self.source.read_stream(stream, position)

    def plan_sink(self, table: str, record_schema: dict[str, Any]) -> list[str]:
        return self.sink.plan(table, record_schema)

    def prepare(
        self, table: str, record_schema: dict[str, Any], *, existing: bool = False
    ) -> SinkTable:
        return self.sink.prepare(table, record_schema, existing=existing)

    def write(self, batch: Batch) -> WriteReport:
        return self.sink.write(batch)

    def _logged(self) -> bool:
        """A source with ``mode: log`` tables (the dialects check and report its log)."""
        return self.role == "source" and any(t.effective_mode == "log" for t in self.config.tables)


class PostgresConnector(SqlPlugin):
    """PostgreSQL through psycopg 3; upsert with ``INSERT ... ON CONFLICT DO UPDATE WHERE``."""

    type_name = "postgresql"
    backends = ("postgresql",)
    default_driver = "psycopg"
    on_conflict_insert = staticmethod(postgresql.insert)

    def bulk_upsert(self, table: sa.Table, columns: list[str], key: list[str]) -> CopyUpsert:
        return CopyUpsert(table, columns, key, self.engine.dialect)

    def read_log(
        self, streams: list[Stream], positions: dict[str, dict[str, Any] | None]
    ) -> Iterator[Batch]:
        """The ``mode: log`` tables read together from the connector's replication slot
        (``connectors.sql.pglog``): batches of one table each, in commit order."""
        return PgLogReader(self.source, streams).read(positions)

    def check(self) -> None:
        """The connection, and for ``mode: log`` tables the server's ``wal_level`` and the
        role's REPLICATION attribute (each missing one named)."""
        super().check()
        if not self._logged():
            return
        with self.connect() as conn:
            problems = [FieldError("mode", f"log: {p}") for p in pglog.server_problems(conn)]
            for i, t in enumerate(self.config.tables):
                if t.effective_mode == "log":
                    found = pglog.identity_problem(t.table, pglog.replica_identity(conn, t.table))
                    if found:
                        problems.append(FieldError(f"tables[{i}].mode", f"log: {found}"))
        if problems:
            raise ConnectorConfigError(problems, name=self.name)

    def discover_table(self, conn: Connection, cfg: SqlTable, table: sa.Table | None) -> Stream:
        stream = super().discover_table(conn, cfg, table)
        if self.role == "source" and cfg.effective_mode == "log":
            warning = pglog.identity_warning(cfg.table, pglog.replica_identity(conn, cfg.table))
            if warning:
                stream.warnings.append(warning)
        return stream

    def log_status(self) -> dict[str, Any] | None:
        if not self._logged():
            return None
        with self.connect() as conn:
            status = pglog.slot_status(conn, self.name)
        shown = status.to_dict()
        if status.lost or not status.exists:
            why = "was invalidated (its WAL is gone)" if status.lost else "does not exist"
            shown["problem"] = (
                f"replication slot {status.slot} {why}; it is created by the first run, and "
                f"after a loss changes must be read again: {pglog.resnapshot_command(self.name)}"
            )
        return shown

    def drop_log(self) -> dict[str, Any] | None:
        if not self._logged():
            return None
        with self.connect() as conn:
            return pglog.drop(conn, self.name).to_dict()

    def prepare_source_connection(self, dbapi_connection: Any, _record: Any = None) -> None:
        # a date or timestamp psycopg cannot load (infinity, BC, after 9999) would fail the
        # whole read: it is read as a marker instead, and that row goes to the DLQ
        adapters = dbapi_connection.adapters
        for name in ("date", "timestamp", "timestamptz"):
            adapters.register_loader(name, _tolerant_loader(adapters, name))

    def connect_args(self) -> dict[str, Any]:
        # libpq counts whole seconds (at least 2)
        return {"connect_timeout": max(2, math.ceil(self.config.connection.connect_timeout_s))}

    def error_kind(self, exc: BaseException) -> str | None:
        orig = _orig(exc)
        state = getattr(orig, "sqlstate", None)
        text = str(orig).lower()
        if state in ("28P01", "28000") or "authentication failed" in text:
            return "auth"
        if "role" in text and "does not exist" in text:
            return "auth"
        if state == "3D000" or ("database" in text and "does not exist" in text):
            return "database"
        return "unreachable"

    def is_row_error(self, exc: BaseException) -> bool:
        # class 22 (data exception) and 23 (integrity constraint violation)
        state = getattr(_orig(exc), "sqlstate", None)
        if state:
            return state[:2] in ("22", "23")
        return super().is_row_error(exc)

    def is_transient(self, exc: BaseException) -> bool:
        if getattr(exc, "connection_invalidated", False) or isinstance(exc, sa.exc.InterfaceError):
            return True
        state = getattr(_orig(exc), "sqlstate", None)
        if state is None:  # no answer from the server: the connection failed
            return isinstance(exc, sa.exc.OperationalError)
        return state[:2] in _PG_TRANSIENT_CLASSES or state in _PG_TRANSIENT_STATES

    def error_code(self, exc: BaseException) -> str | None:
        state = getattr(_orig(exc), "sqlstate", None)
        return f"SQLSTATE {state}" if state else None

    error_meanings: ClassVar[dict[str, str]] = {
        "SQLSTATE 42501": "permission denied",
        "SQLSTATE 42703": "a column does not exist",
        "SQLSTATE 42P01": "the table does not exist",
        "SQLSTATE 42804": "a column's type does not match",
        "SQLSTATE 25006": "the database is read-only",
        "SQLSTATE 23505": "duplicate key",
        "SQLSTATE 23502": "a NOT NULL column got NULL",
        "SQLSTATE 23503": "foreign key violation",
        "SQLSTATE 23514": "check constraint violation",
        "SQLSTATE 22001": "value too long for the column",
        "SQLSTATE 22003": "number out of range",
    }


def _tolerant_loader(adapters: Any, name: str) -> type[Any]:
    """A text loader of the PostgreSQL type ``name`` that gives an ``OutOfRangeDate`` where the
    driver's own loader (kept for speed) refuses the value."""
    import psycopg
    from psycopg.adapt import Loader

    oid = adapters.types[name].oid
    native = adapters.get_loader(oid, psycopg.pq.Format.TEXT)

    class TolerantLoader(Loader):
        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._load = native(oid, context).load

        def load(self, data: Any) -> Any:
            try:
                return self._load(data)
            except psycopg.DataError:
                return OutOfRangeDate(bytes(data).decode("ascii", "replace"))

    return TolerantLoader


class MySQLConnector(SqlPlugin):
    """MySQL and MariaDB through PyMySQL; upsert with ``ON DUPLICATE KEY UPDATE`` guarded
    per column by the version (the version column itself is assigned last)."""

    type_name = "mysql"
    backends = ("mysql", "mariadb")
    default_driver = "pymysql"

    def read_log(
        self, streams: list[Stream], positions: dict[str, dict[str, Any] | None]
    ) -> Iterator[Batch]:
        """The ``mode: log`` tables read together from the server's row binlog
        (``connectors.sql.mylog``): batches of one table each, in commit order."""
        return mylog.MyLogReader(self.source, streams).read(positions)

    def check(self) -> None:
        """The connection, and for ``mode: log`` tables the server's binlog settings and the
        user's replication privileges (each missing one named)."""
        super().check()
        if not self._logged():
            return
        with self.connect() as conn:
            problems = [FieldError("mode", f"log: {p}") for p in mylog.server_problems(conn)]
        if problems:
            raise ConnectorConfigError(problems, name=self.name)

    def log_status(self) -> dict[str, Any] | None:
        """The server's binlog (current file, offset and GTID, the files it keeps); the
        connector's own position is each table's, shown with the positions."""
        if not self._logged():
            return None
        with self.connect() as conn:
            return mylog.binlog_status(conn).to_dict()

    def get_sqlalchemy_url(self) -> URL:
        url = super().get_sqlalchemy_url()
        if "charset" not in url.query:
            url = url.update_query_dict({"charset": "utf8mb4"})
        return url

    def connect_args(self) -> dict[str, Any]:
        timeout = self.config.connection.connect_timeout_s
        return {"connect_timeout": max(1, math.ceil(timeout))}

    def error_kind(self, exc: BaseException) -> str | None:
        orig = _orig(exc)
        args = getattr(orig, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        if code in (1044, 1045, 1698):
            return "auth"
        if code == 1049:
            return "database"
        return "unreachable"

    @staticmethod
    def _code(exc: BaseException) -> int | None:
        args = getattr(_orig(exc), "args", ())
        return args[0] if args and isinstance(args[0], int) else None

    def is_row_error(self, exc: BaseException) -> bool:
        return self._code(exc) in _MYSQL_ROW_ERRORS

    def is_transient(self, exc: BaseException) -> bool:
        if getattr(exc, "connection_invalidated", False) or isinstance(exc, sa.exc.InterfaceError):
            return True
        code = self._code(exc)
        if code is None or code in _MYSQL_TRANSIENT:
            return isinstance(exc, sa.exc.OperationalError | sa.exc.InternalError)
        return 2000 <= code < 3000  # client errors: the connection failed

    def error_code(self, exc: BaseException) -> str | None:
        code = self._code(exc)
        return f"MySQL {code}" if code is not None else None

    error_meanings: ClassVar[dict[str, str]] = {
        "MySQL 1142": "permission denied",
        "MySQL 1143": "permission denied on a column",
        "MySQL 1054": "a column does not exist",
        "MySQL 1146": "the table does not exist",
        "MySQL 1290": "the server is read-only",
        "MySQL 1792": "the transaction is read-only",
        "MySQL 1836": "the server is read-only",
        "MySQL 1048": "a NOT NULL column got NULL",
        "MySQL 1062": "duplicate key",
        "MySQL 1264": "number out of range",
        "MySQL 1265": "value truncated",
        "MySQL 1292": "incorrect date or time value",
        "MySQL 1366": "incorrect value for the column",
        "MySQL 1406": "value too long for the column",
        "MySQL 1452": "foreign key violation",
    }

    def upsert_statement(self, table: sa.Table, columns: list[str], key: list[str]) -> Any:
        stmt = mysql.insert(table)
        inserted = stmt.inserted
        newer = version_condition(table, inserted[VERSION])
        updates = [
            (c, sa.case((newer, inserted[c]), else_=table.c[c]))
            for c in columns
            if c not in key and c != VERSION
        ]
        last = sa.case((newer, inserted[VERSION]), else_=table.c[VERSION])
        updates.append((VERSION, last))
        return stmt.on_duplicate_key_update(updates)


class SQLiteConnector(SqlPlugin):
    """SQLite files; upsert with ``INSERT ... ON CONFLICT DO UPDATE WHERE``. A source file must
    exist; a sink may create a new file in an existing folder."""

    type_name = "sqlite"
    backends = ("sqlite",)
    sqlite_types = True
    # one writer at a time: a stamp taken before the write lock waits at most the busy timeout
    default_lookback_s = 60
    on_conflict_insert = staticmethod(sqlite.insert)

    @classmethod
    def normalize(cls, data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """A relative SQLite path is relative to the connector file, stored absolute."""
        connection = data.get("connection")
        url = connection.get("url") if isinstance(connection, dict) else None
        prefix = "sqlite:///"
        if not isinstance(url, str) or not url.startswith(prefix):
            return data
        path = url[len(prefix) :]
        if not path or path.startswith((":memory:", "/", "file:", "$")) or "?" in path:
            return data
        absolute = (base_dir / path).resolve()
        return {**data, "connection": {**connection, "url": f"{prefix}{absolute}"}}

    def get_sqlalchemy_url(self) -> URL:
        url = super().get_sqlalchemy_url()
        path = sqlite_path(url)
        if path is not None:
            if self.role == "source" and not path.is_file():
                raise ConnectorConfigError(
                    [FieldError("connection.url", f"the SQLite file {path} does not exist")],
                    name=self.name,
                )
            if not path.parent.is_dir():
                raise ConnectorConfigError(
                    [
                        FieldError(
                            "connection.url", f"the folder of the SQLite file {path} does not exist"
                        )
                    ],
                    name=self.name,
                )
        return url

    def connect_args(self) -> dict[str, Any]:
        return {"timeout": self.config.connection.connect_timeout_s}

    def prepare_source_connection(self, dbapi_connection: Any, _record: Any = None) -> None:
        # SQLite stores any bytes as TEXT; text that is not UTF-8 would fail the whole read:
        # it is read as a marker instead, and that row goes to the DLQ
        dbapi_connection.text_factory = decode_utf8

    def position_value(self, expr: Any, value: Any) -> Any:
        # a text key that is not UTF-8 is kept as its bytes; SQLite compares text bytewise,
        # and CAST(bytes AS TEXT) is that text again, bytes unchanged
        if isinstance(value, bytes) and isinstance(getattr(expr, "type", None), sa.String):
            return sa.cast(sa.literal(value, sa.LargeBinary()), sa.Text())
        return value

    def order_expression(self, column: sa.Column[Any]) -> Any:
        # dates, timestamps and decimals are stored as text or real: compare stored values
        if isinstance(column.type, sa.Date | sa.DateTime | sa.Time | sa.Numeric):
            return sa.type_coerce(column, sa.types.NullType())
        return column

    def is_row_error(self, exc: BaseException) -> bool:
        # constraint failures and datatype mismatches (IntegrityError), too big (DataError)
        name = getattr(_orig(exc), "sqlite_errorname", None)
        if name:
            return name.startswith("SQLITE_CONSTRAINT") or name in (
                "SQLITE_MISMATCH",
                "SQLITE_TOOBIG",
            )
        return super().is_row_error(exc)

    def is_transient(self, exc: BaseException) -> bool:
        if getattr(exc, "connection_invalidated", False):
            return True
        orig = _orig(exc)
        name = getattr(orig, "sqlite_errorname", None) or ""
        if name.startswith(_SQLITE_TRANSIENT):
            return True
        text = str(orig).lower()
        return "locked" in text or "unable to open" in text or "disk i/o" in text

    def error_code(self, exc: BaseException) -> str | None:
        return getattr(_orig(exc), "sqlite_errorname", None)

    error_meanings: ClassVar[dict[str, str]] = {
        "SQLITE_READONLY": "the database file is read-only",
        "SQLITE_ERROR": "the statement does not fit the table (a dropped column or table?)",
        "SQLITE_CONSTRAINT_NOTNULL": "a NOT NULL column got NULL",
        "SQLITE_CONSTRAINT_PRIMARYKEY": "duplicate key",
        "SQLITE_CONSTRAINT_UNIQUE": "duplicate key",
        "SQLITE_CONSTRAINT_CHECK": "check constraint violation",
        "SQLITE_CONSTRAINT_FOREIGNKEY": "foreign key violation",
        "SQLITE_MISMATCH": "datatype mismatch",
    }
