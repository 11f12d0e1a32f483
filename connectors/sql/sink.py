"""The SQL sink: target tables prepared from a record schema, versioned upserts and deletes.

Every target row carries ``_lgsp_ts_ms`` (the change time of the event that wrote it),
``_lgsp_event_id`` and ``_lgsp_deleted``. A write keeps the newest event per key within the
batch, then upserts with the dialect's native statement, updating a stored row only when the
incoming version is not older; a delete removes the row (``on_delete: delete``) or marks it
(``on_delete: mark``, a tombstone that also stops an older update arriving later). A batch
is one transaction; when the database refuses it for a row's values (a constraint, a type,
a range: the connector's ``is_row_error``), rows are retried one at a time so that only the
refused ones are reported (for the DLQ). Any other refusal (permission denied, a dropped
column, a read-only database) stops the table without reporting a row, so the topic is never
emptied into the DLQ; an unreachable database is retriable. An event that cannot be turned
into a row is reported alone.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from bus.errors import LgspError
from connectors.base import Batch, Column, Rejected, Stream, WriteReport
from connectors.errors import (
    ColumnNotFoundError,
    ConnectorConfigError,
    ConnectorUnavailableError,
    FieldError,
    KeyCollationError,
    MissingPrimaryKeyError,
    RowRejectedError,
    TableNotFoundError,
    TableStoppedError,
)
from connectors.sql import collation
from connectors.sql.config import SqlTable
from connectors.sql.connector import SqlConnector
from connectors.sql.typemap import MariaDbTypes, column_name, key_value, type_mapper
from connectors.sql.types import split_table
from connectors.sql.upsert import (
    DELETED,
    EVENT_ID,
    META,
    UNIT,
    VERSION,
    delete_statement,
    meta_columns,
)
from connectors.sql.values import Check, Problem, column_check

log = logging.getLogger(__name__)

ROWS_PER_STATEMENT = 1000
BULK_MIN_ROWS = 2  # from this many upserts on, a dialect's bulk path (if any) is used


@dataclass
class SinkTable:
    """A prepared target table and what a write needs to map events onto it."""

    table: sa.Table
    key_columns: list[str]
    key_fields: list[str]
    columns: dict[str, str]  # field -> column
    fields: dict[str, dict[str, Any]]
    converters: dict[str, Callable[[Any], Any] | None]
    checks: dict[str, Check]  # field -> what its column cannot store (connectors.sql.values)
    on_delete: str
    schema_fields: tuple[str, ...]
    actions: list[str] = field(default_factory=list)
    upsert: Any = None
    bulk: Any = None  # a dialect's bulk upsert (``write(conn, rows)``), or None
    delete: Any = None


class SqlSink:
    """The sink side of a SQL connector: target tables prepared for a record schema (kept
    per table) and batches written to them. It uses the connector's public surface only
    (connection, reflection, the dialect's upsert statements and error classification)."""

    def __init__(self, connector: SqlConnector) -> None:
        self.connector = connector
        self._tables: dict[str, SinkTable] = {}

    def _config(self, table: str) -> SqlTable:
        return self.connector.table_config(table)  # type: ignore[return-value]

    def stream(self, conn: sa.Connection, cfg: SqlTable, table: sa.Table | None) -> Stream:
        """The stream of a target ``table`` (None: not there yet, created by the first run
        when ``create`` allows)."""
        if table is None:
            if not cfg.create:
                raise self.connector.missing_table(conn, cfg.table)
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
            self.connector.column(table, k, "key")
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

    def plan(self, table: str, record_schema: dict[str, Any]) -> list[str]:
        """What the first write will do to the target table (nothing is changed)."""
        return self._prepare(self._config(table), record_schema, dry_run=True).actions

    def prepare(
        self, table: str, record_schema: dict[str, Any], *, existing: bool = False
    ) -> SinkTable:
        """Create or extend the target table for ``record_schema`` (idempotent, cached).
        ``existing``: the sink has prepared it before (a run committed offsets for it), so a
        missing table is an error, never created again empty."""
        sink = self._tables.get(table)
        if sink is None or sink.schema_fields != _field_names(record_schema):
            existing = existing or sink is not None
            sink = self._prepare(
                self._config(table), record_schema, dry_run=False, existing=existing
            )
            self._tables[table] = sink
        return sink

    def write(self, batch: Batch) -> WriteReport:
        if self.connector.role != "sink":
            raise ConnectorConfigError(
                [FieldError("role", f"connector {self.connector.name!r} is not a sink")]
            )
        sink = self._tables.get(batch.stream)
        if batch.schema is not None:
            sink = self.prepare(batch.stream, batch.schema)
        if sink is None:
            raise ConnectorConfigError(
                [
                    FieldError(
                        "tables", f"{batch.stream!r} has no record schema yet (pass Batch.schema)"
                    )
                ]
            )
        return self._write(sink, batch.events)

    def _prepare(
        self,
        cfg: SqlTable,
        record_schema: dict[str, Any],
        *,
        dry_run: bool,
        existing: bool = False,
    ) -> SinkTable:
        """Plan (``dry_run``) or make the target table ready for ``record_schema``. A table the
        sink wrote before (``existing``) that is gone stops the table: created again empty, it
        would silently lose every row written before."""
        connector = self.connector
        fields = {f["name"]: f for f in record_schema.get("fields", [])}
        columns = {name: column_name(f) for name, f in fields.items()}
        by_column = {c: n for n, c in columns.items()}
        schema, name = split_table(cfg.table)
        actions: list[str] = []
        engine = connector.engine
        try:
            with engine.begin() as conn:
                mapper = type_mapper(conn, record_schema)
                table = connector.reflect(conn, cfg.table)
                if table is None:
                    if existing:
                        raise TableStoppedError(
                            cfg.table,
                            "the target table is gone after the sink's first run (dropped or "
                            "renamed?); it is not created again empty, which would lose the rows "
                            "written before, and the offsets did not move: restore it and rerun, "
                            f"or start it empty on purpose with 'lgsp connector reset "
                            f"{connector.name} --table {cfg.table}'",
                        )
                    if not cfg.create:
                        raise connector.missing_table(conn, cfg.table)
                    key_columns = list(cfg.key or [])
                    if not key_columns:
                        key_columns = [
                            columns.get(k, k) for k in record_schema.get("primary_key", [])
                        ]
                    if not key_columns:
                        raise MissingPrimaryKeyError(
                            f"table {cfg.table!r}: the dataset {cfg.dataset!r} declares no "
                            "primary key and 'key:' is not set; a sink upserts by primary key"
                        )
                    for k in key_columns:
                        if k not in by_column:
                            raise ColumnNotFoundError(
                                f"key: {k!r} is not a field of dataset {cfg.dataset!r}"
                            )
                    cols = mapper.columns(record_schema, key_columns, evolving=True)
                    meta = meta_columns(mapper.exact)
                    table = sa.Table(name, sa.MetaData(), *cols, *meta, schema=schema)
                    actions.append(f"create table {cfg.table!r} ({len(cols)} columns + 3 version)")
                    if not dry_run:
                        table.create(conn)
                        texts = [c.name for c in table.c if isinstance(c.type, sa.String)]
                        check_exact_text(conn, table, texts, created=True)
                        table = connector.reflect(
                            conn, cfg.table
                        )  # the types as the server made them
                        assert table is not None
                else:
                    key_columns = list(cfg.key or [c.name for c in table.primary_key.columns])
                    if not key_columns:
                        raise MissingPrimaryKeyError(
                            f"table {cfg.table!r} has no primary key: a sink upserts by primary key"
                        )
                    for k in key_columns:
                        if k not in by_column:
                            raise ColumnNotFoundError(
                                f"key: column {k!r} of {cfg.table!r} is not a field of dataset "
                                f"{cfg.dataset!r}"
                            )
                    check_exact_text(conn, table, key_columns, created=False)
                    new_cols = [
                        c
                        for c in [
                            mapper.column(f, key=False, evolving=True) for f in fields.values()
                        ]
                        + meta_columns(mapper.exact)
                        if c.name not in table.c
                    ]
                    if new_cols:
                        added = ", ".join(repr(c.name) for c in new_cols)
                        actions.append(f"add columns {added} to {cfg.table!r}")
                        if not dry_run:
                            _add_columns(conn, name, schema, new_cols)
                            table = connector.reflect(conn, cfg.table)
                            assert table is not None
        except SQLAlchemyError as exc:
            if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
                raise connector.connection_error(exc) from exc
            raise TableNotFoundError(
                f"table {cfg.table!r}: cannot prepare the sink table ({type(exc).__name__})"
            ) from exc
        key_fields = [by_column[k] for k in key_columns]
        sink = SinkTable(
            table=table,
            key_columns=key_columns,
            key_fields=key_fields,
            columns=columns,
            fields=fields,
            converters={n: mapper.converter(f) for n, f in fields.items()},
            checks=_checks(engine.dialect.name, table, columns),
            on_delete=cfg.on_delete,
            schema_fields=tuple(fields),
            actions=actions,
        )
        if not dry_run:
            data_columns = [columns[n] for n in fields] + list(META)
            sink.upsert = connector.upsert_statement(table, data_columns, key_columns)
            sink.bulk = connector.bulk_upsert(table, data_columns, key_columns)
            sink.delete = delete_statement(table, key_columns)
        return sink

    def _write(self, sink: SinkTable, events: list[dict[str, Any]]) -> WriteReport:
        """Apply ``events`` in one transaction; rows the database refuses for their values are
        isolated and reported. Any other refusal (permission, a dropped column, a read-only
        database) raises ``TableStoppedError``, an unreachable database
        ``ConnectorUnavailableError``: then nothing is reported as rejected, so nothing is
        parked and no offset moves."""
        connector = self.connector
        report = WriteReport()
        if not events:
            return report
        chosen = newest_per_key(events)
        report.superseded = len(events) - len(chosen)
        upserts, deletes, unusable = _split(sink, chosen)
        report.rejected.extend(unusable)
        engine = connector.engine
        try:
            with engine.begin() as conn:
                _apply(conn, sink, upserts, deletes)
            report.applied = len(upserts)
            report.deleted = len(deletes)
            return report
        except SQLAlchemyError as exc:
            if not connector.is_row_error(exc):
                raise _write_error(connector, sink, exc) from exc
        # one row at a time, each in its own transaction, to find the refused ones
        for kind, items in (("upsert", upserts), ("delete", deletes)):
            for i, item in items:
                try:
                    with engine.begin() as conn:
                        if kind == "upsert":
                            _apply(conn, sink, [(i, item)], [])
                        else:
                            _apply(conn, sink, [], [(i, item)])
                except SQLAlchemyError as exc:
                    if not connector.is_row_error(exc):
                        raise _write_error(connector, sink, exc) from exc
                    report.rejected.append(Rejected(i, _rejected(connector, sink, exc)))
                else:
                    if kind == "upsert":
                        report.applied += 1
                    else:
                        report.deleted += 1
        report.rejected.sort(key=lambda r: r.index)
        return report


def _field_names(record_schema: dict[str, Any]) -> tuple[str, ...]:
    return tuple(f["name"] for f in record_schema.get("fields", []))


def check_exact_text(
    conn: sa.Connection, table: sa.Table, columns: list[str], *, created: bool
) -> None:
    """Refuse ``columns`` of ``table`` whose collation makes distinct text equal (the key
    columns of an existing table; every text column of one just created, read back)."""
    if conn.dialect.name not in (*MariaDbTypes.dialects, "postgresql"):
        return
    found = collation.merging_columns(conn, table, columns)
    if not found:
        return
    column, coll = found[0]
    if conn.dialect.name == "postgresql":
        raise KeyCollationError(
            f"table {table.name!r}: key column {column!r} is {coll}, which treats keys that "
            f"differ only by {collation.merges(coll)} as equal, so distinct source keys would "
            f"merge into one row; make it byte-exact first, e.g. ALTER TABLE ... ALTER COLUMN "
            f'{column} TYPE text COLLATE "C"'
        )
    if created:
        raise KeyCollationError(
            f"table {table.name!r} was created but column {column!r} got collation {coll!r}, "
            f"not the byte-exact {collation.EXACT[0]!r} asked for; check the server's "
            "character set settings"
        )
    raise KeyCollationError(
        f"table {table.name!r}: key column {column!r} has collation {coll!r}, which treats "
        f"keys that differ only by {collation.merges(coll)} as equal, so distinct source keys "
        f"would merge into one row; make it byte-exact first, e.g. ALTER TABLE ... MODIFY "
        f"{column} VARCHAR(n) CHARACTER SET utf8mb4 COLLATE {collation.EXACT[0]}"
    )


def _checks(dialect: str, table: sa.Table, columns: dict[str, str]) -> dict[str, Check]:
    out: dict[str, Check] = {}
    for name, column in columns.items():
        if column in table.c and (check := column_check(dialect, table.c[column])) is not None:
            out[name] = check
    return out


def _add_columns(
    conn: sa.Connection, name: str, schema: str | None, cols: list[sa.Column[Any]]
) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    ops = Operations(MigrationContext.configure(conn))
    for col in cols:
        ops.add_column(name, col, schema=schema)


# ---- writing --------------------------------------------------------------------------------


class _FieldError(Exception):
    """A record field whose value cannot become a column value (the cause is chained), or
    that its column cannot store (``problem``)."""

    def __init__(self, field: str, problem: Problem | None = None) -> None:
        self.field = field
        self.problem = problem
        super().__init__(field)


def _checked(sink: SinkTable, name: str, value: Any) -> Any:
    check = sink.checks.get(name)
    if check is not None and value is not None:
        problem = check(value)
        if problem is not None:
            raise _FieldError(name, problem)
    return value


def _row(sink: SinkTable, event: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {}
    key = None
    name = "key"
    try:
        for name, f in sink.fields.items():
            if record is not None and name in record:
                value = record[name]
            elif name in sink.key_fields:
                if key is None:
                    key = json.loads(event["key"])
                value = key_value(f, key.get(name))
            else:
                value = f.get("default")
            convert = sink.converters[name]
            if convert is not None and value is not None:
                value = convert(value)
            row[sink.columns[name]] = _checked(sink, name, value)
        name = "ts_ms"
        row[VERSION] = int(event["ts_ms"])
    except _FieldError:
        raise
    except Exception as exc:
        raise _FieldError(name) from exc
    row[EVENT_ID] = str(event["event_id"])
    row[DELETED] = event["op"] == "d"
    row[UNIT] = str((event.get("source") or {}).get("unit") or "") or None
    return row


def _key_params(sink: SinkTable, event: dict[str, Any]) -> dict[str, Any]:
    record = event.get("before") or event.get("after")
    params: dict[str, Any] = {}
    key = None
    name = "key"
    try:
        for i, name in enumerate(sink.key_fields):
            if record is not None and name in record:
                value = record[name]
            else:
                if key is None:
                    key = json.loads(event["key"])
                value = key_value(sink.fields[name], key.get(name))
            convert = sink.converters[name]
            params[f"_lgsp_k{i}"] = _checked(
                sink, name, convert(value) if convert is not None and value is not None else value
            )
        name = "ts_ms"
        params["_lgsp_v"] = int(event["ts_ms"])
    except _FieldError:
        raise
    except Exception as exc:
        raise _FieldError(name) from exc
    return params


def newest_per_key(events: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """The newest event of every key in a batch (later wins among equal versions)."""
    newest: dict[str, tuple[int, int]] = {}
    for i, event in enumerate(events):
        key = event["key"]
        ts = int(event["ts_ms"])
        seen = newest.get(key)
        if seen is None or ts >= seen[0]:
            newest[key] = (ts, i)
    return sorted(((i, events[i]) for _, i in newest.values()), key=lambda p: p[0])


Item = tuple[int, dict[str, Any]]


def _split(sink: SinkTable, chosen: list[Item]) -> tuple[list[Item], list[Item], list[Rejected]]:
    """Rows to upsert, keys to delete, and the events that cannot become a row (for the DLQ:
    one bad record never stops the others)."""
    upserts: list[Item] = []
    deletes: list[Item] = []
    unusable: list[Rejected] = []
    for i, event in chosen:
        try:
            if event["op"] == "d":
                if sink.on_delete == "mark":
                    upserts.append((i, _row(sink, event, event.get("before"))))
                else:
                    deletes.append((i, _key_params(sink, event)))
            else:
                upserts.append((i, _row(sink, event, event.get("after"))))
        except _FieldError as exc:
            unusable.append(_unusable(sink, i, exc))
    return upserts, deletes, unusable


def _unusable(sink: SinkTable, index: int, exc: _FieldError) -> Rejected:
    if exc.problem is not None:
        column = sink.columns.get(exc.field, exc.field)
        return Rejected(
            index,
            RowRejectedError(
                f"sink table {sink.table.name!r}, column {column!r}: {exc.problem.text}"
            ),
            certain=exc.problem.certain,
        )
    cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "error"
    return Rejected(
        index,
        RowRejectedError(
            f"sink table {sink.table.name!r}: field {exc.field!r} of the event cannot "
            f"be written to its column ({cause})"
        ),
    )


def _apply(conn: sa.Connection, sink: SinkTable, upserts: list[Item], deletes: list[Item]) -> None:
    if sink.bulk is not None and len(upserts) >= BULK_MIN_ROWS:
        if sink.bulk.write(conn, [row for _, row in upserts]):
            upserts = []
    for start in range(0, len(upserts), ROWS_PER_STATEMENT):
        conn.execute(sink.upsert, [row for _, row in upserts[start : start + ROWS_PER_STATEMENT]])
    for start in range(0, len(deletes), ROWS_PER_STATEMENT):
        conn.execute(sink.delete, [p for _, p in deletes[start : start + ROWS_PER_STATEMENT]])


def _rejected(connector: SqlConnector, sink: SinkTable, exc: SQLAlchemyError) -> RowRejectedError:
    return RowRejectedError(
        f"sink table {sink.table.name!r} refused the row ({connector.describe_error(exc)})"
    )


def _write_error(connector: SqlConnector, sink: SinkTable, exc: SQLAlchemyError) -> LgspError:
    """A refusal that is not about one row: retriable when the database is unreachable or
    busy, otherwise the table stops (fix the target, then rerun)."""
    if connector.is_transient(exc):
        error = connector.connection_error(exc)
        if isinstance(error, ConnectorUnavailableError):
            return error
        return ConnectorUnavailableError(str(error))
    return TableStoppedError(
        sink.table.fullname,
        f"the database refused the write ({connector.describe_error(exc)}); no row was "
        "parked and the offsets did not move: fix the target table or its grants, then rerun",
    )
