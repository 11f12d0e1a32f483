"""The SQL sink: target tables prepared from a record schema, versioned upserts and deletes.

Every target row carries ``_lgsp_ts_ms`` (the change time of the event that wrote it),
``_lgsp_event_id`` and ``_lgsp_deleted``. A write keeps the newest event per key within the
batch, then upserts with the dialect's native statement, updating a stored row only when the
incoming version is not older; a delete removes the row (``on_delete: delete``) or marks it
(``on_delete: mark``, a tombstone that also stops an older update arriving later). A batch
is one transaction; when the database refuses it, rows are retried one at a time so that
only the refused ones are reported (for the DLQ).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import Rejected, WriteReport
from connectors.errors import (
    ColumnNotFoundError,
    ConnectorUnavailableError,
    MissingPrimaryKeyError,
    RowRejectedError,
    TableNotFoundError,
)
from connectors.sql.types import SQL_NAME, key_value, sink_converter, sql_type_for

if TYPE_CHECKING:
    from connectors.sql.config import SqlTable
    from connectors.sql.connector import SqlConnector

log = logging.getLogger(__name__)

VERSION = "_lgsp_ts_ms"
EVENT_ID = "_lgsp_event_id"
DELETED = "_lgsp_deleted"
META = (VERSION, EVENT_ID, DELETED)
ROWS_PER_STATEMENT = 1000


def meta_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column(VERSION, sa.BigInteger, nullable=True),
        sa.Column(EVENT_ID, sa.String(64), nullable=True),
        sa.Column(DELETED, sa.Boolean, nullable=True),
    ]


@dataclass
class SinkTable:
    """A prepared target table and what a write needs to map events onto it."""

    table: sa.Table
    key_columns: list[str]
    key_fields: list[str]
    columns: dict[str, str]  # field -> column
    fields: dict[str, dict[str, Any]]
    converters: dict[str, Callable[[Any], Any] | None]
    on_delete: str
    schema_fields: tuple[str, ...]
    actions: list[str] = field(default_factory=list)
    upsert: Any = None
    delete: Any = None


def _column_of(f: dict[str, Any]) -> str:
    return str(f.get(SQL_NAME, f["name"]))


def prepare_sink(
    connector: SqlConnector, cfg: SqlTable, record_schema: dict[str, Any], *, dry_run: bool
) -> SinkTable:
    """Plan (``dry_run``) or make the target table ready for ``record_schema``."""
    from connectors.sql.connector import split_table

    fields = {f["name"]: f for f in record_schema.get("fields", [])}
    columns = {name: _column_of(f) for name, f in fields.items()}
    by_column = {c: n for n, c in columns.items()}
    schema, name = split_table(cfg.table)
    actions: list[str] = []
    engine = connector.engine
    try:
        with engine.begin() as conn:
            table = connector._reflect(conn, cfg)
            if table is None:
                if not cfg.create:
                    raise connector._missing_table(conn, cfg)
                key_columns = list(cfg.key or [])
                if not key_columns:
                    key_columns = [columns.get(k, k) for k in record_schema.get("primary_key", [])]
                if not key_columns:
                    raise MissingPrimaryKeyError(
                        f"table {cfg.table!r}: the dataset {cfg.dataset!r} declares no primary key "
                        "and 'key:' is not set; a sink upserts by primary key"
                    )
                for k in key_columns:
                    if k not in by_column:
                        raise ColumnNotFoundError(
                            f"key: {k!r} is not a field of dataset {cfg.dataset!r}"
                        )
                cols = [
                    sa.Column(
                        columns[n],
                        sql_type_for(f, is_key=columns[n] in key_columns),
                        primary_key=columns[n] in key_columns,
                        nullable=columns[n] not in key_columns,
                        autoincrement=False,
                    )
                    for n, f in fields.items()
                ]
                table = sa.Table(
                    name,
                    sa.MetaData(),
                    *cols,
                    *meta_columns(),
                    schema=schema,
                    mysql_charset="utf8mb4",
                    mysql_collate="utf8mb4_bin",
                )
                actions.append(f"create table {cfg.table!r} ({len(cols)} columns + 3 version)")
                if not dry_run:
                    table.create(conn)
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
                new_cols = [
                    sa.Column(columns[n], sql_type_for(f, is_key=False), nullable=True)
                    for n, f in fields.items()
                    if columns[n] not in table.c
                ] + [c for c in meta_columns() if c.name not in table.c]
                if new_cols:
                    actions.append(
                        f"add columns {', '.join(repr(c.name) for c in new_cols)} to {cfg.table!r}"
                    )
                    if not dry_run:
                        _add_columns(conn, name, schema, new_cols)
                        table = connector._reflect(conn, cfg)
                        assert table is not None
    except SQLAlchemyError as exc:
        if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
            raise connector.connection_error(exc) from exc
        raise TableNotFoundError(
            f"table {cfg.table!r}: cannot prepare the sink table ({type(exc).__name__})"
        ) from exc
    naive = connector.naive_utc_timestamps
    key_fields = [by_column[k] for k in key_columns]
    sink = SinkTable(
        table=table,
        key_columns=key_columns,
        key_fields=key_fields,
        columns=columns,
        fields=fields,
        converters={n: sink_converter(f, naive_utc=naive) for n, f in fields.items()},
        on_delete=cfg.on_delete,
        schema_fields=tuple(fields),
        actions=actions,
    )
    if not dry_run:
        data_columns = [columns[n] for n in fields] + list(META)
        sink.upsert = connector.upsert_statement(table, data_columns, key_columns, VERSION)
        sink.delete = _delete_statement(table, key_columns)
    return sink


def _add_columns(
    conn: sa.Connection, name: str, schema: str | None, cols: list[sa.Column[Any]]
) -> None:
    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    ops = Operations(MigrationContext.configure(conn))
    for col in cols:
        ops.add_column(name, col, schema=schema)


def _delete_statement(table: sa.Table, key: list[str]) -> Any:
    conditions = [
        table.c[k] == sa.bindparam(f"_lgsp_k{i}", type_=table.c[k].type) for i, k in enumerate(key)
    ]
    version = table.c[VERSION]
    newer = sa.or_(version.is_(None), version <= sa.bindparam("_lgsp_v", type_=sa.BigInteger))
    return sa.delete(table).where(*conditions, newer)


def version_condition(table: sa.Table, incoming: Any) -> sa.ColumnElement[bool]:
    """The stored row is older than or as old as the incoming one (or has no version)."""
    stored = table.c[VERSION]
    return sa.or_(stored.is_(None), stored <= incoming)


# ---- writing --------------------------------------------------------------------------------


def _row(sink: SinkTable, event: dict[str, Any], record: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {}
    key = None
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
        row[sink.columns[name]] = value
    row[VERSION] = int(event["ts_ms"])
    row[EVENT_ID] = str(event["event_id"])
    row[DELETED] = event["op"] == "d"
    return row


def _key_params(sink: SinkTable, event: dict[str, Any]) -> dict[str, Any]:
    record = event.get("before") or event.get("after")
    params: dict[str, Any] = {}
    key = None
    for i, name in enumerate(sink.key_fields):
        if record is not None and name in record:
            value = record[name]
        else:
            if key is None:
                key = json.loads(event["key"])
            value = key_value(sink.fields[name], key.get(name))
        convert = sink.converters[name]
        params[f"_lgsp_k{i}"] = (
            convert(value) if convert is not None and value is not None else value
        )
    params["_lgsp_v"] = int(event["ts_ms"])
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


def _split(
    sink: SinkTable, chosen: list[tuple[int, dict[str, Any]]]
) -> tuple[list[tuple[int, dict[str, Any]]], list[tuple[int, dict[str, Any]]]]:
    upserts: list[tuple[int, dict[str, Any]]] = []
    deletes: list[tuple[int, dict[str, Any]]] = []
    for i, event in chosen:
        if event["op"] == "d":
            if sink.on_delete == "mark":
                upserts.append((i, _row(sink, event, event.get("before"))))
            else:
                deletes.append((i, _key_params(sink, event)))
        else:
            upserts.append((i, _row(sink, event, event.get("after"))))
    return upserts, deletes


def _apply(
    conn: sa.Connection,
    sink: SinkTable,
    upserts: list[tuple[int, dict[str, Any]]],
    deletes: list[tuple[int, dict[str, Any]]],
) -> None:
    for start in range(0, len(upserts), ROWS_PER_STATEMENT):
        conn.execute(sink.upsert, [row for _, row in upserts[start : start + ROWS_PER_STATEMENT]])
    for start in range(0, len(deletes), ROWS_PER_STATEMENT):
        conn.execute(sink.delete, [p for _, p in deletes[start : start + ROWS_PER_STATEMENT]])


def write_batch(
    connector: SqlConnector, sink: SinkTable, events: list[dict[str, Any]]
) -> WriteReport:
    """Apply ``events`` in one transaction; refused rows are isolated and reported."""
    report = WriteReport()
    if not events:
        return report
    chosen = newest_per_key(events)
    report.superseded = len(events) - len(chosen)
    upserts, deletes = _split(sink, chosen)
    engine = connector.engine
    try:
        with engine.begin() as conn:
            _apply(conn, sink, upserts, deletes)
        report.applied = len(upserts)
        report.deleted = len(deletes)
        return report
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        if not _is_row_error(connector, exc):
            raise _unavailable(connector, exc) from exc
    except SQLAlchemyError:
        pass
    # one row at a time, each in its own transaction, to find the refused ones
    for kind, items in (("upsert", upserts), ("delete", deletes)):
        for i, item in items:
            try:
                with engine.begin() as conn:
                    if kind == "upsert":
                        _apply(conn, sink, [(i, item)], [])
                    else:
                        _apply(conn, sink, [], [(i, item)])
            except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
                if not _is_row_error(connector, exc):
                    raise _unavailable(connector, exc) from exc
                report.rejected.append(Rejected(i, _rejected(sink, exc)))
            except SQLAlchemyError as exc:
                report.rejected.append(Rejected(i, _rejected(sink, exc)))
            else:
                if kind == "upsert":
                    report.applied += 1
                else:
                    report.deleted += 1
    return report


def _is_row_error(connector: SqlConnector, exc: BaseException) -> bool:
    """MySQL reports some bad values as OperationalError (e.g. 1366 incorrect value)."""
    return connector.error_kind(exc) == "row"


def _rejected(sink: SinkTable, exc: SQLAlchemyError) -> RowRejectedError:
    cause = type(getattr(exc, "orig", None) or exc).__name__
    return RowRejectedError(f"sink table {sink.table.name!r} refused the row ({cause})")


def _unavailable(connector: SqlConnector, exc: SQLAlchemyError) -> ConnectorUnavailableError:
    error = connector.connection_error(exc)
    if isinstance(error, ConnectorUnavailableError):
        return error
    return ConnectorUnavailableError(str(error))
