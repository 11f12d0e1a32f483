"""Confluent wire framing: magic byte 0, 4-byte big-endian schema id, Avro binary."""

from __future__ import annotations

import struct

from bus.errors import DataError

MAGIC = 0
_HEADER = struct.Struct(">bI")


def frame(schema_id: int, payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + payload


HEADER_SIZE = _HEADER.size


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """(schema id, Avro payload); ``DataError`` when the bytes are not framed."""
    schema_id = framed_schema_id(data)
    return schema_id, memoryview(data)[HEADER_SIZE:]  # type: ignore[arg-type]


def framed_schema_id(data: bytes | None) -> int:
    """The schema id of framed bytes (the payload starts at ``HEADER_SIZE``); ``DataError``
    when the bytes are not framed."""
    if data is None:
        raise DataError("not framed: the message has no value (tombstone)")
    if len(data) < _HEADER.size:
        raise DataError(f"not framed: {len(data)} bytes, the header alone is 5")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DataError(f"not framed: magic byte {magic}, expected {MAGIC}")
    return int(schema_id)
