"""Writing generated records straight into a departmental SQL table (SQLite, PostgreSQL, MariaDB).

``load_table`` creates the table from the dataset's Avro schema (columns named like the fields,
the record's ``primary_key`` as the primary key, an index on ``updated_at`` for incremental
reads) and inserts the rows in batches with executemany, in one transaction.

Columns are made as the SQL sink makes them from the same schema (``connectors.sql.typemap``):
e.g. timestamps ``TIMESTAMP WITH TIME ZONE`` on PostgreSQL and UTC wall time in ``DATETIME(3)``
on MariaDB; arrays and records (a dossier's status history) JSON text (timestamps as ISO 8601
strings in UTC).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from bus.envelope import load_record_schema
from bus.errors import ConfigurationError, DatabaseUnavailableError
from bus.generate.datasets import dataset_spec, generate
from connectors.sql.typemap import Converter, column_name, type_mapper
from connectors.sql.types import split_table

IfExists = Literal["fail", "replace", "append"]


def table_for(
    conn: sa.Connection, table_name: str, schema: dict[str, Any]
) -> tuple[sa.Table, list[tuple[str, str, Converter | None]]]:
    """The SQL table for a record schema, and (field, column, conversion) of each field."""
    db_schema, name = split_table(table_name, "table", plain=True)
    mapper = type_mapper(conn, schema)
    fields = schema["fields"]
    keys = [column_name(f) for f in fields if f["name"] in (schema.get("primary_key") or [])]
    columns = mapper.columns(schema, keys, evolving=False)
    table = sa.Table(name, sa.MetaData(), *columns, schema=db_schema)
    if "updated_at" in table.c:
        sa.Index(f"ix_{name[:50]}_updated_at", table.c.updated_at)
    return table, [(f["name"], column_name(f), mapper.converter(f)) for f in fields]


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
    try:
        with engine.connect() as conn:
            table, converters = table_for(conn, table_name, schema)
        exists = sa.inspect(engine).has_table(table.name, schema=table.schema)
        if exists and if_exists == "fail":
            raise ConfigurationError(
                f"table {table_name} already exists; use if_exists='replace' or 'append'"
            )
        with engine.begin() as conn:
            if exists and if_exists == "replace":
                table.drop(conn)
            table.metadata.create_all(conn, checkfirst=True)
        count = 0
        with engine.begin() as conn:
            batch: list[dict[str, Any]] = []
            for record in records:
                batch.append(
                    {
                        column: record.get(name) if fn is None else fn(record.get(name))
                        for name, column, fn in converters
                    }
                )
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
    batch_size: int = 1000,
    if_exists: IfExists = "fail",
    **options: Any,
) -> int:
    """Generate ``n`` rows of ``dataset`` into a new SQL table; ``options`` (``start``,
    ``end``, ``hierarchy``, ``online_procedures``) as for :func:`generate`."""
    spec = dataset_spec(dataset)
    records = generate(dataset, n, seed, units, **options)
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
