"""The SQL source: streams of a table's rows as change events, snapshot or incremental.

Reflection gives the columns, key and an Avro record schema; when the table's dataset is in
the catalogue, the stream publishes the catalogue's record schema instead and each row is
converted to it (``connectors.sql.contract``; a row that does not fit comes back in
``Batch.invalid`` for the DLQ). ``snapshot`` reads the table in primary-key order (op ``r``);
``incremental`` reads rows after the last position in (cursor, primary key) order, so that rows
sharing a cursor value are never skipped. A soft-delete column turns a row into op ``d``. Rows
are streamed (server-side cursor, ``yield_per``); each batch carries the position after it,
which the caller commits only once the broker has acknowledged the batch.

``SqlSource`` uses its connector's public surface only (connection, reflection, the dialect's
type mapping and keyset hooks).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from bus.envelope import canonical_key, to_jsonable
from bus.errors import DataError, LgspError
from bus.text import NotUtf8
from connectors import positions
from connectors.base import Batch, Column, Invalid, Stream, event_id_for, key_json, now_ms
from connectors.contract import DatasetContract
from connectors.errors import (
    ColumnNotFoundError,
    ConnectorConfigError,
    CursorTypeError,
    FieldError,
    UnsupportedTypeError,
)
from connectors.soft_delete import is_deleted
from connectors.sql.config import SqlTable
from connectors.sql.connector import SqlConnector
from connectors.sql.contract import TableContract, conform
from connectors.sql.lookback import Window, cursor_floor
from connectors.sql.types import SQL_LENGTH, SQL_NAME, AvroMapping, field_names, record_name, ts_ms


def keyset_after(columns: list[Any], values: list[Any]) -> sa.ColumnElement[bool]:
    """Rows strictly after ``values`` in the order of ``columns`` (expanded, index friendly)."""
    clauses = []
    for i in range(len(columns)):
        equal = [columns[j] == values[j] for j in range(i)]
        clauses.append(sa.and_(*equal, columns[i] > values[i]))
    return sa.or_(*clauses)


class SqlSource:
    """The source side of a SQL connector: its streams (discovered) and their reads."""

    def __init__(self, connector: SqlConnector) -> None:
        self.connector = connector
        self._tables: dict[str, sa.Table] = {}
        self._log_contexts: dict[str, LogContext] = {}

    def stream(self, cfg: SqlTable, table: sa.Table) -> Stream:
        """The stream of a reflected source ``table`` (kept for its reads)."""
        self._tables[cfg.table] = table
        return self._source_stream(cfg, table)

    def _source_stream(self, cfg: SqlTable, table: sa.Table) -> Stream:
        contract = (
            self.connector.datasets(cfg.dataset) if self.connector.datasets is not None else None
        )
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
            mapping = self.connector.avro_mapping(col.type)
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
                sql_type=str(c.type.compile(dialect=self.connector.engine.dialect)),
                avro_type=mappings[c.name].avro,
                nullable=bool(c.nullable) and c.name not in key,
                primary_key=c.name in key,
            )
            for c in selected
        ]
        schema = self._record_schema(cfg, columns, mappings, key, names)
        return Stream(cfg.table, cfg.dataset, columns, key, schema, cfg, warnings)

    def _selected(self, cfg: SqlTable, table: sa.Table) -> list[sa.Column[Any]]:
        """The columns ``columns:`` names (each checked), or all of the table's but the
        reconciliation's stored row hashes (``lgsp reconcile prepare``): never published."""
        if cfg.columns:
            return [self.connector.column(table, c, "columns") for c in cfg.columns]
        from bus.reconcile.stored import COLUMNS as ROW_HASHES

        hidden = set(ROW_HASHES.values())
        return [c for c in table.columns if c.name not in hidden]

    def _source_key(self, cfg: SqlTable, table: sa.Table) -> list[str]:
        if cfg.key:
            return [self.connector.column(table, k, "key").name for k in cfg.key]
        return [c.name for c in table.primary_key.columns]

    def _check_cursor(self, cfg: SqlTable, table: sa.Table, warnings: list[str]) -> None:
        if cfg.cursor:
            cursor = self.connector.column(table, cfg.cursor, "cursor")
            mapping = self.connector.avro_mapping(cursor.type)
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
            self.connector.column(table, cfg.deleted_flag, "deleted_flag")

    @staticmethod
    def _is_time(mapping: AvroMapping | None) -> bool:
        avro = mapping.avro if mapping is not None else None
        return isinstance(avro, dict) and avro.get("logicalType") in _TIME_CURSORS

    def lookback_s(self, cfg: SqlTable, cursor: sa.Column[Any]) -> int:
        """The seconds an incremental read reaches back below the last cursor value: the
        table's ``lookback``, else the dialect's default; 0 for a numeric cursor."""
        if not self._is_time(self.connector.avro_mapping(cursor.type)):
            return 0
        return self.connector.default_lookback_s if cfg.lookback is None else cfg.lookback

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
            mapping=self.connector.avro_mapping,
            dialect=self.connector.engine.dialect,
        )
        if dataset.units and self.connector.config.unit not in dataset.units:
            warnings.append(
                f"unit {self.connector.config.unit} is not one of dataset {dataset.name}'s "
                f"publishing units ({', '.join(dataset.units)})"
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
            with self.connector.connect() as conn:
                table = self.connector.reflect(conn, stream.name)
                if table is None:
                    raise self.connector.missing_table(conn, stream.name)
            self._tables[stream.name] = table
        return table

    def log_context(self, stream: Stream) -> LogContext:
        """How a row read from the log (its values in ``names`` order) becomes an event: the
        converters a snapshot read uses (``connectors.sql.pglog``)."""
        cached = self._log_contexts.get(stream.name)
        if cached is not None:
            return cached
        table = self._source_table(stream)
        plan: TableContract | None = stream.contract
        names = [c.name for c in stream.columns] + (list(plan.hidden) if plan is not None else [])
        index = {name: i for i, name in enumerate(names)}
        ctx = self._context(stream, table, index, "log", {}, None, None)
        ctx.cursor_idx = None  # the log's position is the commit LSN, not a cursor
        context = LogContext(ctx, names)
        self._log_contexts[stream.name] = context
        return context

    def row_event(
        self, context: LogContext, row: tuple[Any, ...]
    ) -> tuple[dict[str, Any], Invalid | None]:
        """A row read from the log (``context.names`` order) as a read's event, and the
        ``Invalid`` when it does not fit the dataset's schema (the event is then its own)."""
        events, invalid = self._events(context.ctx, [row])
        bad = invalid[0] if invalid else None
        return (bad.event if bad is not None else events[0]), bad

    def log_event(
        self,
        context: LogContext,
        op: str,
        ts_ms: int,
        position: str,
        row: tuple[Any, ...],
        before_row: tuple[Any, ...] | None = None,
    ) -> tuple[dict[str, Any], Invalid | None]:
        """A change read from the log (``connectors.sql.pglog``, ``connectors.sql.mylog``) as
        an event: ``row`` is the row after it (before it, for a delete), ``before_row`` the
        whole row before it when the log carries one; ``position`` names the change in the
        log. The ``Invalid`` when the row does not fit the dataset's schema, else None."""
        event, bad = self.row_event(context, row)
        if op == "d" or event["op"] != "d":  # a soft-delete flag keeps its 'd'
            event["op"] = op
        event["ts_ms"] = ts_ms
        event["source"]["position"] = position
        before = None
        if before_row is not None and op != "c":
            old, old_bad = self.row_event(context, before_row)
            before = old["after"] if old_bad is None else None
        if event["op"] == "d":
            event["before"] = before if op == "d" else event["after"] or event["before"]
            event["after"] = None
        else:
            event["before"] = before
        event["event_id"] = event_id_for(context.ctx.id_prefix, event["key"], event["op"], position)
        return event, bad

    def _context(
        self,
        stream: Stream,
        table: sa.Table,
        index: dict[str, int],
        mode: str,
        state: dict[str, Any],
        window: Window | None,
        last: list[Any] | None,
    ) -> _ReadContext:
        cfg: SqlTable = stream.config  # type: ignore[assignment]
        plan: TableContract | None = stream.contract
        cursor_name = cfg.cursor
        converters = [
            (
                c.field,
                i,
                self.connector.avro_mapping(table.c[c.name].type, key=c.primary_key).convert,
            )  # type: ignore[union-attr]
            for i, c in enumerate(stream.columns)
            if plan is None  # a catalogued dataset's fields convert through the plan
        ]
        by_column = {c.name: c.field for c in stream.columns}
        key_idx = [(by_column[k], index[k]) for k in stream.primary_key]
        deleted_idx = index.get(cfg.deleted_flag) if cfg.deleted_flag else None
        cursor_idx = index[cursor_name] if cursor_name and cursor_name in index else None
        cursor_convert = (
            self.connector.avro_mapping(table.c[cursor_name].type).convert  # type: ignore[union-attr]
            if cursor_name
            else None
        )
        return _ReadContext(
            stream=stream,
            source=self.connector.source_block(stream),
            id_prefix=f"{self.connector.name}\x1f{stream.name}",
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

    def read_stream(
        self,
        stream: Stream,
        position: dict[str, Any] | None,
        *,
        prepare: Callable[[Connection], Connection] | None = None,
        mode: str | None = None,
    ) -> Iterator[Batch]:
        """The table's rows from ``position`` on, in batches; ``mode`` overrides the table's
        (a log table's first read is a snapshot) and ``prepare`` sets up the connection before
        the read (``SET TRANSACTION SNAPSHOT``)."""
        cfg: SqlTable = stream.config  # type: ignore[assignment]
        table = self._source_table(stream)
        mode = mode or cfg.effective_mode
        cursor_name = cfg.cursor
        key = list(stream.primary_key)
        order_names = ([cursor_name] if mode == "incremental" and cursor_name else []) + key
        if mode == "incremental" and not cursor_name:  # pragma: no cover - config prevents it
            raise ConnectorConfigError([FieldError("cursor", f"required for {stream.name!r}")])

        plan: TableContract | None = stream.contract
        record_cols = [table.c[c.name] for c in stream.columns]
        if plan is not None:  # the cursor and soft-delete columns, read but not published
            record_cols += [table.c[name] for name in plan.hidden]
        index = {c.name: i for i, c in enumerate(record_cols)}
        selected: list[Any] = list(record_cols)
        order_idx: list[int] = []
        order_exprs: list[Any] = []
        for name in order_names:
            expr = self.connector.order_expression(table.c[name])
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
                    self.connector.position_value(expr, value)
                    for expr, value in zip(order_exprs, last, strict=True)
                ]
                query = query.where(keyset_after(order_exprs, resume))
        if mode == "incremental":
            query = query.where(table.c[cursor_name].is_not(None))

        ctx = self._context(stream, table, index, mode, state, window, last)
        cut_on_change = not key and mode == "incremental"
        batch_size = self.connector.batch_size
        with self.connector.connect() as conn:
            if prepare is not None:
                conn = prepare(conn)
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
            return self.connector.connection_error(exc)
        return ConnectorConfigError(
            [FieldError("tables", f"reading {stream.name!r} failed ({type(exc).__name__})")],
            name=self.connector.name,
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


class LogContext:
    """A log table's read context and the column order of its rows."""

    def __init__(self, ctx: _ReadContext, names: list[str]) -> None:
        self.ctx = ctx
        self.names = names


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
