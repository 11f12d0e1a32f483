"""PostgreSQL bulk upsert: ``COPY`` into a temporary stage, then one versioned upsert.

An ``INSERT ... ON CONFLICT`` executed once per row costs the server a statement per row
(about three quarters of the sink's time per row). Here a batch is streamed with ``COPY`` into
a temporary table that lives for the transaction (``ON COMMIT DROP``), then moved with one
``INSERT INTO target SELECT ... FROM stage ON CONFLICT (key) DO UPDATE ... WHERE`` that has
the very same version rule as the row-at-a-time statement (``sink.version_condition``). The
stage has the target's column types but none of its constraints, so a refused value (too
long, NOT NULL, a check) is refused by the target in the same transaction, with the same
SQLSTATE classes, and the sink's row-by-row isolation still finds the refused rows.
Values pass through the column types' own bind processors (JSON, enums), as SQLAlchemy would
bind them.
"""

from __future__ import annotations

import hashlib
import operator
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


class CopyUpsert:
    """Upsert of many rows by ``COPY`` + ``INSERT ... SELECT ... ON CONFLICT``."""

    def __init__(
        self,
        table: sa.Table,
        columns: list[str],
        key: list[str],
        condition: Callable[[sa.Table, Any], sa.ColumnElement[bool]],
        version: str,
        dialect: sa.Dialect,
    ) -> None:
        self.columns = list(columns)
        self.key_idx = [self.columns.index(k) for k in key]
        digest = hashlib.sha1("\x1f".join([table.fullname, *columns]).encode("utf-8")).hexdigest()[
            :12
        ]
        prep = dialect.identifier_preparer
        self.stage_name = f"_lgsp_stage_{digest}"
        stage = prep.quote(self.stage_name)
        target = prep.format_table(table)
        cols = ", ".join(prep.quote(c) for c in self.columns)
        # every identifier quoted by the dialect; no value is ever put into the SQL text
        self.create_sql = (
            f"CREATE TEMPORARY TABLE {stage} ON COMMIT DROP AS "  # noqa: S608
            f"SELECT {cols} FROM {target} WITH NO DATA"
        )
        self.copy_sql = f"COPY {stage} ({cols}) FROM STDIN"
        staged = sa.table(self.stage_name, *[sa.column(c) for c in self.columns])
        insert = postgresql.insert(table).from_select(
            self.columns, sa.select(*[staged.c[c] for c in self.columns])
        )
        excluded = insert.excluded
        self.upsert = insert.on_conflict_do_update(
            index_elements=[table.c[k] for k in key],
            set_={c: excluded[c] for c in self.columns if c not in key},
            where=condition(table, excluded[version]),
        )
        self.processors: list[Callable[[Any], Any] | None] = [
            table.c[c].type.bind_processor(dialect) for c in self.columns
        ]

    def _tuples(self, rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
        """Rows as tuples in column order, processed; the last of equal keys kept."""
        values_of = operator.itemgetter(*self.columns)
        key_of = operator.itemgetter(*self.key_idx)
        out: dict[Any, tuple[Any, ...]] = {}
        processed = [(i, p) for i, p in enumerate(self.processors) if p is not None]
        for row in rows:
            values = values_of(row)
            if len(self.columns) == 1:
                values = (values,)
            if processed:
                changed = list(values)
                for i, process in processed:
                    if changed[i] is not None:
                        changed[i] = process(changed[i])
                values = tuple(changed)
            out[key_of(values)] = values
        return list(out.values())

    def write(self, conn: sa.Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Upsert ``rows`` inside ``conn``'s current transaction."""
        if not rows:
            return
        conn.exec_driver_sql(self.create_sql)
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
