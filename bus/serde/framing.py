"""Confluent wire framing: magic byte 0, 4-byte big-endian schema id, Avro binary."""

from __future__ import annotations

import struct

from bus.errors import DataError

MAGIC = 0
_HEADER = struct.Struct(">bI")


def frame(schema_id: int, payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + payload


def unframe(data: bytes | None) -> tuple[int, memoryview]:
    """(schema id, Avro payload); ``DataError`` when the bytes are not framed."""
    if data is None:
        raise DataError("not framed: the message has no value (tombstone)")
    if len(data) < _HEADER.size:
        raise DataError(f"not framed: {len(data)} bytes, the header alone is 5")
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DataError(f"not framed: magic byte {magic}, expected {MAGIC}")
    return schema_id, memoryview(data)[_HEADER.size :]
