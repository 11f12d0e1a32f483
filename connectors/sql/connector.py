"""The SQL connector types' shared surface (SQLAlchemy 2): connection, dialect hooks, reflection.

Reading (``connectors.sql.source``) and writing (``connectors.sql.sink``) are separate pieces
built on this class's public methods; ``connectors.sql.dialects`` puts them together per
database, each dialect setting its class flags and overriding its hooks. Identifiers always go
through SQLAlchemy's quoting, and the engine never renders parameters into error texts.
"""

from __future__ import annotations

import difflib
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SQLAlchemyError

from bus.db.engine import pool_options
from bus.errors import LgspError, NotFoundError
from connectors.base import Connector, Stream
from connectors.errors import (
    AuthenticationError,
    ColumnNotFoundError,
    ConnectorConfigError,
    ConnectorUnavailableError,
    FieldError,
    TableNotFoundError,
)
from connectors.secrets import mask_url, resolve
from connectors.sql.config import SqlConnectorConfig, SqlTable
from connectors.sql.types import AvroMapping, avro_for, split_table
from connectors.sql.upsert import on_conflict_update

log = logging.getLogger(__name__)


class SqlConnector(Connector):
    """The shared surface of the SQL connector types: the dialect's hooks (overridden by the
    classes in ``connectors.sql.dialects``), the engine, connection errors, reflection and
    discovery. The source (``connectors.sql.source.SqlSource``) and the sink
    (``connectors.sql.sink.SqlSink``) are built on this surface only."""

    type_name = "sql"
    config_model = SqlConnectorConfig
    can_source = True
    can_sink = True
    supports_incremental = True
    supports_soft_delete = True
    supports_upsert = True
    streams_rows = True

    backends: ClassVar[tuple[str, ...]] = ()
    default_driver: ClassVar[str] = ""
    sqlite_types: ClassVar[bool] = False
    # the dialect's ``insert()`` with ``on_conflict_do_update`` (PostgreSQL, SQLite)
    on_conflict_insert: ClassVar[Any] = None
    # seconds an incremental read over a date/timestamp cursor reaches back by default
    # (a table's ``lookback`` overrides it; README "Limits of polling" says why these values)
    default_lookback_s: ClassVar[int] = 300

    config: SqlConnectorConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._engine: Engine | None = None
        self._url: URL | None = None

    # ---- dialect hooks -------------------------------------------------------------------
    def get_sqlalchemy_url(self) -> URL:
        """The resolved URL (secrets substituted), with the default driver when none is set."""
        raw = resolve(self.config.connection.url.get_secret_value(), "connection.url")
        try:
            url = sa.engine.make_url(raw)
        except ArgumentError as exc:
            raise ConnectorConfigError(
                [
                    FieldError(
                        "connection.url", "not a SQLAlchemy URL (dialect://user@host:port/database)"
                    )
                ],
                name=self.name,
            ) from exc
        backend = url.get_backend_name()
        if backend not in self.backends:
            raise ConnectorConfigError(
                [
                    FieldError(
                        "connection.url",
                        f"type {self.config.type!r} expects a "
                        f"{' or '.join(self.backends)} URL, got {backend!r}",
                    )
                ],
                name=self.name,
            )
        if "+" not in url.drivername and self.default_driver:
            url = url.set(drivername=f"{url.drivername}+{self.default_driver}")
        return url

    def connect_args(self) -> dict[str, Any]:
        return {}

    def prepare_source_connection(self, dbapi_connection: Any, _record: Any = None) -> None:
        """Set up a new driver connection of a source (how values the driver refuses to
        load are read, so that one such row is refused alone)."""

    def engine_options(self) -> dict[str, Any]:
        return pool_options(self.url.drivername)

    def avro_mapping(self, sql_type: Any, *, key: bool = False) -> AvroMapping | None:
        """How a column of ``sql_type`` travels; ``key``: a primary-key column (its text is
        carried byte-exactly)."""
        return avro_for(sql_type, sqlite=self.sqlite_types, key=key)

    def order_expression(self, column: sa.Column[Any]) -> Any:
        """The expression a keyset compares and stores (SQLite compares stored values)."""
        return column

    def position_value(self, expr: Any, value: Any) -> Any:
        """A stored keyset value as the parameter compared with ``expr`` (as it is, but for
        dialects that store text which is not UTF-8)."""
        return value

    def error_kind(self, exc: BaseException) -> str | None:
        """'auth', 'database' or 'unreachable' for a connection error, None when unsure."""
        return None

    def is_row_error(self, exc: BaseException) -> bool:
        """The database refused a row for its values (a constraint, a type, a range, a length),
        not the statement: only such a row may be parked in the DLQ."""
        return isinstance(exc, sa.exc.IntegrityError | sa.exc.DataError)

    def is_transient(self, exc: BaseException) -> bool:
        """The database is unreachable, restarting or busy: the same write may work later."""
        if getattr(exc, "connection_invalidated", False):
            return True
        return isinstance(exc, sa.exc.InterfaceError | sa.exc.OperationalError)

    def error_code(self, exc: BaseException) -> str | None:
        """The driver's code of an error (``SQLSTATE 42501``, ``MySQL 1142``), if any."""
        return None

    # what common codes mean, in words (the driver's own text may quote values)
    error_meanings: ClassVar[dict[str, str]] = {}

    def describe_error(self, exc: BaseException) -> str:
        """The error class, code and meaning; never the driver's text (it may hold values)."""
        orig = getattr(exc, "orig", None) or exc
        parts = [type(orig).__name__]
        code = self.error_code(exc)
        if code:
            parts.append(code)
            meaning = self.error_meanings.get(code)
            if meaning:
                parts.append(meaning)
        return ", ".join(parts)

    def upsert_statement(self, table: sa.Table, columns: list[str], key: list[str]) -> Any:
        """INSERT ... upsert by ``key``, updating ``columns`` only when the incoming version is
        not older (``INSERT ... ON CONFLICT DO UPDATE WHERE`` with the dialect's
        ``on_conflict_insert``; a dialect without it overrides this method)."""
        if self.on_conflict_insert is None:
            raise NotImplementedError(f"{type(self).__name__} has no upsert statement")
        return on_conflict_update(self.on_conflict_insert(table), table, columns, key)

    def bulk_upsert(self, table: sa.Table, columns: list[str], key: list[str]) -> Any:
        """A faster path for many rows with the same effect as ``upsert_statement`` (an object
        with ``write(conn, rows)``), or None where the dialect has none."""
        return None

    # ---- engine and errors ---------------------------------------------------------------
    @property
    def url(self) -> URL:
        if self._url is None:
            self._url = self.get_sqlalchemy_url()
        return self._url

    @property
    def display_url(self) -> str:
        return mask_url(self.url.render_as_string(hide_password=True))  # and query secrets

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            try:
                # hide_parameters always: an error's text must never carry row values (a
                # keyset read's parameters are primary keys, a sink batch holds personal data)
                options = {**self.engine_options(), "hide_parameters": True}
                self._engine = sa.create_engine(
                    self.url, connect_args=self.connect_args(), **options
                )
                if self.role == "source":
                    sa.event.listen(self._engine, "connect", self.prepare_source_connection)
            except (ArgumentError, ImportError) as exc:
                raise ConnectorConfigError(
                    [
                        FieldError(
                            "connection.url",
                            f"cannot use {self.display_url} ({type(exc).__name__})",
                        )
                    ],
                    name=self.name,
                ) from exc
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def connection_error(self, exc: SQLAlchemyError) -> LgspError:
        """A clear error for a failed connection, naming the host, never the password."""
        kind = self.error_kind(exc)
        url = self.url
        host = f"{url.host or 'localhost'}:{url.port}" if url.port else (url.host or "localhost")
        if kind == "auth":
            return AuthenticationError(
                f"connection.url: {host} refused the credentials of user {url.username!r}"
            )
        if kind == "database":
            return NotFoundError(
                f"connection.url: database {url.database!r} does not exist on {host}"
            )
        timeout = self.config.connection.connect_timeout_s
        return ConnectorUnavailableError(
            f"connection.url: cannot reach {host} within {timeout:g} s ({type(exc).__name__})"
        )

    def connect(self) -> Connection:
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise self.connection_error(exc) from exc

    # ---- check and discover --------------------------------------------------------------
    def check(self) -> None:
        started = time.monotonic()
        with self.connect() as conn:
            try:
                conn.execute(sa.select(sa.literal(1))).scalar()
            except SQLAlchemyError as exc:
                raise self.connection_error(exc) from exc
        log.debug("%s: connected in %.2f s", self.name, time.monotonic() - started)

    def discover(self) -> list[Stream]:
        streams: list[Stream] = []
        problems: list[FieldError] = []
        causes: list[LgspError] = []
        with self.connect() as conn:
            for i, t in enumerate(self.config.tables):
                try:
                    streams.append(self._discover(conn, t))
                except LgspError as exc:
                    problems.append(FieldError(f"tables[{i}]", f"({t.table}) {exc}"))
                    causes.append(exc)
        if problems:
            raise ConnectorConfigError(problems, name=self.name, causes=causes)
        return streams

    def discover_stream(self, table: str) -> Stream:
        cfg = self.table_config(table)
        with self.connect() as conn:
            return self._discover(conn, cfg)  # type: ignore[arg-type]

    def reflect(self, conn: Connection, table: str) -> sa.Table | None:
        """The table named ``table`` (``schema.table`` or ``table``) as it is, None if absent."""
        schema, name = split_table(table)
        try:
            return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
        except NoSuchTableError:
            return None

    def missing_table(self, conn: Connection, table: str) -> TableNotFoundError:
        """The error for a table that is not there, with the names closest to it."""
        schema, name = split_table(table)
        try:
            known = sa.inspect(conn).get_table_names(schema=schema)
        except SQLAlchemyError:
            known = []
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        where = f" in schema {schema!r}" if schema else ""
        return TableNotFoundError(f"table {table!r} does not exist{where}{hint}")

    def _discover(self, conn: Connection, cfg: SqlTable) -> Stream:
        return self.discover_table(conn, cfg, self.reflect(conn, cfg.table))

    def discover_table(self, conn: Connection, cfg: SqlTable, table: sa.Table | None) -> Stream:
        """The stream of a configured table, reflected (None: it does not exist)."""
        raise NotImplementedError(f"{type(self).__name__} discovers no tables")

    def column(self, table: sa.Table, name: str, what: str) -> sa.Column[Any]:
        """The column ``name`` of ``table``; ``what`` names the setting in the error."""
        if name not in table.c:
            names = [c.name for c in table.columns]
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ColumnNotFoundError(
                f"{what}: column {name!r} does not exist in table {table.name!r}{hint}"
            )
        return table.c[name]


def sqlite_path(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
