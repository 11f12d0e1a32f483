"""Encode and decode records with registered schemas; errors name fields, never values."""

from __future__ import annotations

import io
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from bus.errors import DataError, NotFoundError
from bus.registry import Registry
from bus.serde.envelope_writer import EnvelopeWriter
from bus.serde.framing import HEADER_SIZE, frame, framed_schema_id


class UnknownSchemaError(DataError):
    """A record framed with a schema id the registry does not hold for the topic's subject
    (``schema_id`` None when the bytes are not framed at all)."""

    def __init__(self, message: str, schema_id: int | None) -> None:
        super().__init__(message)
        self.schema_id = schema_id


def _expected(schema: Any) -> str:
    if isinstance(schema, dict):
        logical = schema.get("logicalType")
        name = schema.get("name")
        kind = schema.get("type")
        if logical:
            return f"{kind} ({logical})"
        if kind == "enum":
            return f"one of {', '.join(schema.get('symbols', []))}"
        if kind in ("record", "error") and name:
            return f"record {name}"
        return str(kind)
    if isinstance(schema, list):
        return " or ".join(_expected(s) for s in schema)
    return str(schema)


def describe_validation_error(exc: ValidationError) -> str:
    """Field paths and expected types of every problem; the offending values are left out."""
    parts = []
    seen = set()
    errors = list(getattr(exc, "errors", []) or [])
    specific = [e for e in errors if getattr(e, "schema", None) != "null"]
    for err in specific or errors:
        field = getattr(err, "field", "") or "(record)"
        if field in seen:
            continue
        seen.add(field)
        parts.append(f"{field}: expected {_expected(getattr(err, 'schema', None))}")
    return "; ".join(parts) or "record does not match its schema"


class AvroCodec:
    """Validates (fastavro strict) and encodes records under a subject; decodes framed bytes."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._fast: dict[int, tuple[EnvelopeWriter, bytes] | None] = {}

    def validate(self, schema_id: int, record: dict[str, Any]) -> None:
        parsed = self.registry.parsed_by_id(schema_id)
        try:
            validate(record, parsed, raise_errors=True, strict=True)
        except ValidationError as exc:
            raise DataError(describe_validation_error(exc)) from None

    def encode(self, schema_id: int, record: dict[str, Any]) -> bytes:
        """Framed bytes of ``record``, written by fastavro in strict mode.

        The strict writer refuses missing and unknown fields, and fastavro validates every
        union branch it writes (the envelope's ``before``/``after`` records are unions), so a
        record that does not match never leaves; on failure the full validator runs once to
        name every offending field.
        """
        try:
            fast = self._fast[schema_id]
        except KeyError:
            writer = EnvelopeWriter.for_schema(self.registry.schema_by_id(schema_id))
            fast = None if writer is None else (writer, frame(schema_id, b""))
            self._fast[schema_id] = fast
        if fast is not None:
            try:
                return fast[0].write(record, fast[1])
            except Exception:  # the general writer below names the problem
                pass
        buf = io.BytesIO()
        try:
            schemaless_writer(
                buf,
                self.registry.parsed_by_id(schema_id),
                record,
                strict=True,
                strict_allow_default=True,
            )
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            self.validate(schema_id, record)  # raises DataError naming the fields
            raise DataError(f"cannot encode record ({type(exc).__name__})") from None
        return frame(schema_id, buf.getvalue())

    def decode(
        self, data: bytes | None, *, allowed_ids: set[int] | None = None, reader: Any = None
    ) -> tuple[int, dict[str, Any]]:
        """(schema id, record) of framed bytes; ``DataError`` for anything that does not fit."""
        schema_id = framed_schema_id(data)
        if allowed_ids is not None and schema_id not in allowed_ids:
            raise UnknownSchemaError(
                f"schema id {schema_id} is not a version of this topic's subject", schema_id
            )
        try:
            writer = self.registry.parsed_by_id(schema_id)
        except NotFoundError:
            raise UnknownSchemaError(f"unknown schema id {schema_id}", schema_id) from None
        stream = io.BytesIO(data)  # read after the header: no copy of the payload
        stream.seek(HEADER_SIZE)
        try:
            record = schemaless_reader(stream, writer, reader)
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise DataError(f"cannot decode Avro payload ({type(exc).__name__})") from None
        left = len(data) - stream.tell()  # type: ignore[arg-type]
        if left:
            raise DataError(f"cannot decode Avro payload ({left} trailing bytes)")
        return schema_id, record
