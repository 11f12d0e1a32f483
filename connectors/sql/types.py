"""SQL column types to Avro, value converters, Avro-safe names and ``schema.table`` names.

A reflected SQLAlchemy type becomes an Avro type and a converter from the driver's value to
what fastavro expects (key text byte-exact, other text NFC, see ``bus.text``; decimals at
their scale, timestamps with or without zone). The other way, Avro to a new column, is
``connectors.sql.typemap``. Field names that Avro refuses (Vietnamese letters, spaces,
quotes) are transliterated; the database name is kept in ``sqlName``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql
from sqlalchemy.types import TypeEngine

from bus.envelope import to_jsonable
from bus.errors import DataError, InvalidNameError
from bus.text import exact as exact_text
from bus.text import nfc as nfc_text
from bus.timeutil import to_epoch_ms

Converter = Callable[[Any], Any]
SQL_NAME = "sqlName"
SQL_LENGTH = "sqlLength"


@dataclass(frozen=True)
class AvroMapping:
    """How one column travels: its Avro type, a converter (or None) and whether it orders."""

    avro: Any
    convert: Converter | None
    orderable: bool
    length: int | None = None


# ---- names ------------------------------------------------------------------------------------

_NOT_NAME = re.compile(r"[^A-Za-z0-9_]+")


def ascii_fold(text: str) -> str:
    """Vietnamese (and other) letters without their marks: ``Họ tên`` -> ``Ho ten``."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def avro_name(name: str) -> str:
    """A valid Avro name for ``name`` (letters folded, other characters to ``_``)."""
    out = _NOT_NAME.sub("_", ascii_fold(name)).strip("_") or "col"
    if out[0].isdigit():
        out = "_" + out
    return out


def field_names(columns: Iterable[str]) -> dict[str, str]:
    """Column name -> unique Avro field name."""
    used: set[str] = set()
    out: dict[str, str] = {}
    for col in columns:
        base = avro_name(col)
        name, n = base, 2
        while name.lower() in used:
            name, n = f"{base}_{n}", n + 1
        used.add(name.lower())
        out[col] = name
    return out


def record_name(dataset: str) -> tuple[str, str]:
    """(namespace, name) of a dataset's record: ``tthc.dossier`` -> (``tthc``, ``Dossier``)."""
    domain, _, name = dataset.partition(".")
    camel = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return domain, camel or "Record"


_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def split_table(name: Any, field: str = "table", *, plain: bool = False) -> tuple[str | None, str]:
    """``table`` or ``schema.table`` -> (schema or None, table). ``plain``: each part a plain
    identifier (letters, digits and '_', not starting with a digit, at most 63 characters),
    as a table this bus creates under a person's chosen name must be; otherwise any name the
    database holds, quoted when used. A bad name is an ``InvalidNameError`` naming ``field``."""
    parts = name.split(".") if isinstance(name, str) else []
    if not 1 <= len(parts) <= 2 or not all(
        _PLAIN.fullmatch(p) if plain else p.strip() == p != "" for p in parts
    ):
        rule = (
            " made of letters, digits and '_' (starting with a letter or '_', at most 63 "
            "characters each)"
            if plain
            else ", each part without surrounding spaces"
        )
        raise InvalidNameError(f"{field}: expected 'table' or 'schema.table'{rule}, got {name!r}")
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


# ---- SQL -> Avro -------------------------------------------------------------


def _nfc(value: Any) -> str:
    """Text other than a key's: NFC (``bus.text``)."""
    return nfc_text(value if isinstance(value, str) else str(value))


def _exact(value: Any) -> str:
    """A key column's text: exactly as stored (``bus.text``)."""
    return exact_text(value if isinstance(value, str) else str(value))


def _decimal(scale: int) -> Converter:
    exp = decimal.Decimal(1).scaleb(-scale)

    def convert(value: Any) -> decimal.Decimal:
        if not isinstance(value, decimal.Decimal):
            value = decimal.Decimal(str(value))
        if not value.is_finite():  # PostgreSQL numeric 'NaN', 'Infinity'
            raise DataError("NaN or Infinity, which an Avro decimal cannot hold")
        return value.quantize(exp, rounding=decimal.ROUND_HALF_EVEN)

    return convert


class OutOfRangeDate(str):
    """A date or timestamp the database holds but Python's cannot (PostgreSQL ``infinity``,
    a date BC or after 9999), as the server wrote it: read as this marker, refused per row."""


# a MariaDB/MySQL driver returns a zero or invalid date ('0000-00-00', '2024-00-10') as text
_NOT_A_DATE = "a zero or invalid date (as MariaDB/MySQL allow), which no date type can hold"
_OUT_OF_RANGE = "a date outside the years 1 to 9999 (infinity, BC), which Avro dates cannot hold"


def _date_like(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value
    raise DataError(_OUT_OF_RANGE if isinstance(value, OutOfRangeDate) else _NOT_A_DATE)


def _aware(value: Any) -> dt.datetime:
    value = _date_like(value)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)


def to_naive_utc(value: Any) -> dt.datetime:
    value = _date_like(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    return dt.datetime.combine(value, dt.time())


def _date(value: Any) -> dt.date:
    value = _date_like(value)
    return value.date() if isinstance(value, dt.datetime) else value


def _time(value: Any) -> dt.time:
    if isinstance(value, dt.timedelta):  # MySQL TIME
        seconds = int(value.total_seconds()) % 86400
        return dt.time(seconds // 3600, seconds % 3600 // 60, seconds % 60, value.microseconds)
    return value


def _bytes(value: Any) -> bytes:
    return bytes(value)


def _json(value: Any) -> str:
    if not isinstance(value, str):
        value = json.dumps(
            to_jsonable(value), ensure_ascii=False, sort_keys=True, separators=(",", ":")
        )
    return _nfc(value)


def _uuid(value: Any) -> str:
    return str(value) if isinstance(value, uuid.UUID) else str(uuid.UUID(str(value)))


_TEXTUAL = ("INET", "CIDR", "MACADDR", "MACADDR8", "CITEXT", "SET", "XML")
_UNSUPPORTED = (sa.Interval, sa.ARRAY, postgresql.HSTORE, postgresql.TSVECTOR)


def avro_for(
    sql_type: TypeEngine[Any], *, sqlite: bool = False, key: bool = False
) -> AvroMapping | None:
    """The mapping of a reflected type, or None when it has no faithful Avro form; ``key``: a
    primary-key column, whose text is carried byte-exactly (other text becomes NFC)."""
    t = sql_type
    text_convert = _exact if key else _nfc
    if isinstance(t, _UNSUPPORTED) or isinstance(t, sa.types.NullType):
        return None
    if isinstance(t, mysql.TINYINT) and getattr(t, "display_width", None) == 1:
        return AvroMapping("boolean", bool, False)
    if isinstance(t, sa.Boolean) or (isinstance(t, mysql.BIT) and getattr(t, "length", 1) == 1):
        return AvroMapping("boolean", bool, False)
    if isinstance(t, sa.Integer):
        unsigned = bool(getattr(t, "unsigned", False))
        if isinstance(t, sa.BigInteger):
            if unsigned:
                return AvroMapping(
                    {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0},
                    _decimal(0),
                    True,
                )
            return AvroMapping("long", None, True)
        small = isinstance(t, sa.SmallInteger | mysql.TINYINT)
        if sqlite or (unsigned and not small):
            return AvroMapping("long", None, True)
        return AvroMapping("int", None, True)
    if isinstance(t, mysql.YEAR):
        return AvroMapping("int", None, True)
    if isinstance(t, sa.Float):
        return AvroMapping("double", float, False)
    if isinstance(t, sa.Numeric):
        precision, scale = t.precision, t.scale
        if precision is None:
            return AvroMapping("string", lambda v: format(decimal.Decimal(str(v)), "f"), False)
        scale = scale or 0
        avro = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
        return AvroMapping(avro, _decimal(scale), True)
    if isinstance(t, sa.DateTime):
        unit = "micros" if fraction_digits(t) > 3 else "millis"
        if getattr(t, "timezone", False):
            return AvroMapping({"type": "long", "logicalType": f"timestamp-{unit}"}, _aware, True)
        return AvroMapping(
            {"type": "long", "logicalType": f"local-timestamp-{unit}"}, to_naive_utc, True
        )
    if isinstance(t, sa.Date):
        return AvroMapping({"type": "int", "logicalType": "date"}, _date, True)
    if isinstance(t, sa.Time):
        return AvroMapping({"type": "int", "logicalType": "time-millis"}, _time, False)
    if isinstance(t, sa.Uuid):
        return AvroMapping({"type": "string", "logicalType": "uuid"}, _uuid, False)
    if isinstance(t, sa.JSON):
        return AvroMapping("string", _json, False)
    if isinstance(t, mysql.SET):  # the driver's set of members: as the server writes them
        return AvroMapping("string", _set_text(t.values, text_convert), False)
    if isinstance(t, sa.String):
        length = getattr(t, "length", None)
        return AvroMapping("string", text_convert, False, length)
    if isinstance(t, sa.types._Binary):
        return AvroMapping("bytes", _bytes, False)
    if type(t).__name__.upper() in _TEXTUAL:
        return AvroMapping("string", text_convert, False)
    return None


def _set_text(members: tuple[str, ...], text: Converter) -> Converter:
    """A MariaDB/MySQL SET value as its text (members in the column's order, comma
    separated), whether the driver gave the text or a Python set of members."""

    def convert(value: Any) -> Any:
        if isinstance(value, set | frozenset):
            value = ",".join(m for m in members if m in value)
        return text(value)

    return convert


def fraction_digits(sql_type: TypeEngine[Any]) -> int:
    """Digits of a second a timestamp column keeps: MySQL/MariaDB ``fsp`` (0 by default),
    PostgreSQL ``precision`` (6 by default), 6 elsewhere (SQLite keeps what it is given)."""
    if isinstance(sql_type, mysql.DATETIME | mysql.TIMESTAMP):
        return int(sql_type.fsp or 0)
    precision = getattr(sql_type, "precision", None)
    return 6 if precision is None else int(precision)


def nullable_converter(convert: Converter | None) -> Converter | None:
    if convert is None:
        return None

    def wrapped(value: Any) -> Any:
        return None if value is None else convert(value)

    return wrapped


def ts_ms(value: Any) -> int | None:
    """Milliseconds since the epoch of a date or datetime (naive read as UTC), else None."""
    if isinstance(value, dt.datetime):
        return to_epoch_ms(value)
    if isinstance(value, dt.date):
        return to_epoch_ms(dt.datetime.combine(value, dt.time()))
    return None
