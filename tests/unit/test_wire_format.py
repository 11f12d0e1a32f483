"""The Confluent framing, checked by a decoder written here from the spec alone."""

from __future__ import annotations

import struct

import pytest

from bus.config import Settings
from bus.errors import DataError
from bus.registry import Registry
from bus.serde import AvroCodec, unframe

SCHEMA = {
    "type": "record",
    "name": "Mini",
    "namespace": "t",
    "fields": [{"name": "id", "type": "long"}, {"name": "ten", "type": "string"}],
}


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Avro long: zig-zag, little-endian base-128 varint."""
    shift = result = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return (result >> 1) ^ -(result & 1), pos


def spec_decode(data: bytes) -> tuple[int, int, str]:
    """Magic byte 0, 4-byte big-endian schema id, then Avro binary of {long id, string ten}."""
    assert data[0] == 0
    (schema_id,) = struct.unpack(">I", data[1:5])
    value, pos = _read_varint(data, 5)
    length, pos = _read_varint(data, pos)
    text = data[pos : pos + length].decode("utf-8")
    assert pos + length == len(data)
    return schema_id, value, text


def test_spec_decoder_reads_what_the_bus_wrote(offline_settings: Settings) -> None:
    reg = Registry(offline_settings)
    reg.register("other-value", {**SCHEMA, "name": "Other"})
    sid = reg.register("mini-value", SCHEMA).id
    assert sid == 2
    data = AvroCodec(reg).encode(sid, {"id": -123456789, "ten": "Phường Tân Định"})
    assert spec_decode(data) == (2, -123456789, "Phường Tân Định")


def test_round_trip_and_bad_frames(offline_settings: Settings) -> None:
    reg = Registry(offline_settings)
    sid = reg.register("mini-value", SCHEMA).id
    codec = AvroCodec(reg)
    data = codec.encode(sid, {"id": 7, "ten": "Bến Nghé"})
    assert codec.decode(data) == (sid, {"id": 7, "ten": "Bến Nghé"})
    with pytest.raises(DataError, match="magic byte 1"):
        codec.decode(b"\x01" + data[1:])
    with pytest.raises(DataError, match="header alone is 5"):
        unframe(b"\x00\x00")
    with pytest.raises(DataError, match="unknown schema id 99"):
        codec.decode(b"\x00" + struct.pack(">I", 99) + data[5:])
    with pytest.raises(DataError, match="cannot decode"):
        codec.decode(data[:-3])
    with pytest.raises(DataError, match="not a version of this topic"):
        codec.decode(data, allowed_ids={sid + 1})


def test_validation_error_names_field_not_value(offline_settings: Settings) -> None:
    reg = Registry(offline_settings)
    sid = reg.register("mini-value", SCHEMA).id
    with pytest.raises(DataError) as info:
        AvroCodec(reg).encode(sid, {"id": "079203001234", "ten": "Nguyễn Văn A"})
    message = str(info.value)
    assert "id" in message and "long" in message
    assert "079203001234" not in message and "Nguyễn" not in message
