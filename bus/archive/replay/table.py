"""The replay's target table: created from the record schema under a temporary name, filled,
then swapped in place of the old one (a failed write leaves the old table as it was)."""

from __future__ import annotations

import logging
import secrets
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
from bus.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    FatalError,
    LgspError,
)
from connectors.sql.typemap import MariaDbTypes, column_name, type_mapper

META_COLUMNS = ("_lgsp_key", "_lgsp_unit", "_lgsp_ts_ms", "_lgsp_event_id")

log = logging.getLogger(__name__)


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


def _target_table(name: str, schema_name: str | None, columns: list[sa.Column[Any]]) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("_lgsp_key", sa.Text, nullable=True),
        sa.Column("_lgsp_unit", sa.String(64), nullable=False),
        sa.Column("_lgsp_ts_ms", sa.BigInteger, nullable=False),
        sa.Column("_lgsp_event_id", sa.String(200), nullable=False),
        *columns,
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
    if engine.dialect.name in MariaDbTypes.dialects:  # DDL commits at once: one statement
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
        fields = record_schema.get("fields", [])
        for f in fields:
            if column_name(f) in META_COLUMNS:
                raise ConfigurationError(f"record field {f['name']!r} clashes with a replay column")
        exists = check_target(url, schema_name, name, replace)
        kept = "the existing table is unchanged" if exists else "nothing was kept"
        with engine.connect() as conn:
            mapper = type_mapper(conn, record_schema, exact_copy=True)
        key = [column_name(f) for f in fields if f["name"] in record_schema.get("primary_key", [])]
        staging = _target_table(
            _side_name(name, "new"), schema_name, mapper.columns(record_schema, key, evolving=False)
        )
        converters = [(f["name"], column_name(f), mapper.converter(f)) for f in fields]
        values = []
        for candidate, record in zip(rows, records, strict=True):
            item = {
                "_lgsp_key": candidate.key,
                "_lgsp_unit": candidate.source_unit,
                "_lgsp_ts_ms": candidate.ts_ms,
                "_lgsp_event_id": candidate.event_id,
            }
            for field_name, column, convert in converters:
                value = record.get(field_name)
                item[column] = value if convert is None else convert(value)
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
