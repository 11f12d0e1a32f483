"""The SQL connector (SQLAlchemy 2): snapshot and incremental sources, upserting sinks.

Source: reflection gives the columns, key and an Avro record schema; when the table's dataset
is in the catalogue, the stream publishes the catalogue's record schema instead and each row
is converted to it (``connectors.sql.contract``; a row that does not fit comes back in
``Batch.invalid`` for the DLQ). ``snapshot`` reads the
table in primary-key order (op ``r``); ``incremental`` reads rows after the last position in
(cursor, primary key) order, so that rows sharing a cursor value are never skipped. A
soft-delete column turns a row into op ``d``. Rows are streamed (server-side cursor,
``yield_per``); each batch carries the position after it, which the caller commits only once
the broker has acknowledged the batch.

Sink: upsert by primary key with the dialect's native statement, in one transaction per
batch. Every row keeps the version it came from (``_lgsp_ts_ms``, ``_lgsp_event_id``), and an
update applies only when the incoming version is not older, so replays and late arrivals
leave the newest row. Identifiers always go through SQLAlchemy's quoting.
"""

from __future__ import annotations

import base64
import difflib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import ArgumentError, NoSuchTableError, SQLAlchemyError

from bus.envelope import canonical_key, to_jsonable
from bus.errors import DataError, LgspError, NotFoundError
from bus.text import NotUtf8
from connectors import positions
from connectors.base import (
    Batch,
    Column,
    Connector,
    Invalid,
    Stream,
    WriteReport,
    event_id_for,
    key_json,
    now_ms,
)
from connectors.contract import DatasetContract
from connectors.errors import (
    AuthenticationError,
    ColumnNotFoundError,
    ConnectorConfigError,
    ConnectorUnavailableError,
    CursorTypeError,
    MissingPrimaryKeyError,
    TableNotFoundError,
    UnsupportedTypeError,
)
from connectors.secrets import mask_url, resolve
from connectors.soft_delete import is_deleted
from connectors.sql.config import SqlConnectorConfig, SqlTable
from connectors.sql.contract import TableContract, conform
from connectors.sql.lookback import Window, cursor_floor
from connectors.sql.sink import (
    SinkTable,
    check_exact_text,
    on_conflict_update,
    prepare_sink,
    write_batch,
)
from connectors.sql.types import (
    SQL_LENGTH,
    SQL_NAME,
    AvroMapping,
    avro_for,
    field_names,
    record_name,
    split_table,
    ts_ms,
)

log = logging.getLogger(__name__)


def keyset_after(columns: list[Any], values: list[Any]) -> sa.ColumnElement[bool]:
    """Rows strictly after ``values`` in the order of ``columns`` (expanded, index friendly)."""
    clauses = []
    for i in range(len(columns)):
        equal = [columns[j] == values[j] for j in range(i)]
        clauses.append(sa.and_(*equal, columns[i] > values[i]))
    return sa.or_(*clauses)


class SqlConnector(Connector):
    """Base of the dialect classes; they set the URL backends, driver and a few hooks."""

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
        self._tables: dict[str, sa.Table] = {}
        self._sinks: dict[str, SinkTable] = {}

    # ---- dialect hooks -------------------------------------------------------------------
    def get_sqlalchemy_url(self) -> URL:
        """The resolved URL (secrets substituted), with the default driver when none is set."""
        raw = resolve(self.config.connection.url.get_secret_value(), "connection.url")
        try:
            url = sa.engine.make_url(raw)
        except ArgumentError as exc:
            raise ConnectorConfigError(
                ["connection.url: not a SQLAlchemy URL (dialect://user@host:port/database)"],
                name=self.name,
            ) from exc
        backend = url.get_backend_name()
        if backend not in self.backends:
            raise ConnectorConfigError(
                [
                    f"connection.url: type {self.config.type!r} expects a "
                    f"{' or '.join(self.backends)} URL, got {backend!r}"
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
        return {"pool_pre_ping": True}

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
                    [f"connection.url: cannot use {self.display_url} ({type(exc).__name__})"],
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

    def _connect(self) -> Connection:
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise self.connection_error(exc) from exc

    # ---- check and discover --------------------------------------------------------------
    def check(self) -> None:
        started = time.monotonic()
        with self._connect() as conn:
            try:
                conn.execute(sa.select(sa.literal(1))).scalar()
            except SQLAlchemyError as exc:
                raise self.connection_error(exc) from exc
        log.debug("%s: connected in %.2f s", self.name, time.monotonic() - started)

    def discover(self) -> list[Stream]:
        streams: list[Stream] = []
        problems: list[str] = []
        causes: list[LgspError] = []
        with self._connect() as conn:
            for i, t in enumerate(self.config.tables):
                try:
                    streams.append(self._discover(conn, t))
                except LgspError as exc:
                    problems.append(f"tables[{i}] ({t.table}): {exc}")
                    causes.append(exc)
        if problems:
            raise ConnectorConfigError(problems, name=self.name, causes=causes)
        return streams

    def discover_stream(self, table: str) -> Stream:
        cfg = self.table_config(table)
        with self._connect() as conn:
            return self._discover(conn, cfg)  # type: ignore[arg-type]

    def _reflect(self, conn: Connection, cfg: SqlTable) -> sa.Table | None:
        schema, name = split_table(cfg.table)
        try:
            return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
        except NoSuchTableError:
            return None

    def _missing_table(self, conn: Connection, cfg: SqlTable) -> TableNotFoundError:
        schema, name = split_table(cfg.table)
        try:
            known = sa.inspect(conn).get_table_names(schema=schema)
        except SQLAlchemyError:
            known = []
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        where = f" in schema {schema!r}" if schema else ""
        return TableNotFoundError(f"table {cfg.table!r} does not exist{where}{hint}")

    def _discover(self, conn: Connection, cfg: SqlTable) -> Stream:
        table = self._reflect(conn, cfg)
        if self.role == "sink":
            return self._discover_sink(conn, cfg, table)
        if table is None:
            raise self._missing_table(conn, cfg)
        self._tables[cfg.table] = table
        return self._source_stream(cfg, table)

    def _column(self, table: sa.Table, name: str, what: str) -> sa.Column[Any]:
        if name not in table.c:
            names = [c.name for c in table.columns]
            close = difflib.get_close_matches(name, names, n=3)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ColumnNotFoundError(
                f"{what}: column {name!r} does not exist in table {table.name!r}{hint}"
            )
        return table.c[name]

    def _source_stream(self, cfg: SqlTable, table: sa.Table) -> Stream:
        contract = self.datasets(cfg.dataset) if self.datasets is not None else None
        if contract is not None:
            return self._contract_stream(cfg, table, contract)
        warnings: list[str] = []
        selected = self._selected(cfg, table)
        key = self._source_key(cfg, table)
        missing_key = [k for k in key if k not in {c.name for c in selected}]
        if missing_key:
            raise ColumnNotFoundError(f"columns: must include the key column {missing_key[0]!r}")
        mappings: dict[str, AvroMapping] = {}
        for col in selected:
            mapping = self.avro_mapping(col.type)
            if mapping is None:
                raise UnsupportedTypeError(
                    f"column {col.name!r} has type {col.type!r}, which has no Avro form here; "
                    "leave it out with 'columns:'"
                )
            mappings[col.name] = mapping
        self._check_cursor(cfg, table, warnings)
        if not key:
            warnings.append(
                f"table {cfg.table!r} has no primary key: read as an append-only source "
                "(events carry an empty key; a sink cannot upsert them)"
            )
        names = field_names([c.name for c in selected])
        columns = [
            Column(
                name=c.name,
                field=names[c.name],
                sql_type=str(c.type.compile(dialect=self.engine.dialect)),
                avro_type=mappings[c.name].avro,
                nullable=bool(c.nullable) and c.name not in key,
                primary_key=c.name in key,
            )
            for c in selected
        ]
        schema = self._record_schema(cfg, columns, mappings, key, names)
        return Stream(cfg.table, cfg.dataset, columns, key, schema, cfg, warnings)

    def _selected(self, cfg: SqlTable, table: sa.Table) -> list[sa.Column[Any]]:
        """The columns ``columns:`` names (each checked), or all of the table's."""
        if cfg.columns:
            return [self._column(table, c, "columns") for c in cfg.columns]
        return list(table.columns)

    def _source_key(self, cfg: SqlTable, table: sa.Table) -> list[str]:
        if cfg.key:
            return [self._column(table, k, "key").name for k in cfg.key]
        return [c.name for c in table.primary_key.columns]

    def _check_cursor(self, cfg: SqlTable, table: sa.Table, warnings: list[str]) -> None:
        if cfg.cursor:
            cursor = self._column(table, cfg.cursor, "cursor")
            mapping = self.avro_mapping(cursor.type)
            if mapping is None or not mapping.orderable:
                raise CursorTypeError(
                    f"cursor: column {cursor.name!r} has type {cursor.type!r}, which cannot "
                    "order changes; expected an integer, decimal, date or timestamp column"
                )
            if cursor.nullable:
                warnings.append(
                    f"cursor column {cursor.name!r} allows NULL: rows whose cursor is NULL "
                    "are not read incrementally"
                )
            self._check_lookback(cfg, cursor, mapping, warnings)
        if cfg.deleted_flag:
            self._column(table, cfg.deleted_flag, "deleted_flag")

    @staticmethod
    def _is_time(mapping: AvroMapping | None) -> bool:
        avro = mapping.avro if mapping is not None else None
        return isinstance(avro, dict) and avro.get("logicalType") in _TIME_CURSORS

    def lookback_s(self, cfg: SqlTable, cursor: sa.Column[Any]) -> int:
        """The seconds an incremental read reaches back below the last cursor value: the
        table's ``lookback``, else the dialect's default; 0 for a numeric cursor."""
        if not self._is_time(self.avro_mapping(cursor.type)):
            return 0
        return self.default_lookback_s if cfg.lookback is None else cfg.lookback

    def _check_lookback(
        self, cfg: SqlTable, cursor: sa.Column[Any], mapping: AvroMapping, warnings: list[str]
    ) -> None:
        if not self._is_time(mapping):
            if cfg.lookback:
                raise CursorTypeError(
                    f"lookback: cursor column {cursor.name!r} is a number, and a lookback is a "
                    "time window: it needs a date or timestamp cursor (remove lookback, or use "
                    "a timestamp cursor)"
                )
            warnings.append(
                f"cursor column {cursor.name!r} is a number: a row given a lower value than "
                "one already read (a sequence value taken by a transaction that commits later) "
                "is never read; schedule a reconciliation with repair to catch it"
            )
        elif self.lookback_s(cfg, cursor) == 0 and _whole_seconds(cursor.type):
            warnings.append(
                f"cursor column {cursor.name!r} holds whole seconds (or days) and lookback is 0: "
                "a row committed later with the same value and a lower key is never read"
            )

    def _contract_stream(self, cfg: SqlTable, table: sa.Table, dataset: DatasetContract) -> Stream:
        """A stream publishing the catalogued dataset's record schema (checked, planned)."""
        candidates = self._selected(cfg, table)
        key = self._source_key(cfg, table)
        warnings: list[str] = []
        self._check_cursor(cfg, table, warnings)
        plan = conform(
            cfg,
            table,
            candidates,
            key,
            dataset,
            mapping=self.avro_mapping,
            dialect=self.engine.dialect,
        )
        if dataset.units and self.config.unit not in dataset.units:
            warnings.append(
                f"unit {self.config.unit} is not one of dataset {dataset.name}'s publishing "
                f"units ({', '.join(dataset.units)})"
            )
        warnings.extend(plan.warnings)
        return Stream(
            cfg.table,
            cfg.dataset,
            plan.columns,
            key,
            dataset.record_schema,
            cfg,
            warnings,
            contract=plan,
        )

    def _record_schema(
        self,
        cfg: SqlTable,
        columns: list[Column],
        mappings: dict[str, AvroMapping],
        key: list[str],
        names: dict[str, str],
    ) -> dict[str, Any]:
        namespace, name = record_name(cfg.dataset)
        fields = []
        for col in columns:
            field: dict[str, Any] = {"name": col.field}
            if col.nullable:
                field["type"] = ["null", col.avro_type]
                field["default"] = None
            else:
                field["type"] = col.avro_type
            if col.field != col.name:
                field[SQL_NAME] = col.name
            length = mappings[col.name].length
            if length:
                field[SQL_LENGTH] = length
            fields.append(field)
        record: dict[str, Any] = {
            "type": "record",
            "name": name,
            "namespace": namespace,
            "fields": fields,
        }
        if key:
            record["primary_key"] = [names[k] for k in key]
        return record

    # ---- source --------------------------------------------------------------------------
    def _source_table(self, stream: Stream) -> sa.Table:
        table = self._tables.get(stream.name)
        if table is None:
            with self._connect() as conn:
                table = self._reflect(conn, stream.config)  # type: ignore[arg-type]
                if table is None:
                    raise self._missing_table(conn, stream.config)  # type: ignore[arg-type]
            self._tables[stream.name] = table
        return table

    def read_stream(self, stream: Stream, position: dict[str, Any] | None) -> Iterator[Batch]:
        cfg: SqlTable = stream.config  # type: ignore[assignment]
        table = self._source_table(stream)
        mode = cfg.effective_mode
        cursor_name = cfg.cursor
        key = list(stream.primary_key)
        order_names = ([cursor_name] if mode == "incremental" and cursor_name else []) + key
        if mode == "incremental" and not cursor_name:  # pragma: no cover - config prevents it
            raise ConnectorConfigError([f"{stream.name}: cursor required"])

        plan: TableContract | None = stream.contract
        record_cols = [table.c[c.name] for c in stream.columns]
        if plan is not None:  # the cursor and soft-delete columns, read but not published
            record_cols += [table.c[name] for name in plan.hidden]
        index = {c.name: i for i, c in enumerate(record_cols)}
        selected: list[Any] = list(record_cols)
        order_idx: list[int] = []
        order_exprs: list[Any] = []
        for name in order_names:
            expr = self.order_expression(table.c[name])
            order_exprs.append(expr)
            if expr is table.c[name]:
                order_idx.append(index[name])
            else:
                order_idx.append(len(selected))
                selected.append(expr.label(f"_lgsp_k{len(order_idx)}"))

        state = self._start_state(mode, position)
        query = sa.select(*selected)
        if order_exprs:
            query = query.order_by(*order_exprs)
        lookback = self.lookback_s(cfg, table.c[cursor_name]) if cursor_name else 0
        window = Window(lookback, state.get("seen")) if mode == "incremental" and lookback else None
        if window is None:
            state.pop("seen", None)
        after = state.get("after")
        last = positions.load(after) if after is not None else None
        if last is not None and order_exprs:
            if window is not None:  # re-read the window; ``Window`` drops what was published
                try:
                    floor = cursor_floor(last[0], lookback)
                except ValueError as exc:
                    raise CursorTypeError(
                        f"lookback: {stream.name}: {exc}; set lookback: 0"
                    ) from exc
                query = query.where(order_exprs[0] >= floor)
            else:
                resume = [
                    self.position_value(expr, value)
                    for expr, value in zip(order_exprs, last, strict=True)
                ]
                query = query.where(keyset_after(order_exprs, resume))
        if mode == "incremental":
            query = query.where(table.c[cursor_name].is_not(None))

        converters = [
            (c.field, i, self.avro_mapping(table.c[c.name].type, key=c.primary_key).convert)  # type: ignore[union-attr]
            for i, c in enumerate(stream.columns)
            if plan is None  # a catalogued dataset's fields convert through the plan
        ]
        by_column = {c.name: c.field for c in stream.columns}
        key_idx = [(by_column[k], index[k]) for k in key]
        deleted_idx = index.get(cfg.deleted_flag) if cfg.deleted_flag else None
        cursor_idx = index[cursor_name] if cursor_name else None
        cursor_convert = (
            self.avro_mapping(table.c[cursor_name].type).convert  # type: ignore[union-attr]
            if cursor_name
            else None
        )
        ctx = _ReadContext(
            stream=stream,
            source=self.source_block(stream),
            id_prefix=f"{self.name}\x1f{stream.name}",
            mode=mode,
            initial=state.get("after") is None and mode == "incremental",
            converters=converters,
            key_idx=key_idx,
            deleted_idx=deleted_idx,
            cursor_idx=cursor_idx,
            cursor_convert=cursor_convert,
            snapshot_ms=state.get("snapshot_ms"),
            plan=plan,
            items=plan.items(index) if plan is not None else None,
            window=window,
            last=last,
        )
        cut_on_change = not key and mode == "incremental"
        batch_size = self.batch_size
        with self._connect() as conn:
            try:
                result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
                    query
                )
            except SQLAlchemyError as exc:
                raise self._read_error(exc, stream) from exc
            try:
                pending: list[Any] = []
                seen: tuple[int, bytes, bytes] | None = None
                width = len(stream.columns)
                for row in result:
                    if window is not None:  # a lookback: skip what was published before
                        seen = _window_key(window, row, order_idx, ctx.deleted_idx, width)
                        if window.published(*seen):
                            continue
                    if len(pending) >= batch_size and (
                        not cut_on_change or row[order_idx[0]] != pending[-1][order_idx[0]]
                    ):
                        yield self._batch(ctx, pending, order_idx, state, done=False)
                        pending = []
                    if seen is not None:  # only now: the batch before does not hold it
                        window.add(*seen)  # type: ignore[union-attr]
                    pending.append(row)
                if pending or mode == "snapshot":
                    yield self._batch(ctx, pending, order_idx, state, done=True)
            except SQLAlchemyError as exc:
                raise self._read_error(exc, stream) from exc
            finally:
                result.close()

    def _read_error(self, exc: SQLAlchemyError, stream: Stream) -> LgspError:
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            return self.connection_error(exc)
        return ConnectorConfigError(
            [f"tables: reading {stream.name!r} failed ({type(exc).__name__})"], name=self.name
        )

    @staticmethod
    def _start_state(mode: str, position: dict[str, Any] | None) -> dict[str, Any]:
        if position and position.get("mode") == mode:
            if mode == "incremental":
                return dict(position)
            if not position.get("done"):
                return dict(position)
        if mode == "snapshot":
            return {"mode": "snapshot", "snapshot_ms": now_ms(), "after": None, "done": False}
        return {"mode": "incremental", "after": None}

    def _batch(
        self,
        ctx: _ReadContext,
        rows: list[Any],
        order_idx: list[int],
        state: dict[str, Any],
        *,
        done: bool,
    ) -> Batch:
        if rows and order_idx:
            values = [rows[-1][i] for i in order_idx]
            # with a lookback, rows at or below the last position are read again: the
            # position only moves forward (the window's floor depends on the cursor alone)
            if ctx.window is None or ctx.last is None or values[0] >= ctx.last[0]:
                state["after"] = positions.dump([_resumable(v) for v in values])
                ctx.last = values
        if ctx.window is not None and ctx.last is not None:  # moves with the position
            state["seen"] = ctx.window.dump(ctx.last[0])
        events, invalid = self._events(ctx, rows)
        if ctx.mode == "snapshot":
            state["done"] = done
            state["rows"] = int(state.get("rows", 0)) + len(rows)
        new_state = dict(state)
        return Batch(ctx.stream.name, events, new_state, ctx.stream.record_schema, invalid)

    def _events(
        self, ctx: _ReadContext, rows: list[Any]
    ) -> tuple[list[dict[str, Any]], list[Invalid]]:
        """Change events of ``rows``, and the rows that do not fit the dataset's schema (the
        hot loop of a read: kept flat on purpose)."""
        out = []
        invalid: list[Invalid] = []
        converters = ctx.converters
        key_fields = [f for f, _ in ctx.key_idx]
        deleted_idx = ctx.deleted_idx
        cursor_idx = ctx.cursor_idx
        cursor_convert = ctx.cursor_convert
        snapshot = ctx.mode == "snapshot"
        base_op = "r" if snapshot or ctx.initial else "u"
        prefix = ctx.id_prefix
        source_base = ctx.source
        plan, items = ctx.plan, ctx.items
        for row in rows:
            error: DataError | None = None
            if plan is not None and items is not None:
                try:
                    record = plan.record(items, row)
                except DataError as exc:
                    error = exc
                    record = {f: _dead_letter_value(v) for f, v in plan.raw(items, row).items()}
            else:
                record = {}
                field = ""
                try:
                    for field, i, convert in converters:
                        value = row[i]
                        record[field] = (
                            value if value is None or convert is None else convert(value)
                        )
                except Exception as exc:  # a value the record schema cannot represent
                    error = _unrepresentable(ctx, field, exc)
                    record = {f: _dead_letter_value(row[i]) for f, i, _ in converters}
            if key_fields:
                identity = key_json({f: record[f] for f in key_fields})
            else:
                identity = canonical_key(record)
            op = "d" if deleted_idx is not None and is_deleted(row[deleted_idx]) else base_op
            position = None
            stamp = None
            if cursor_idx is not None:
                cursor = row[cursor_idx]
                if cursor is not None:
                    if cursor != ctx.last_cursor or ctx.last_text is None:
                        ctx.last_cursor = cursor
                        value = cursor if cursor_convert is None else cursor_convert(cursor)
                        ctx.last_text = str(to_jsonable(value))
                        ctx.last_stamp = ts_ms(value)
                    position, stamp = ctx.last_text, ctx.last_stamp
            if snapshot:
                version = ctx.snapshot_text
                ts = stamp if stamp is not None else ctx.snapshot_ms
            else:
                version = position or ""
                ts = stamp if stamp is not None else ctx.read_ms
            source = dict(source_base)
            source["position"] = position
            deleted = op == "d"
            event = {
                "event_id": event_id_for(prefix, identity, op, version),
                "op": op,
                "ts_ms": ts,
                "source": source,
                "key": identity if key_fields else "{}",
                "before": record if deleted else None,
                "after": None if deleted else record,
            }
            if error is None:
                out.append(event)
            else:
                invalid.append(Invalid(event, error))
        return out, invalid

    # ---- sink ----------------------------------------------------------------------------
    def _discover_sink(self, conn: Connection, cfg: SqlTable, table: sa.Table | None) -> Stream:
        if table is None:
            if not cfg.create:
                raise self._missing_table(conn, cfg)
            warning = f"table {cfg.table!r} does not exist yet: the first run creates it"
            key = list(cfg.key or [])
            return Stream(cfg.table, cfg.dataset, [], key, {}, cfg, [warning], False)
        key = list(cfg.key or [c.name for c in table.primary_key.columns])
        if not key:
            raise MissingPrimaryKeyError(
                f"table {cfg.table!r} has no primary key: a sink upserts by primary key; "
                "add one or name the key columns with 'key:'"
            )
        for k in key:
            self._column(table, k, "key")
        check_exact_text(conn, table, key, created=False)
        columns = [
            Column(
                c.name,
                c.name,
                str(c.type.compile(dialect=conn.dialect)),
                None,
                bool(c.nullable),
                c.name in key,
            )
            for c in table.columns
        ]
        return Stream(cfg.table, cfg.dataset, columns, key, {}, cfg, [], True)

    def plan_sink(self, table: str, record_schema: dict[str, Any]) -> list[str]:
        """What the first write will do to the target table (nothing is changed)."""
        cfg: SqlTable = self.table_config(table)  # type: ignore[assignment]
        return prepare_sink(self, cfg, record_schema, dry_run=True).actions

    def prepare(
        self, table: str, record_schema: dict[str, Any], *, existing: bool = False
    ) -> SinkTable:
        """Create or extend the target table for ``record_schema`` (idempotent, cached).
        ``existing``: the sink has prepared it before (a run committed offsets for it), so a
        missing table is an error, never created again empty."""
        sink = self._sinks.get(table)
        if sink is None or sink.schema_fields != _field_names(record_schema):
            cfg: SqlTable = self.table_config(table)  # type: ignore[assignment]
            existing = existing or sink is not None
            sink = prepare_sink(self, cfg, record_schema, dry_run=False, existing=existing)
            self._sinks[table] = sink
        return sink

    def write(self, batch: Batch) -> WriteReport:
        if self.role != "sink":
            raise ConnectorConfigError([f"role: connector {self.name!r} is not a sink"])
        sink = self._sinks.get(batch.stream)
        if batch.schema is not None:
            sink = self.prepare(batch.stream, batch.schema)
        if sink is None:
            raise ConnectorConfigError(
                [f"tables: {batch.stream!r} has no record schema yet (pass Batch.schema)"]
            )
        return write_batch(self, sink, batch.events)


class _ReadContext:
    """Per-read constants of ``read_stream`` (and the last cursor value's rendering)."""

    def __init__(
        self,
        *,
        stream: Stream,
        source: dict[str, Any],
        id_prefix: str,
        mode: str,
        initial: bool,
        converters: list[tuple[str, int, Any]],
        key_idx: list[tuple[str, int]],
        deleted_idx: int | None,
        cursor_idx: int | None,
        cursor_convert: Any,
        snapshot_ms: int | None,
        plan: TableContract | None = None,
        items: list[tuple[str, int, Any]] | None = None,
        window: Window | None = None,
        last: list[Any] | None = None,
    ) -> None:
        self.stream = stream
        self.source = source
        self.id_prefix = id_prefix
        self.mode = mode
        self.initial = initial
        self.converters = converters
        self.key_idx = key_idx
        self.deleted_idx = deleted_idx
        self.cursor_idx = cursor_idx
        self.cursor_convert = cursor_convert
        self.plan = plan
        self.items = items
        self.window = window
        self.last = last  # the position's order values (cursor first), as they move
        self.snapshot_ms = int(snapshot_ms or 0)
        self.snapshot_text = str(self.snapshot_ms)
        self.read_ms = now_ms()
        self.last_cursor: Any = None
        self.last_text: str | None = None
        self.last_stamp: int | None = None


def _unrepresentable(ctx: _ReadContext, field: str, exc: Exception) -> DataError:
    """The reason a row's value has no form in its record schema: table and column, the
    converter's own words when it gave some, else the error class (never the value)."""
    column = next((c.name for c in ctx.stream.columns if c.field == field), field)
    reason = str(exc) if isinstance(exc, DataError) else type(exc).__name__
    return DataError(f"table {ctx.stream.name!r}, column {column!r}: {reason}")


_TIME_CURSORS = frozenset({"timestamp-millis", "local-timestamp-millis", "date"})
_TIME_CURSORS |= {"timestamp-micros", "local-timestamp-micros"}


def _window_key(
    window: Window, row: Any, order_idx: list[int], deleted_idx: int | None, width: int
) -> tuple[int, bytes, bytes]:
    """A row's place in the lookback window: its cursor value, its key (None for a table
    without a key: ``Window`` then tells equal rows apart by their count) and its whole
    published state with the soft-delete flag."""
    values = [row[i] for i in range(width)]
    key = [row[i] for i in order_idx[1:]] or None
    deleted = deleted_idx is not None and is_deleted(row[deleted_idx])
    return window.key(row[order_idx[0]], key, values, deleted)


def _whole_seconds(sql_type: Any) -> bool:
    """A MySQL/MariaDB ``DATETIME``/``TIMESTAMP`` without fractional seconds, or a date."""
    if isinstance(sql_type, sa.Date) and not isinstance(sql_type, sa.DateTime):
        return True
    return isinstance(sql_type, mysql.DATETIME | mysql.TIMESTAMP) and not sql_type.fsp


def _resumable(value: Any) -> Any:
    """An order value as a keyset position: text that is not UTF-8 as its stored bytes (see
    ``position_value``), so that the next read resumes right after that row."""
    return value.raw if type(value) is NotUtf8 else value


def _dead_letter_value(value: Any) -> Any:
    """A row value for a dead letter's JSON (as ``dumps`` renders it; other types as text;
    text that is not UTF-8 as its bytes in base64, never altered)."""
    if type(value) is NotUtf8:
        return {"$not_utf8": base64.b64encode(value.raw).decode("ascii")}
    plain = to_jsonable(value)
    if plain is None or isinstance(plain, str | int | float | bool | list | dict):
        return plain
    return str(plain)


def _field_names(record_schema: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f["name"] for f in record_schema.get("fields", []))


def sqlite_path(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)
