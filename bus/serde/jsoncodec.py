"""JSON values to the Python values fastavro expects, walking the schema (and back for output).

Decimals come as strings or numbers, dates as ``YYYY-MM-DD``, timestamps as ISO 8601 with a
zone (or epoch milliseconds), bytes as base64. Text is normalised to NFC. Errors name the field
path and what was expected, never the value.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import json
import unicodedata
import uuid
from typing import Any

from bus.envelope import to_jsonable
from bus.errors import DataError

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _names(schema: Any, out: dict[str, Any], namespace: str = "") -> None:
    if isinstance(schema, list):
        for branch in schema:
            _names(branch, out, namespace)
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
                _names(field["type"], out, namespace)
        elif kind == "array":
            _names(schema["items"], out, namespace)
        elif kind == "map":
            _names(schema["values"], out, namespace)
        elif isinstance(kind, dict | list):
            _names(kind, out, namespace)


class JsonToAvro:
    """Converts JSON records for one schema; build once, call per record."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.named: dict[str, Any] = {}
        _names(schema, self.named)

    def __call__(self, value: Any) -> Any:
        return self._convert(value, self.schema, "")

    def _fail(self, path: str, expected: str) -> DataError:
        return DataError(f"{path or '(record)'}: expected {expected}")

    def _convert(self, value: Any, schema: Any, path: str) -> Any:
        if isinstance(schema, str):
            if schema in self.named:
                return self._convert(value, self.named[schema], path)
            return self._primitive(value, schema, None, path)
        if isinstance(schema, list):
            if value is None:
                if "null" in schema:
                    return None
                raise self._fail(path, "a value (the field is not nullable)")
            branches = [b for b in schema if b != "null"]
            if len(branches) == 1:
                return self._convert(value, branches[0], path)
            for branch in branches:
                try:
                    return self._convert(value, branch, path)
                except DataError:
                    continue
            raise self._fail(path, " or ".join(self._label(b) for b in schema if b != "null"))
        kind = schema.get("type")
        if isinstance(kind, dict | list):
            return self._convert(value, kind, path)
        if kind in ("record", "error"):
            if not isinstance(value, dict):
                raise self._fail(path, f"an object (record {schema.get('name')})")
            known = {f["name"] for f in schema["fields"]}
            extra = sorted(set(value) - known)
            if extra:
                where = f"{path}." if path else ""
                raise DataError(f"{where}{extra[0]}: not a field of record {schema.get('name')}")
            out = {}
            for field in schema["fields"]:
                sub = f"{path}.{field['name']}" if path else field["name"]
                if field["name"] in value:
                    out[field["name"]] = self._convert(value[field["name"]], field["type"], sub)
                elif "default" in field:
                    out[field["name"]] = field["default"]
                else:
                    raise self._fail(sub, f"a value ({self._label(field['type'])})")
            return out
        if kind == "enum":
            if value not in schema["symbols"]:
                raise self._fail(path, "one of " + ", ".join(schema["symbols"]))
            return value
        if kind == "array":
            if not isinstance(value, list):
                raise self._fail(path, "an array")
            return [self._convert(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
        if kind == "map":
            if not isinstance(value, dict):
                raise self._fail(path, "an object (map)")
            return {k: self._convert(v, schema["values"], f"{path}.{k}") for k, v in value.items()}
        if kind == "fixed":
            return self._bytes(value, path)
        return self._primitive(value, kind, schema.get("logicalType"), path, schema)

    def _label(self, schema: Any) -> str:
        if isinstance(schema, dict):
            return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
        return str(schema)

    def _bytes(self, value: Any, path: str) -> bytes:
        if isinstance(value, bytes):
            return value
        if not isinstance(value, str):
            raise self._fail(path, "base64 text")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise self._fail(path, "base64 text") from None

    def _primitive(
        self,
        value: Any,
        kind: str,
        logical: str | None,
        path: str,
        schema: dict[str, Any] | None = None,
    ) -> Any:
        if value is None:
            if kind == "null":
                return None
            raise self._fail(path, f"a value ({logical or kind})")
        if logical == "decimal":
            try:
                number = decimal.Decimal(str(value))
            except decimal.InvalidOperation:
                raise self._fail(path, "a decimal number") from None
            scale = int((schema or {}).get("scale", 0))
            precision = int((schema or {}).get("precision", 38))
            quantized = number.quantize(decimal.Decimal(1).scaleb(-scale))
            if quantized != number:
                raise self._fail(path, f"a decimal with at most {scale} digits after the point")
            if len(quantized.as_tuple().digits) > precision:
                raise self._fail(path, f"a decimal of at most {precision} digits")
            return quantized
        if logical == "date":
            if isinstance(value, str):
                try:
                    return dt.date.fromisoformat(value)
                except ValueError:
                    raise self._fail(path, "a date YYYY-MM-DD") from None
            raise self._fail(path, "a date YYYY-MM-DD")
        if logical in ("timestamp-millis", "timestamp-micros"):
            if isinstance(value, int) and not isinstance(value, bool):
                return _EPOCH + dt.timedelta(milliseconds=value)
            try:
                parsed = dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise self._fail(path, "an ISO 8601 timestamp with zone") from None
            if parsed.tzinfo is None:
                raise self._fail(path, "an ISO 8601 timestamp with zone (e.g. +07:00)")
            return parsed
        if logical in ("local-timestamp-millis", "local-timestamp-micros"):
            try:
                parsed = dt.datetime.fromisoformat(str(value))
            except ValueError:
                raise self._fail(path, "an ISO 8601 timestamp without zone") from None
            return parsed.replace(tzinfo=None)
        if logical == "uuid":
            try:
                return str(uuid.UUID(str(value)))
            except ValueError:
                raise self._fail(path, "a UUID") from None
        if kind == "string":
            if not isinstance(value, str):
                raise self._fail(path, "text")
            return unicodedata.normalize("NFC", value)
        if kind in ("int", "long"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise self._fail(path, f"an integer ({kind})")
            limit = 2**31 if kind == "int" else 2**63
            if not -limit <= value < limit:
                raise self._fail(path, f"an integer in the {kind} range")
            return value
        if kind in ("float", "double"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self._fail(path, "a number")
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                raise self._fail(path, "true or false")
            return value
        if kind == "bytes":
            return self._bytes(value, path)
        if kind == "null":
            raise self._fail(path, "null")
        raise self._fail(path, f"a value of type {kind}")


def dumps(record: Any) -> str:
    """One JSON line for a decoded record (decimals as strings, times in ISO 8601)."""
    return json.dumps(to_jsonable(record), ensure_ascii=False, separators=(",", ":"))
