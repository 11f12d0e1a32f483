"""JSON values to the Python values fastavro expects (and back for output).

A schema is compiled once into one function per type, so converting a record walks no schema.
Decimals come as strings or numbers, dates as ``YYYY-MM-DD``, timestamps as ISO 8601 with a
zone (or epoch milliseconds), bytes as base64. Text is normalised to NFC, except in the
fields of the record's primary key, carried byte-exactly (``bus.text``); text that is not valid
UTF-8 is refused. With ``native=True``
the values a database driver returns are taken too (see ``JsonToAvro``). Errors name the field
path and what was expected, never the value.
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

from bus.envelope import to_jsonable
from bus.errors import DataError
from bus.text import NOT_UTF8
from bus.text import exact as exact_text
from bus.text import nfc as nfc_text
from bus.timeutil import from_epoch_ms

_PRIMITIVE_TYPES = frozenset(
    ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
)
Converter = Callable[[Any], Any]


def _relocate(exc: DataError, marker: str, actual: str) -> DataError:
    """``exc`` with the path placeholder ``marker`` (an item or map value) made concrete."""
    text = str(exc)
    if text.startswith(marker):
        text = actual + text[len(marker) :]
    return DataError(text)


def named_types(schema: Any, out: dict[str, Any], namespace: str = "") -> None:
    """Collect every named type (record, enum, fixed) of ``schema`` into ``out`` by full and
    short name."""
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, out, namespace)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            name = schema["name"]
            ns = schema.get("namespace", namespace)
            full = name if "." in name or not ns else f"{ns}.{name}"
            out[full] = schema
            out.setdefault(name.rpartition(".")[2], schema)
            namespace = full.rpartition(".")[0]
        if kind in ("record", "error"):
            for field in schema.get("fields", []):
                named_types(field["type"], out, namespace)
        elif kind == "array":
            named_types(schema["items"], out, namespace)
        elif kind == "map":
            named_types(schema["values"], out, namespace)
        elif isinstance(kind, dict | list):
            named_types(kind, out, namespace)


class JsonToAvro:
    """Converts records for one schema; build once, call per record.

    The schema is compiled once into one small function per type (no schema walk per value).
    ``native=True`` also takes the Python values a database driver returns: ``Decimal`` for
    integers and doubles, ``date`` and ``datetime`` (a naive one is UTC), ``time`` or
    ``timedelta`` for times, 0/1 for booleans, ``bytearray``/``memoryview`` for bytes, tuples
    for arrays. JSON values are taken in both modes.
    """

    def __init__(
        self, schema: Any, *, native: bool = False, key_fields: list[str] | None = None
    ) -> None:
        self.schema = schema
        self.native = native
        if key_fields is None and isinstance(schema, dict):
            key_fields = schema.get("primary_key")
        # the top record's key fields: their text is exact, not NFC
        self.key_fields = frozenset(key_fields or ())
        self.named: dict[str, Any] = {}
        named_types(schema, self.named)
        self._active: set[int] = set()  # records being compiled (a recursive type is lazy)
        self._root = self.compile(schema)

    def __call__(self, value: Any) -> Any:
        return self._root(value)

    def field(self, name: str) -> Converter:
        """The converter of one field of the (record) schema; errors start with its name."""
        for field in self.schema.get("fields", []) if isinstance(self.schema, dict) else []:
            if field["name"] == name:
                return self.compile(field["type"], name, exact=name in self.key_fields)
        raise KeyError(name)

    def resolve(self, schema: Any) -> Any:
        """A named type's definition (other types as they are)."""
        while isinstance(schema, str) and schema in self.named:
            schema = self.named[schema]
        return schema

    def _fail(self, path: str, expected: str) -> DataError:
        return DataError(f"{path or '(record)'}: expected {expected}")

    def _label(self, schema: Any) -> str:
        if isinstance(schema, dict):
            return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
        return str(schema)

    # ---- compiling -----------------------------------------------------------------------
    def compile(self, schema: Any, path: str = "", *, exact: bool = False) -> Converter:
        """A converter for ``schema`` (a type within this converter's schema); ``exact``: text
        is kept as it is (a key field), not normalised to NFC."""
        if isinstance(schema, str):
            if schema in self.named:
                return self.compile(self.named[schema], path, exact=exact)
            return self._primitive(schema, None, path, None, exact)
        if isinstance(schema, list):
            return self._union(schema, path, exact)
        kind = schema.get("type")
        if isinstance(kind, dict | list):
            return self.compile(kind, path, exact=exact)
        if kind in ("record", "error"):
            return self._record(schema, path)
        if kind == "enum":
            return self._enum(schema, path)
        if kind == "array":
            return self._array(schema, path)
        if kind == "map":
            return self._map(schema, path)
        if kind == "fixed":
            return self._bytes(path)
        if isinstance(kind, str) and kind not in _PRIMITIVE_TYPES and kind in self.named:
            return self.compile(self.named[kind], path, exact=exact)
        return self._primitive(kind, schema.get("logicalType"), path, schema, exact)

    def _union(self, schema: list[Any], path: str, exact: bool = False) -> Converter:
        nullable = "null" in schema
        branches = [b for b in schema if b != "null"]
        not_null = self._fail(path, "a value (the field is not nullable)")
        if len(branches) == 1:
            inner = self.compile(branches[0], path, exact=exact)
            if nullable:
                return lambda value: None if value is None else inner(value)

            def required(value: Any) -> Any:
                if value is None:
                    raise DataError(str(not_null))
                return inner(value)

            return required
        inners = [self.compile(b, path, exact=exact) for b in branches]
        expected = " or ".join(self._label(b) for b in branches)

        def first_match(value: Any) -> Any:
            if value is None:
                if nullable:
                    return None
                raise DataError(str(not_null))
            for inner in inners:
                try:
                    return inner(value)
                except DataError:
                    continue
            raise self._fail(path, expected)

        return first_match

    def _record(self, schema: dict[str, Any], path: str) -> Converter:
        if id(schema) in self._active:  # recursive: compile one level more when reached
            cell: list[Converter] = []

            def lazy(value: Any) -> Any:
                if not cell:
                    cell.append(self._record(schema, path))
                return cell[0](value)

            return lazy
        self._active.add(id(schema))
        try:
            name = schema.get("name")
            fields = []
            for field in schema["fields"]:
                sub = f"{path}.{field['name']}" if path else field["name"]
                fields.append(
                    (
                        field["name"],
                        self.compile(
                            field["type"], sub, exact=not path and field["name"] in self.key_fields
                        ),
                        "default" in field,
                        field.get("default"),
                        f"{sub}: expected a value ({self._label(field['type'])})",
                    )
                )
        finally:
            self._active.discard(id(schema))
        known = frozenset(f[0] for f in fields)
        where = f"{path}." if path else ""
        not_object = f"an object (record {name})"

        def record(value: Any) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise self._fail(path, not_object)
            if not known.issuperset(value):
                extra = sorted(set(value) - known)
                raise DataError(f"{where}{extra[0]}: not a field of record {name}")
            out = {}
            for fname, convert, has_default, default, missing in fields:
                if fname in value:
                    out[fname] = convert(value[fname])
                elif has_default:
                    out[fname] = (
                        copy.deepcopy(default) if isinstance(default, list | dict) else default
                    )
                else:
                    raise DataError(missing)
            return out

        return record

    def _enum(self, schema: dict[str, Any], path: str) -> Converter:
        symbols = frozenset(schema["symbols"])
        error = str(self._fail(path, "one of " + ", ".join(schema["symbols"])))

        def enum(value: Any) -> Any:
            if isinstance(value, str) and value in symbols:
                return value
            raise DataError(error)

        return enum

    def _array(self, schema: dict[str, Any], path: str) -> Converter:
        marker = f"{path}[]"
        item = self.compile(schema["items"], marker)
        allowed = (list, tuple) if self.native else list

        def array(value: Any) -> list[Any]:
            if not isinstance(value, allowed):
                raise self._fail(path, "an array")
            out = []
            for i, v in enumerate(value):
                try:
                    out.append(item(v))
                except DataError as exc:
                    raise _relocate(exc, marker, f"{path}[{i}]") from None
            return out

        return array

    def _map(self, schema: dict[str, Any], path: str) -> Converter:
        marker = f"{path}.\x00"
        values = self.compile(schema["values"], marker)

        def mapping(value: Any) -> dict[str, Any]:
            if not isinstance(value, dict):
                raise self._fail(path, "an object (map)")
            out = {}
            for k, v in value.items():
                try:
                    out[k] = values(v)
                except DataError as exc:
                    raise _relocate(exc, marker, f"{path}.{k}") from None
            return out

        return mapping

    def _bytes(self, path: str) -> Converter:
        error = str(self._fail(path, "base64 text"))
        native = self.native

        def to_bytes(value: Any) -> bytes:
            if isinstance(value, bytes):
                return value
            if native and isinstance(value, bytearray | memoryview):
                return bytes(value)
            if not isinstance(value, str):
                raise DataError(error)
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise DataError(error) from None

        return to_bytes

    def _primitive(
        self,
        kind: Any,
        logical: str | None,
        path: str,
        schema: dict[str, Any] | None,
        exact: bool = False,
    ) -> Converter:
        """A converter of a primitive or logical type; ``None`` is refused (unless ``null``)."""
        if kind == "null":
            error = str(self._fail(path, "null"))

            def null(value: Any) -> None:
                if value is not None:
                    raise DataError(error)

            return null
        fail = self._fail
        absent = str(fail(path, f"a value ({logical or kind})"))
        native = self.native
        convert: Converter
        # the common types check for None themselves (one call per value, not two)
        if logical == "decimal":
            return self._decimal(schema or {}, path, absent)
        if logical == "date":
            return self._date(path, absent)
        if logical in ("timestamp-millis", "timestamp-micros"):
            return self._timestamp(path, absent)
        if kind in ("int", "long") and logical is None:
            return self._integer(kind, path, absent)
        text = exact_text if exact else nfc_text
        if kind == "string" and logical is None:
            error = str(fail(path, "text"))
            not_utf8 = f"{path or '(record)'}: {NOT_UTF8}"

            def string(value: Any) -> str:
                if isinstance(value, str):
                    if value.isascii():
                        return value
                    try:
                        return text(value)
                    except DataError:
                        raise DataError(not_utf8) from None
                raise DataError(absent if value is None else error)

            return string
        if logical in ("local-timestamp-millis", "local-timestamp-micros"):
            convert = self._local_timestamp(path)
        elif logical == "uuid":
            error = str(fail(path, "a UUID"))

            def convert(value: Any) -> str:
                try:
                    return str(uuid.UUID(str(value)))
                except ValueError:
                    raise DataError(error) from None

        elif logical in ("time-millis", "time-micros") and native:
            convert = self._time(kind, path)
        elif kind == "string":  # an unknown logical type on text
            error = str(fail(path, "text"))
            not_utf8 = f"{path or '(record)'}: {NOT_UTF8}"

            def convert(value: Any) -> str:
                if not isinstance(value, str):
                    raise DataError(error)
                try:
                    return text(value)
                except DataError:
                    raise DataError(not_utf8) from None

        elif kind in ("int", "long"):
            convert = self._integer(kind, path, absent)
        elif kind in ("float", "double"):
            error = str(fail(path, "a number"))

            def convert(value: Any) -> float:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    if native and isinstance(value, decimal.Decimal):
                        return float(value)
                    raise DataError(error)
                return float(value)

        elif kind == "boolean":
            error = str(fail(path, "true or false"))

            def convert(value: Any) -> bool:
                if isinstance(value, bool):
                    return value
                if native and type(value) is int and value in (0, 1):
                    return value == 1
                raise DataError(error)

        elif kind == "bytes":
            convert = self._bytes(path)
        else:
            error = str(fail(path, f"a value of type {kind}"))

            def convert(value: Any) -> Any:
                raise DataError(error)

        inner = convert

        def not_none(value: Any) -> Any:
            if value is None:
                raise DataError(absent)
            return inner(value)

        return not_none

    def _decimal(self, schema: dict[str, Any], path: str, absent: str) -> Converter:
        scale = int(schema.get("scale", 0))
        precision = int(schema.get("precision", 38))
        exp = decimal.Decimal(1).scaleb(-scale)
        not_number = str(self._fail(path, "a decimal number"))
        too_fine = str(self._fail(path, f"a decimal with at most {scale} digits after the point"))
        too_long = str(self._fail(path, f"a decimal of at most {precision} digits"))

        def convert(value: Any) -> decimal.Decimal:
            try:
                number = value if type(value) is decimal.Decimal else decimal.Decimal(str(value))
            except decimal.InvalidOperation:
                raise DataError(absent if value is None else not_number) from None
            try:
                quantized = number.quantize(exp)
                lossy = quantized != number
            except decimal.InvalidOperation:
                raise DataError(too_long) from None
            if lossy:
                raise DataError(too_fine)
            if len(quantized.as_tuple().digits) > precision:
                raise DataError(too_long)
            return quantized

        return convert

    def _date(self, path: str, absent: str) -> Converter:
        error = str(self._fail(path, "a date YYYY-MM-DD"))
        native = self.native

        def convert(value: Any) -> dt.date:
            if isinstance(value, str):
                try:
                    return dt.date.fromisoformat(value)
                except ValueError:
                    raise DataError(error) from None
            if native and isinstance(value, dt.date):
                return value.date() if isinstance(value, dt.datetime) else value
            raise DataError(absent if value is None else error)

        return convert

    def _timestamp(self, path: str, absent: str) -> Converter:
        bad = str(self._fail(path, "an ISO 8601 timestamp with zone"))
        naive = str(self._fail(path, "an ISO 8601 timestamp with zone (e.g. +07:00)"))
        native = self.native

        def convert(value: Any) -> dt.datetime:
            if isinstance(value, dt.datetime):
                if value.tzinfo is not None:
                    return value
                if native:  # a database's timestamp without zone is UTC
                    return value.replace(tzinfo=dt.UTC)
                raise DataError(naive)
            if isinstance(value, str):
                try:
                    parsed = dt.datetime.fromisoformat(value)
                except ValueError:
                    raise DataError(bad) from None
                if parsed.tzinfo is None:
                    raise DataError(naive)
                return parsed
            if isinstance(value, int) and not isinstance(value, bool):
                try:
                    return from_epoch_ms(value)
                except OverflowError:
                    raise DataError(bad) from None
            if value is None:
                raise DataError(absent)
            if native and isinstance(value, dt.date):
                return dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC)
            try:
                parsed = dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise DataError(bad) from None
            if parsed.tzinfo is None:
                raise DataError(naive)
            return parsed

        return convert

    def _local_timestamp(self, path: str) -> Converter:
        error = str(self._fail(path, "an ISO 8601 timestamp without zone"))
        native = self.native

        def convert(value: Any) -> dt.datetime:
            if native and isinstance(value, dt.date):
                if not isinstance(value, dt.datetime):
                    return dt.datetime.combine(value, dt.time())
                if value.tzinfo is not None:
                    return value.astimezone(dt.UTC).replace(tzinfo=None)
                return value
            try:
                parsed = dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise DataError(error) from None
            return parsed.replace(tzinfo=None)

        return convert

    def _time(self, kind: str, path: str) -> Converter:
        integer = self._integer(kind, path, str(self._fail(path, f"a value ({kind})")))
        error = str(self._fail(path, "a time of day"))

        def convert(value: Any) -> Any:
            if isinstance(value, dt.time):
                return value
            if isinstance(value, dt.timedelta):  # MySQL TIME
                seconds = int(value.total_seconds())
                if not 0 <= seconds < 86400:
                    raise DataError(error)
                return dt.time(
                    seconds // 3600, seconds % 3600 // 60, seconds % 60, value.microseconds
                )
            if isinstance(value, str):
                try:
                    return dt.time.fromisoformat(value)
                except ValueError:
                    raise DataError(error) from None
            return integer(value)

        return convert

    def _integer(self, kind: str, path: str, absent: str) -> Converter:
        error = str(self._fail(path, f"an integer ({kind})"))
        out_of_range = str(self._fail(path, f"an integer in the {kind} range"))
        limit = 2**31 if kind == "int" else 2**63
        native = self.native

        def convert(value: Any) -> int:
            if type(value) is not int:
                if (
                    native
                    and isinstance(value, decimal.Decimal)
                    and value == value.to_integral_value()
                ):
                    value = int(value)
                elif isinstance(value, bool) or not isinstance(value, int):
                    raise DataError(absent if value is None else error)
            if not -limit <= value < limit:
                raise DataError(out_of_range)
            return value

        return convert


def dumps(record: Any) -> str:
    """One JSON line for a decoded record (decimals as strings, times in ISO 8601)."""
    return json.dumps(to_jsonable(record), ensure_ascii=False, separators=(",", ":"))
