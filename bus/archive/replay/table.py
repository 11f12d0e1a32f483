"""The replay's target table: created from the record schema under a temporary name, filled,
then swapped in place of the old one (a failed write leaves the old table as it was)."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import (
    ArgumentError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from bus.archive.replay.selection import Candidate
from bus.config import mask_url
from bus.envelope import to_jsonable
from bus.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    FatalError,
    LgspError,
)
from bus.serde.jsoncodec import named_types
from bus.timeutil import as_utc

META_COLUMNS = ("_lgsp_key", "_lgsp_unit", "_lgsp_ts_ms", "_lgsp_event_id")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Column:
    name: str
    type: Any
    nullable: bool
    kind: str  # how values are adapted: plain, json, timestamp, decimal_text, uuid


def _sql_type(schema: Any, named: dict[str, Any], dialect: str) -> tuple[Any, str]:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            return _sql_type(branches[0], named, dialect)
        return sa.JSON(), "json"
    if isinstance(schema, dict):
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if isinstance(kind, dict | list):
            return _sql_type(kind, named, dialect)
        if logical == "decimal" and kind in ("bytes", "fixed"):
            if dialect == "sqlite":
                return sa.Text(), "decimal_text"
            return sa.Numeric(
                int(schema.get("precision", 38)), int(schema.get("scale", 0))
            ), "plain"
        if logical == "date":
            return sa.Date(), "plain"
        if logical in ("time-millis", "time-micros"):
            return sa.Time(), "plain"
        if logical in ("timestamp-millis", "timestamp-micros"):
            return sa.DateTime(timezone=True), "timestamp"
        if logical in ("local-timestamp-millis", "local-timestamp-micros"):
            return sa.DateTime(), "plain"
        if logical == "uuid":
            return sa.String(36), "uuid"
        if kind == "enum":
            return sa.String(max((len(s) for s in schema.get("symbols", [])), default=1)), "plain"
        if kind == "fixed":
            return sa.LargeBinary(), "plain"
        if kind in ("record", "array", "map"):
            return sa.JSON(), "json"
        return _sql_type(kind, named, dialect)
    primitive = {
        "boolean": sa.Boolean(),
        "int": sa.Integer(),
        "long": sa.BigInteger(),
        "float": sa.Float(),
        "double": sa.Double(),
        "bytes": sa.LargeBinary(),
        "string": sa.Text(),
    }
    if schema in primitive:
        return primitive[schema], "plain"
    raise ConfigurationError(f"record schema: type {schema!r} has no SQL column type")


def _columns(record_schema: dict[str, Any], dialect: str) -> list[_Column]:
    named: dict[str, Any] = {}
    named_types(record_schema, named)
    columns = []
    for item in record_schema.get("fields", []):
        name = str(item["name"])
        if name in META_COLUMNS:
            raise ConfigurationError(f"record field {name!r} clashes with a replay column")
        ftype = item["type"]
        nullable = isinstance(ftype, list) and "null" in ftype
        sql_type, kind = _sql_type(ftype, named, dialect)
        columns.append(_Column(name, sql_type, nullable, kind))
    return columns


def _adapt(value: Any, kind: str, dialect: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return to_jsonable(value)
    if kind == "decimal_text":
        return format(value, "f")
    if kind == "uuid":
        return str(value)
    if kind == "timestamp" and isinstance(value, dt.datetime):
        value = as_utc(value)
        if dialect != "postgresql":
            return value.replace(tzinfo=None)
        return value
    return value


def _target_engine(url: str) -> sa.Engine:
    try:
        engine = sa.create_engine(url, hide_parameters=True)  # errors never quote row values
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as exc:
        raise ConfigurationError(
            f"--into: not a usable SQLAlchemy URL ({type(exc).__name__}); expected e.g. "
            "sqlite:///audit.db or postgresql+psycopg://user@host/db"
        ) from exc
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        # pysqlite commits DDL on its own; let SQLAlchemy's BEGIN cover it (the documented
        # recipe), so that creating, filling and swapping the table are transactional
        sa.event.listen(engine, "connect", _sqlite_manual_transactions)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return engine


def _sqlite_manual_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None


def check_target(url: str, schema_name: str | None, name: str, replace: bool) -> bool:
    """Whether the table exists; refused unless ``replace``. Checked before any reading."""
    engine = _target_engine(url)
    shown = f"{schema_name}.{name}" if schema_name else name
    try:
        exists = sa.inspect(engine).has_table(name, schema=schema_name)
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"--into: the target database {mask_url(url)} does not answer"
        ) from exc
    finally:
        engine.dispose()
    if exists and not replace:
        raise ConfigurationError(
            f"--into: table {shown} already exists in the target database; pass --replace "
            "to drop and rebuild it, or choose another --table"
        )
    return exists


def _target_table(name: str, schema_name: str | None, columns: list[_Column]) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("_lgsp_key", sa.Text, nullable=True),
        sa.Column("_lgsp_unit", sa.String(64), nullable=False),
        sa.Column("_lgsp_ts_ms", sa.BigInteger, nullable=False),
        sa.Column("_lgsp_event_id", sa.String(200), nullable=False),
        *[sa.Column(c.name, c.type, nullable=c.nullable) for c in columns],
        schema=schema_name,
    )


def _side_name(name: str, role: str) -> str:
    """A unique name beside ``name`` (at most 62 characters) for a table being swapped."""
    return f"{name[:44]}_lgsp_{role}_{secrets.token_hex(4)}"


def _write_error(exc: SQLAlchemyError, shown: str, kept: str) -> LgspError:
    """The bus error of a failed write (the driver's text may quote values: only its class)."""
    what = f"--into: writing table {shown} failed in the target database ({type(exc).__name__})"
    if isinstance(exc, OperationalError | InterfaceError) or getattr(
        exc, "connection_invalidated", False
    ):
        return DatabaseUnavailableError(f"{what}; {kept}")
    return FatalError(f"{what}; {kept}")


def _swap(engine: sa.Engine, schema_name: str | None, staging: str, name: str) -> None:
    """Put the filled ``staging`` table in the place of ``name`` (dropping the old one, if
    any) at once: one ``RENAME TABLE`` on MySQL/MariaDB, one transaction elsewhere."""
    prep = engine.dialect.identifier_preparer

    def qualified(table: str) -> str:
        prefix = prep.quote_schema(schema_name) + "." if schema_name else ""
        return prefix + prep.quote(table)

    exists = sa.inspect(engine).has_table(name, schema=schema_name)
    if engine.dialect.name == "mysql":  # DDL commits at once there: one atomic statement
        old = _side_name(name, "old")
        with engine.begin() as conn:
            if exists:
                conn.exec_driver_sql(
                    f"RENAME TABLE {qualified(name)} TO {qualified(old)}, "
                    f"{qualified(staging)} TO {qualified(name)}"
                )
            else:
                conn.exec_driver_sql(f"RENAME TABLE {qualified(staging)} TO {qualified(name)}")
        if exists:
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"DROP TABLE {qualified(old)}")
            except SQLAlchemyError as exc:
                log.warning(
                    "replay: the replaced table is left as %s (%s)", old, type(exc).__name__
                )
        return
    with engine.begin() as conn:  # transactional DDL: both or neither
        if exists:
            conn.exec_driver_sql(f"DROP TABLE {qualified(name)}")
        conn.exec_driver_sql(f"ALTER TABLE {qualified(staging)} RENAME TO {prep.quote(name)}")


def write_table(
    url: str,
    schema_name: str | None,
    name: str,
    record_schema: dict[str, Any],
    rows: list[Candidate],
    records: list[dict[str, Any]],
    replace: bool,
) -> None:
    """Write the rows into a new table under a temporary name, then swap it in: a failed
    write leaves the existing table as it was, on every dialect."""
    engine = _target_engine(url)
    shown = f"{schema_name}.{name}" if schema_name else name
    try:
        dialect = engine.dialect.name
        columns = _columns(record_schema, dialect)
        exists = check_target(url, schema_name, name, replace)
        kept = "the existing table is unchanged" if exists else "nothing was kept"
        staging = _target_table(_side_name(name, "new"), schema_name, columns)
        values = []
        for candidate, record in zip(rows, records, strict=True):
            item = {
                "_lgsp_key": candidate.key,
                "_lgsp_unit": candidate.source_unit,
                "_lgsp_ts_ms": candidate.ts_ms,
                "_lgsp_event_id": candidate.event_id,
            }
            for column in columns:
                item[column.name] = _adapt(record.get(column.name), column.kind, dialect)
            values.append(item)
        try:
            with engine.begin() as conn:
                staging.create(conn)
                for start in range(0, len(values), 5000):
                    conn.execute(staging.insert(), values[start : start + 5000])
            _swap(engine, schema_name, staging.name, name)
        except SQLAlchemyError as exc:
            try:  # MySQL/MariaDB keep a created table whatever happens after
                with engine.begin() as conn:
                    staging.drop(conn, checkfirst=True)
            except SQLAlchemyError:
                log.warning("replay: could not drop the unfinished table %s", staging.name)
            raise _write_error(exc, shown, kept) from exc
    finally:
        engine.dispose()
