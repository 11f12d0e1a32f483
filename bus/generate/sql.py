"""Writing generated records straight into a departmental SQL table (SQLite, PostgreSQL, MariaDB).

``load_table`` creates the table from the dataset's Avro schema (columns named like the fields,
the record's ``primary_key`` as the primary key, an index on ``updated_at`` for incremental
reads) and inserts the rows in batches with executemany, in one transaction.

Column types: timestamps are ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL and UTC wall time in
``DATETIME(3)`` / SQLite text elsewhere; decimals ``NUMERIC(p, s)``; dates ``DATE``; enums
``VARCHAR(32)``; arrays and records (a dossier's status history) ``JSON`` holding JSON values
(timestamps as ISO 8601 strings in UTC).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import SQLAlchemyError

from bus.envelope import load_record_schema, to_jsonable
from bus.errors import ConfigurationError, DatabaseUnavailableError, InvalidNameError
from bus.generate.datasets import DEFAULT_END, DEFAULT_START, dataset_spec, generate
from bus.units import Hierarchy

IfExists = Literal["fail", "replace", "append"]
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PRIMITIVES = {
    "string": lambda key: sa.String(64 if key else 255),
    "int": lambda key: sa.Integer(),
    "long": lambda key: sa.BigInteger(),
    "boolean": lambda key: sa.Boolean(),
    "float": lambda key: sa.Float(),
    "double": lambda key: sa.Float(),
}


def _timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=3), "mysql", "mariadb")


def split_table_name(name: str) -> tuple[str | None, str]:
    """``schema.table`` or ``table``, each part a plain SQL identifier."""
    if not isinstance(name, str):
        raise InvalidNameError("table: expected a name")
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENT.fullmatch(p) for p in parts):
        raise InvalidNameError(
            "table: expected 'table' or 'schema.table' made of letters, digits and '_' "
            "(starting with a letter or '_', at most 63 characters each)"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _column_type(
    avro_type: Any, key: bool
) -> tuple[sa.types.TypeEngine[Any], bool, Callable[[Any], Any] | None]:
    """(SQL type, nullable, kind of conversion) for one Avro field type."""
    nullable = False
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        nullable = len(branches) < len(avro_type)
        avro_type = branches[0] if len(branches) == 1 else {"type": "array"}
    if isinstance(avro_type, str):
        make = _PRIMITIVES.get(avro_type)
        return (make(key) if make else sa.String(255)), nullable, None
    kind = avro_type.get("type")
    logical = avro_type.get("logicalType")
    if logical in ("timestamp-millis", "timestamp-micros"):
        return _timestamp(), nullable, _as_timestamp
    if logical == "date":
        return sa.Date(), nullable, None
    if logical == "decimal":
        return (
            sa.Numeric(int(avro_type.get("precision", 38)), int(avro_type.get("scale", 0))),
            nullable,
            None,
        )
    if kind == "enum":
        return sa.String(32), nullable, None
    if kind in ("array", "map", "record"):
        return sa.JSON(), nullable, to_jsonable
    if isinstance(kind, str) and kind in _PRIMITIVES:
        return _PRIMITIVES[kind](key), nullable, None
    return sa.String(255), nullable, None


def _as_timestamp(value: Any) -> Any:
    return value  # replaced per dialect in _converters


def table_for(
    metadata: sa.MetaData, table_name: str, schema: dict[str, Any]
) -> tuple[sa.Table, dict[str, Callable[[Any], Any] | None]]:
    """The SQL table for a record schema, and the per-column value conversions."""
    db_schema, name = split_table_name(table_name)
    keys = list(schema.get("primary_key") or [])
    columns: list[sa.Column[Any]] = []
    converters: dict[str, Callable[[Any], Any] | None] = {}
    for avro_field in schema["fields"]:
        fname = avro_field["name"]
        sql_type, nullable, convert = _column_type(avro_field["type"], fname in keys)
        columns.append(
            sa.Column(fname, sql_type, primary_key=fname in keys, nullable=nullable),
        )
        converters[fname] = convert
    table = sa.Table(name, metadata, *columns, schema=db_schema)
    if "updated_at" in converters:
        sa.Index(f"ix_{name[:50]}_updated_at", table.c.updated_at)
    return table, converters


def _converters_for(
    dialect: str, converters: dict[str, Callable[[Any], Any] | None]
) -> list[tuple[str, Callable[[Any], Any]]]:
    def naive_utc(value: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value

    out: list[tuple[str, Callable[[Any], Any]]] = []
    for name, convert in converters.items():
        if convert is _as_timestamp:
            if dialect != "postgresql":
                out.append((name, naive_utc))
        elif convert is not None:
            out.append((name, convert))
    return out


def load_records(
    engine: sa.Engine,
    table_name: str,
    schema: dict[str, Any],
    records: Iterable[dict[str, Any]],
    *,
    batch_size: int = 1000,
    if_exists: IfExists = "fail",
) -> int:
    """Create the table for ``schema`` and insert ``records`` in batches; the row count."""
    if if_exists not in ("fail", "replace", "append"):
        raise ConfigurationError("if_exists: expected fail, replace or append")
    if batch_size < 1:
        raise ConfigurationError("batch_size: expected 1 or more")
    metadata = sa.MetaData()
    table, converters = table_for(metadata, table_name, schema)
    convert = _converters_for(engine.dialect.name, converters)
    try:
        exists = sa.inspect(engine).has_table(table.name, schema=table.schema)
        if exists and if_exists == "fail":
            raise ConfigurationError(
                f"table {table_name} already exists; use if_exists='replace' or 'append'"
            )
        with engine.begin() as conn:
            if exists and if_exists == "replace":
                table.drop(conn)
            metadata.create_all(conn, checkfirst=True)
        count = 0
        with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            for record in records:
                row = dict(record)
                for name, fn in convert:
                    row[name] = fn(row[name])
                batch.append(row)
                if len(batch) >= batch_size:
                    conn.execute(table.insert(), batch)
                    count += len(batch)
                    batch = []
            if batch:
                conn.execute(table.insert(), batch)
                count += len(batch)
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailableError(
            f"table {table_name}: database error ({type(exc.orig).__name__})"
        ) from exc
    except SQLAlchemyError as exc:
        raise ConfigurationError(
            f"table {table_name}: cannot write ({type(exc).__name__})"
        ) from exc
    return count


def load_table(
    engine: sa.Engine | str,
    table_name: str,
    dataset: str,
    n: int,
    seed: int,
    units: Sequence[str],
    *,
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    hierarchy: str | Hierarchy = "hcmc-2024",
    online_procedures: int | None = None,
    batch_size: int = 1000,
    if_exists: IfExists = "fail",
) -> int:
    """Generate ``n`` rows of ``dataset`` (see :func:`generate`) into a new SQL table."""
    spec = dataset_spec(dataset)
    records = generate(
        dataset,
        n,
        seed,
        units,
        start,
        end,
        hierarchy=hierarchy,
        online_procedures=online_procedures,
    )
    schema = load_record_schema(spec.schema_path)
    own = isinstance(engine, str)
    bound = sa.create_engine(engine) if isinstance(engine, str) else engine
    try:
        return load_records(
            bound, table_name, schema, records, batch_size=batch_size, if_exists=if_exists
        )
    finally:
        if own:
            bound.dispose()
