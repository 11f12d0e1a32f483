"""PostgreSQL bulk upsert: ``COPY`` into a temporary stage, then one versioned upsert.

An ``INSERT ... ON CONFLICT`` executed once per row costs the server a statement per row
(about three quarters of the sink's time per row). Here a batch is streamed with ``COPY`` into
a temporary table that lives for the transaction (``ON COMMIT DROP``), then moved with one
``INSERT INTO target SELECT ... FROM stage ON CONFLICT (key) DO UPDATE ... WHERE`` that has
the very same version rule as the row-at-a-time statement (``upsert.version_condition``). The
stage has the target's column types but none of its constraints, so a refused value (too
long, NOT NULL, a check) is refused by the target in the same transaction, with the same
SQLSTATE classes, and the sink's row-by-row isolation still finds the refused rows.
Values pass through the column types' own bind processors (JSON, enums), as SQLAlchemy would
bind them.
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from connectors.sql.upsert import VERSION, on_conflict_update

log = logging.getLogger(__name__)


class CopyUpsert:
    """Upsert of many rows by ``COPY`` + ``INSERT ... SELECT ... ON CONFLICT``."""

    def __init__(
        self,
        table: sa.Table,
        columns: list[str],
        key: list[str],
        dialect: sa.Dialect,
    ) -> None:
        self.columns = list(columns)
        digest = hashlib.sha1("\x1f".join([table.fullname, *columns]).encode("utf-8")).hexdigest()[
            :12
        ]
        prep = dialect.identifier_preparer
        self.stage_name = f"_lgsp_stage_{digest}"
        stage = prep.quote(self.stage_name)
        target = prep.format_table(table)
        cols = ", ".join(prep.quote(c) for c in self.columns)
        # A ``timestamp`` (without time zone) column is staged as ``timestamptz``: the INSERT
        # then converts values in the session's time zone, as a bound parameter would be.
        staged_cols = ", ".join(
            f"CAST({prep.quote(c)} AS TIMESTAMP WITH TIME ZONE) AS {prep.quote(c)}"
            if isinstance(table.c[c].type, sa.DateTime) and not table.c[c].type.timezone
            else prep.quote(c)
            for c in self.columns
        )
        # every identifier quoted by the dialect; no value is ever put into the SQL text
        self.create_sql = (
            f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {staged_cols} FROM {target} WITH NO DATA"
        )
        self.copy_sql = f"COPY {stage} ({cols}) FROM STDIN"
        staged = sa.table(self.stage_name, *[sa.column(c) for c in self.columns])
        insert = postgresql.insert(table).from_select(
            self.columns, sa.select(*[staged.c[c] for c in self.columns])
        )
        self.upsert = on_conflict_update(insert, table, self.columns, key)
        # per column: the type's bind processor (JSON, enums) and whether it binds None as a
        # value too (JSON ``null``, unless ``none_as_null``), as SQLAlchemy would bind them
        self._processed = [
            (i, process, bool(getattr(table.c[c].type, "should_evaluate_none", False)))
            for i, c in enumerate(self.columns)
            if (process := table.c[c].type.dialect_impl(dialect).bind_processor(dialect))
        ]
        self._values_of = operator.itemgetter(*self.columns)
        self._key_of = operator.itemgetter(*(self.columns.index(k) for k in key))
        self._version = self.columns.index(VERSION)
        self.usable = True  # False once the database refused the temporary stage

    def _tuples(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows as tuples in column order, processed. Of rows with equal sink keys the newest
        version is kept (the later one among equals), as statements run in order would: the
        batch holds one event per event key, but a sink may key its table by other columns."""
        values_of, key_of, version, processed = (
            self._values_of,
            self._key_of,
            self._version,
            self._processed,
        )
        single = len(self.columns) == 1
        out: dict[Any, tuple[Any, ...]] = {}
        for row in rows:
            values = (values_of(row),) if single else values_of(row)
            if processed:
                changed = list(values)
                for i, process, none_too in processed:
                    if none_too or changed[i] is not None:
                        changed[i] = process(changed[i])
                values = tuple(changed)
            key = key_of(values)
            seen = out.get(key)
            if seen is not None and _older(values[version], seen[version]):
                continue
            out[key] = values
        return list(out.values())

    def write(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> bool:
        """Upsert ``rows`` inside ``conn``'s current transaction; False (nothing done) when the
        database refuses a temporary table (no TEMPORARY privilege): the caller then writes
        them with its row statement, and this object is not used again."""
        if not rows:
            return True
        if not self.usable or not self._create_stage(conn):
            return False
        dbapi_error = conn.dialect.loaded_dbapi.Error
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            with cursor.copy(self.copy_sql) as copy:
                for values in self._tuples(rows):
                    copy.write_row(values)
        except dbapi_error as exc:  # as SQLAlchemy raises it for its own statements
            raise sa.exc.DBAPIError.instance(
                self.copy_sql, None, exc, dbapi_error, hide_parameters=True, dialect=conn.dialect
            ) from exc
        finally:
            cursor.close()
        conn.execute(self.upsert)
        return True

    def _create_stage(self, conn: sa.Connection) -> bool:
        savepoint = conn.begin_nested()
        try:
            conn.exec_driver_sql(self.create_sql)
        except sa.exc.DBAPIError as exc:
            savepoint.rollback()
            if getattr(exc.orig, "sqlstate", None) == _PERMISSION_DENIED:
                log.warning(
                    "no TEMPORARY privilege on the sink database: batches are written row by "
                    "row (grant TEMPORARY for the faster COPY path)"
                )
                self.usable = False
                return False
            raise
        savepoint.commit()
        return True


_PERMISSION_DENIED = "42501"


def _older(incoming: Any, kept: Any) -> bool:
    """The incoming version is older than the kept one (None counts as oldest)."""
    if incoming is None:
        return kept is not None
    return kept is not None and incoming < kept
