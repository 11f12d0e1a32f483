"""Avro field -> SQL column and value converter: one mapper per dialect.

The SQL sink, replay's table writer and the generator's ``--url`` path create their tables
through it, so one Avro schema gives one table shape everywhere:

- ``string``: ``TEXT`` (``VARCHAR(255)`` in a key, ``VARCHAR(sqlLength)`` when the source said
  so); on MariaDB/MySQL ``LONGTEXT``/``VARCHAR`` under the byte-exact collation
  (``connectors.sql.collation``); ``enum``: ``VARCHAR`` of its longest symbol, at least 32;
  ``uuid``: ``VARCHAR(36)``.
- a union of several types, a record, an array or a map: JSON text in a ``TEXT`` column.
- ``decimal``: ``NUMERIC(p, s)``. SQLite's NUMERIC keeps about 15 significant digits: an
  exact copy (``exact_copy``: replay's audit table) keeps the decimal's text there instead.
- ``timestamp-*``: ``TIMESTAMP WITH TIME ZONE`` where the database has one, else the UTC wall
  time (MariaDB ``DATETIME(3)``/``DATETIME(6)`` for millis/micros); ``local-timestamp-*``:
  ``TIMESTAMP`` as it is; ``date``, ``time-*``: ``DATE``, ``TIME``.
- a key column is ``NOT NULL`` and in the primary key; another column is nullable when its
  field is (a union with ``null``), or always for a table that evolves (``evolving``: a sink
  keeps tombstones and rows written under older schema versions).

A named type used again by name is resolved against the record schema's own definitions.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.types import TypeEngine

from bus.envelope import to_jsonable
from bus.serde.jsoncodec import named_types
from connectors.sql import collation
from connectors.sql.types import SQL_LENGTH, SQL_NAME, nullable_converter, to_naive_utc

Converter = Callable[[Any], Any]

_SIMPLE: dict[str, Callable[[], TypeEngine[Any]]] = {
    "int": sa.Integer,
    "long": sa.BigInteger,
    "boolean": sa.Boolean,
    "float": sa.Float,
    "double": sa.Double,
    "bytes": sa.LargeBinary,
    "fixed": sa.LargeBinary,
}
_JSON_KINDS = ("record", "error", "array", "map")


def unwrap(avro_type: Any) -> tuple[Any, bool]:
    """(the non-null branch, nullable) of a field type; several branches stay a list."""
    if isinstance(avro_type, list):
        branches = [b for b in avro_type if b != "null"]
        nullable = len(branches) != len(avro_type)
        return (branches[0] if len(branches) == 1 else branches), nullable
    return avro_type, False


def json_text(value: Any) -> str:
    """A nested value as canonical JSON text (sorted keys, no spaces, non-ASCII kept)."""
    return json.dumps(to_jsonable(value), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def key_value(field: dict[str, Any], value: Any) -> Any:
    """A primary-key value from the envelope's canonical key JSON back to its Python type."""
    if value is None:
        return None
    avro, _ = unwrap(field["type"])
    kind = avro.get("type") if isinstance(avro, dict) else avro
    logical = avro.get("logicalType") if isinstance(avro, dict) else None
    if logical == "decimal":
        return decimal.Decimal(str(value))
    if logical == "date":
        return dt.date.fromisoformat(value)
    if logical and "timestamp" in logical:
        return dt.datetime.fromisoformat(value)
    if kind in ("int", "long"):
        return int(value)
    return value


def column_name(field: dict[str, Any]) -> str:
    """The column of a field: the database's own name (``sqlName``) when it has one."""
    return str(field.get(SQL_NAME, field["name"]))


class TypeMapper:
    """Avro -> SQL for one dialect. The base maps for any database SQLAlchemy knows; the
    subclasses set what their database cannot do (capability flags) and make text exact."""

    dialects: ClassVar[tuple[str, ...]] = ()
    # NUMERIC keeps every digit of a decimal
    exact_numeric: ClassVar[bool] = True
    # no zone-aware timestamp type: a timestamp is stored as its UTC wall time
    naive_timestamps: ClassVar[bool] = False
    # text compares by a collation: created byte-exact, keys checked (MariaDB/MySQL)
    collated_text: ClassVar[bool] = False

    def __init__(
        self, record_schema: dict[str, Any] | None = None, *, exact_copy: bool = False
    ) -> None:
        self.decimal_text = exact_copy and not self.exact_numeric
        self.named: dict[str, Any] = {}
        if record_schema is not None:
            named_types(record_schema, self.named)

    def exact(self, sql_type: TypeEngine[Any]) -> TypeEngine[Any]:
        """``sql_type`` with its text made byte-exact (only where text has a collation)."""
        return sql_type

    def _resolve(self, field: dict[str, Any]) -> tuple[Any, Any, Any]:
        """(branch, kind, logical type) of a field, a named type used again resolved."""
        avro, _ = unwrap(field["type"])
        if isinstance(avro, str) and avro in self.named:
            avro = self.named[avro]
        if isinstance(avro, dict) and isinstance(avro.get("type"), dict | list):
            return self._resolve({"type": avro["type"]})
        kind = avro.get("type") if isinstance(avro, dict) else avro
        logical = avro.get("logicalType") if isinstance(avro, dict) else None
        return avro, kind, logical

    def column_type(self, field: dict[str, Any], *, key: bool) -> TypeEngine[Any]:
        """The column type of a new column for ``field`` (``key``: in the primary key)."""
        return self.exact(self._base_type(field, key=key))

    def _base_type(self, field: dict[str, Any], *, key: bool) -> TypeEngine[Any]:
        avro, kind, logical = self._resolve(field)
        if isinstance(avro, list) or kind in _JSON_KINDS:
            return sa.Text()
        if logical == "decimal":
            if self.decimal_text:
                return sa.Text()
            return sa.Numeric(int(avro["precision"]), int(avro.get("scale", 0)))
        if logical == "date":
            return sa.Date()
        if logical in ("time-millis", "time-micros"):  # MariaDB/MySQL TIME keeps no fraction
            fsp = 3 if logical.endswith("millis") else 6
            return sa.Time().with_variant(mysql.TIME(fsp=fsp), "mysql", "mariadb")
        if logical in ("timestamp-millis", "timestamp-micros"):
            fsp = 3 if logical.endswith("millis") else 6
            return sa.DateTime(timezone=True).with_variant(
                mysql.DATETIME(fsp=fsp), "mysql", "mariadb"
            )
        if logical in ("local-timestamp-millis", "local-timestamp-micros"):
            fsp = 3 if logical.endswith("millis") else 6
            return sa.DateTime().with_variant(mysql.DATETIME(fsp=fsp), "mysql", "mariadb")
        if logical == "uuid":
            return sa.String(36)
        if kind in _SIMPLE:
            return _SIMPLE[kind]()
        if kind == "enum":
            return sa.String(max([len(s) for s in avro.get("symbols", [])] + [32]))
        if kind == "string" and (length := field.get(SQL_LENGTH)):
            return sa.String(int(length))
        return sa.String(255) if key else sa.Text()

    def converter(self, field: dict[str, Any]) -> Converter | None:
        """Avro value -> what the database's driver accepts for ``field`` (None: as it is);
        None stays None."""
        avro, kind, logical = self._resolve(field)
        if isinstance(avro, list) or kind in _JSON_KINDS:
            return nullable_converter(json_text)
        if logical == "decimal" and self.decimal_text:
            return nullable_converter(lambda v: format(v, "f"))
        if logical in ("timestamp-millis", "timestamp-micros") and self.naive_timestamps:
            return nullable_converter(to_naive_utc)
        if logical == "uuid":
            return nullable_converter(str)
        return None

    def column(self, field: dict[str, Any], *, key: bool, evolving: bool) -> sa.Column[Any]:
        """The column for ``field``: NOT NULL and in the primary key when ``key``."""
        return sa.Column(
            column_name(field),
            self.column_type(field, key=key),
            primary_key=key,
            nullable=not key and (evolving or unwrap(field["type"])[1]),
            autoincrement=False,
        )

    def columns(
        self, record_schema: dict[str, Any], key: list[str], *, evolving: bool
    ) -> list[sa.Column[Any]]:
        """The columns of a new table for ``record_schema``, ``key`` the key's column names."""
        return [
            self.column(f, key=column_name(f) in key, evolving=evolving)
            for f in record_schema.get("fields", [])
        ]


class PostgresTypes(TypeMapper):
    dialects = ("postgresql",)


class MariaDbTypes(TypeMapper):
    dialects = ("mysql", "mariadb")
    naive_timestamps = True
    collated_text = True

    def __init__(
        self,
        record_schema: dict[str, Any] | None = None,
        *,
        exact_copy: bool = False,
        text_collation: str | None = None,
    ) -> None:
        super().__init__(record_schema, exact_copy=exact_copy)
        self.text_collation = text_collation

    def exact(self, sql_type: TypeEngine[Any]) -> TypeEngine[Any]:
        return collation.exact_type(sql_type, self.text_collation)


class SqliteTypes(TypeMapper):
    dialects = ("sqlite",)
    exact_numeric = False
    naive_timestamps = True


def type_mapper(
    conn: sa.Connection, record_schema: dict[str, Any] | None = None, *, exact_copy: bool = False
) -> TypeMapper:
    """The mapper of ``conn``'s database (MariaDB/MySQL: with the server's exact collation)."""
    name = conn.dialect.name
    if name in MariaDbTypes.dialects:
        exact = collation.exact_collation(conn)
        return MariaDbTypes(record_schema, exact_copy=exact_copy, text_collation=exact)
    for cls in (PostgresTypes, SqliteTypes):
        if name in cls.dialects:
            return cls(record_schema, exact_copy=exact_copy)
    return TypeMapper(record_schema, exact_copy=exact_copy)
