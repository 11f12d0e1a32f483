"""The canonical text form of a row, the same on PostgreSQL, MariaDB and SQLite.

A row's canonical string is its compared columns (sorted by name) rendered one by one and
joined by ``\\x1f`` (unit separator). Renderings, by column kind:

- ``int`` / ``bool``: decimal digits; booleans ``1`` / ``0`` (MariaDB stores them as TINYINT).
- ``decimal``: the plain value without trailing zeros (``1.50`` -> ``1.5``, ``2.00`` -> ``2``);
  a changed declared scale is reported by the schema check, a changed value by the row diff.
- ``float``: the shortest round-trip form (``0.1``, ``1e+16``; ``1.0`` -> ``1``).
- ``date``: ``YYYY-MM-DD``; ``datetime``: UTC, ``YYYY-MM-DD HH:MM:SS`` then ``.ffffff`` with
  trailing zeros removed (none when the microseconds are zero); naive values are taken as UTC.
- ``time``: ``HH:MM:SS`` with the same fraction rule.
- ``text``: NFC-normalised (``char``: trailing spaces removed); ``key_text``/``key_char``, the
  text of a primary key: the same without NFC, so that keys compare byte-exactly (an NFC and an
  NFD spelling are two keys, as on the bus); ``binary``: lowercase hex;
  ``json``: compact JSON with sorted keys; ``uuid``: lowercase.

NULL renders as the empty string for kinds that never render empty (numbers, dates, times,
booleans) and as ``\\x1e`` for the others, so that NULL and ``''`` stay different. In text
(``text``, ``char``, their key kinds and ``other``) the three control characters the form uses
are escaped (``\\x1d`` -> ``\\x1d0``, ``\\x1f`` -> ``\\x1d1``, ``\\x1e`` -> ``\\x1d2``), so that
no two different rows share a canonical string (``['a\\x1fb', 'c']`` and ``['a', 'b\\x1fc']``
would, unescaped).

The SQL renderings in ``bus.reconcile.dialects`` follow these rules as far as each database
can; where one cannot (NFC on MariaDB, float and JSON text on some pairs), a segment checksum
differs, its rows are fetched, and this module's Python comparison decides: slower, still right.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import unicodedata
import uuid
from collections.abc import Sequence
from typing import Any

from bus.timeutil import as_utc

SEP = "\x1f"
NULL_MARK = "\x1e"
ESC = "\x1d"

KINDS = ("int", "bool", "decimal", "float", "text", "char", "date", "datetime", "time")
KINDS += ("datetime_ms", "time_ms", "binary", "json", "uuid", "other", "key_text", "key_char")
# A primary key's text kinds: compared byte-exactly (no NFC)
KEY_KINDS = {"text": "key_text", "char": "key_char"}
# Kinds whose non-NULL rendering may be empty: their NULL gets a marker.
MARKED_KINDS = frozenset({"text", "char", "binary", "json", "uuid", "other", *KEY_KINDS.values()})
# Kinds whose rendering may hold any character: the form's control characters are escaped.
ESCAPED_KINDS = frozenset({"text", "char", "other", *KEY_KINDS.values()})

HASH_BITS = 60
MOD64 = 1 << 64


def _frac(microsecond: int) -> str:
    return "." + f"{microsecond:06d}".rstrip("0") if microsecond else ""


def _decimal_text(value: decimal.Decimal) -> str:
    if not value.is_finite():
        return str(value)
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def _float_text(value: float) -> str:
    if value != value:  # NaN
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    text = repr(float(value))
    if text.endswith(".0"):
        text = text[:-2]
    if text == "-0":
        text = "0"
    return text


def _as_utc_naive(value: dt.datetime) -> dt.datetime:
    """UTC without zone; a naive value is UTC already (kept as is: SQLite hashes every row)."""
    return value if value.tzinfo is None else as_utc(value).replace(tzinfo=None)


def _datetime_text(value: dt.datetime) -> str:
    value = _as_utc_naive(value)
    return value.strftime("%Y-%m-%d %H:%M:%S") + _frac(value.microsecond)


def _parse_datetime(text: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None


def _time_text(value: Any) -> str:
    if isinstance(value, dt.timedelta):  # MariaDB TIME through PyMySQL
        total_us = value.days * 86_400_000_000 + value.seconds * 1_000_000 + value.microseconds
        sign = "-" if total_us < 0 else ""
        total_us = abs(total_us)
        seconds, micro = divmod(total_us, 1_000_000)
        hours, rest = divmod(seconds, 3600)
        return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}" + _frac(micro)
    if isinstance(value, dt.time):
        return value.strftime("%H:%M:%S") + _frac(value.microsecond)
    if isinstance(value, str):
        try:
            return _time_text(dt.time.fromisoformat(value.strip()))
        except ValueError:
            return value
    return str(value)


def _json_text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("utf-8", "replace")
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return unicodedata.normalize("NFC", value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _truncate_ms(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.time):
        return value.replace(microsecond=value.microsecond - value.microsecond % 1000)
    if isinstance(value, dt.timedelta):
        return value - dt.timedelta(microseconds=value.microseconds % 1000)
    if isinstance(value, str):
        parsed = _parse_datetime(value)
        if parsed is not None:
            return _truncate_ms(parsed)
        try:
            return _truncate_ms(dt.time.fromisoformat(value.strip()))
        except ValueError:
            return value
    return value


def canon(value: Any, kind: str) -> str | None:
    """The canonical text of one value of a column of ``kind`` (None for NULL).

    ``datetime_ms`` and ``time_ms`` are ``datetime`` and ``time`` cut to milliseconds (the
    precision of the bus's Avro timestamps), used when comparing a connector's copies.
    """
    if value is None:
        return None
    if kind in ("datetime_ms", "time_ms"):
        return canon(_truncate_ms(value), kind[:-3])
    if kind in ("int", "bool"):
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, decimal.Decimal | float):
            return _decimal_text(
                decimal.Decimal(repr(value) if isinstance(value, float) else value)
            )
        if isinstance(value, str):
            try:
                return str(int(value.strip()))
            except ValueError:
                return value
        return str(value)
    if kind == "decimal":
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float):
            return _decimal_text(decimal.Decimal(repr(value)))
        if isinstance(value, decimal.Decimal):
            return _decimal_text(value)
        try:
            return _decimal_text(decimal.Decimal(str(value).strip()))
        except decimal.InvalidOperation:
            return str(value)
    if kind == "float":
        if isinstance(value, bool):
            return "1" if value else "0"
        if isinstance(value, int | float | decimal.Decimal):
            return _float_text(float(value))
        try:
            return _float_text(float(str(value)))
        except ValueError:
            return str(value)
    if kind in ("text", "char", "key_text", "key_char"):
        if isinstance(value, bytes | bytearray | memoryview):
            value = bytes(value).decode("utf-8", "replace")
        text = value if isinstance(value, str) else str(value)
        if not kind.startswith("key_"):
            text = unicodedata.normalize("NFC", text)
        return text.rstrip(" ") if kind.endswith("char") else text
    if kind == "date":
        if isinstance(value, dt.datetime):
            return _as_utc_naive(value).date().isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip()[:10]).isoformat()
            except ValueError:
                return value
        return str(value)
    if kind == "datetime":
        if isinstance(value, dt.datetime):
            return _datetime_text(value)
        if isinstance(value, dt.date):
            return value.isoformat() + " 00:00:00"
        if isinstance(value, str):
            parsed = _parse_datetime(value)
            return _datetime_text(parsed) if parsed is not None else value
        if isinstance(value, int | float):
            return _datetime_text(dt.datetime.fromtimestamp(value, dt.UTC))
        return str(value)
    if kind == "time":
        return _time_text(value)
    if kind == "binary":
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value).hex()
        if isinstance(value, str):
            return value.encode("utf-8").hex()
        return str(value)
    if kind == "json":
        return _json_text(value)
    if kind == "uuid":
        return str(value).lower()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    return str(value)


def escape(text: str) -> str:
    """``text`` with the canonical form's separator, NULL marker and escape escaped."""
    if ESC in text or SEP in text or NULL_MARK in text:
        return text.replace(ESC, ESC + "0").replace(SEP, ESC + "1").replace(NULL_MARK, ESC + "2")
    return text


def render(value: Any, kind: str) -> str:
    """One column's part of the canonical string (NULL as ``''`` or the marker)."""
    text = canon(value, kind)
    if text is None:
        return NULL_MARK if kind in MARKED_KINDS else ""
    return escape(text) if kind in ESCAPED_KINDS else text


def row_string(values: Sequence[Any], kinds: Sequence[str]) -> str:
    """The canonical string of a row: each column rendered, joined by the unit separator."""
    return SEP.join(render(v, k) for v, k in zip(values, kinds, strict=True))


def md5_60(text: str) -> int:
    """The portable row hash: the first 60 bits of the MD5 of the UTF-8 text."""
    return int(hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:15], 16)


def fold(total: Any) -> int:
    """A database's sum of hashes, reduced to 64 bits, so that every dialect compares alike."""
    if total is None:
        return 0
    if isinstance(total, str | bytes):
        total = int(total)
    return int(total) % MOD64
