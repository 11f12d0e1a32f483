"""A faster writer for envelope schemas, byte-identical to fastavro's full-schema writer.

Avro encodes a union as the branch index (a zig-zag varint) followed by the value, so an
envelope is written here as: event_id, op index, ts_ms and key by hand, the ``source`` record
through fastavro (cached per distinct source), and ``before``/``after`` as index + record
through fastavro in strict mode. Anything unexpected raises, and the caller falls back to
the general writer, which then names the problem. ``tests/unit/test_envelope_writer.py``
checks that both writers produce the same bytes.
"""

from __future__ import annotations

import io
from typing import Any

from fastavro import parse_schema, schemaless_writer

_FIELDS = ("event_id", "op", "ts_ms", "source", "key", "before", "after")


#: The one-byte varints (0..127), so small lengths and indexes need no loop.
_SMALL = tuple(bytes((i,)) for i in range(128))


def _zigzag(value: int) -> bytes:
    n = (value << 1) ^ (value >> 63)
    if 0 <= n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _remember(cache: dict[tuple, bytes], key: tuple, value: bytes) -> None:
    if len(cache) > 4096:
        cache.clear()
    cache[key] = value


class EnvelopeWriter:
    """Writes events of one envelope schema; ``for_schema`` returns None for other shapes."""

    def __init__(
        self, source: Any, record: Any, symbols: list[str], *, position_last: bool = False
    ) -> None:
        self._source = source
        self._record = record
        self._ops = {s: _zigzag(i) for i, s in enumerate(symbols)}
        self._sources: dict[tuple, bytes] = {}
        self._heads: dict[tuple, bytes] = {}
        # the source's last field is ``position: ["null", "string"]``: it changes with nearly
        # every event, so the rest of the source is cached and the position written by hand
        self._position_last = position_last

    @classmethod
    def for_schema(cls, schema: dict[str, Any]) -> EnvelopeWriter | None:
        fields = schema.get("fields", []) if isinstance(schema, dict) else []
        if tuple(f.get("name") for f in fields) != _FIELDS:
            return None
        types = {f["name"]: f["type"] for f in fields}
        op, source, before, after = types["op"], types["source"], types["before"], types["after"]
        if types["event_id"] != "string" or types["ts_ms"] != "long" or types["key"] != "string":
            return None
        if not (isinstance(op, dict) and op.get("type") == "enum"):
            return None
        if not (isinstance(source, dict) and source.get("type") == "record"):
            return None
        if not (isinstance(before, list) and len(before) == 2 and before[0] == "null"):
            return None
        record = before[1]
        if not (isinstance(record, dict) and record.get("type") == "record"):
            return None
        if not (isinstance(after, list) and len(after) == 2 and after[0] == "null"):
            return None
        full = record["name"] if "." in record["name"] else record.get("namespace", "")
        if after[1] not in (record["name"], full, f"{record.get('namespace')}.{record['name']}"):
            return None
        last = source.get("fields", [{}])[-1]
        position_last = last.get("name") == "position" and last.get("type") == ["null", "string"]
        # parsed with fastavro's hint: a schema without it is parsed again on every write
        return cls(
            parse_schema(source),
            parse_schema(record),
            list(op["symbols"]),
            position_last=position_last,
        )

    def _source_bytes(self, source: dict[str, Any]) -> bytes:
        key = tuple(source.items())
        cached = self._sources.get(key)
        if cached is not None:  # a source seen before (publishers with a fixed source)
            return cached
        if self._position_last:
            position = source.get("position")
            if position is None or type(position) is str:
                rest = tuple(kv for kv in key if kv[0] != "position")
                head = self._heads.get(rest)
                if head is None:
                    # the bytes with a null position end with that union's branch (0x00)
                    head = self._encode_source({**dict(rest), "position": None})[:-1]
                    _remember(self._heads, rest, head)
                if position is None:
                    cached = head + b"\x00"
                    _remember(self._sources, key, cached)
                    return cached
                text = position.encode("utf-8")
                return b"".join((head, b"\x02", _zigzag(len(text)), text))
        cached = self._encode_source(source)
        _remember(self._sources, key, cached)
        return cached

    def _encode_source(self, source: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, self._source, source, strict=True, strict_allow_default=True)
        return buf.getvalue()

    def write(self, event: dict[str, Any], prefix: bytes = b"") -> bytes:
        """``prefix`` (the wire header) followed by the Avro binary of ``event``."""
        if len(event) != len(_FIELDS):
            raise KeyError("the event has missing or unknown fields")
        ts_ms = event["ts_ms"]
        if type(ts_ms) is not int:
            raise TypeError("ts_ms: expected an integer")
        event_id, key = event["event_id"], event["key"]
        if type(event_id) is not str or type(key) is not str:
            raise TypeError("event_id, key: expected a string")
        event_id, key = event_id.encode("utf-8"), key.encode("utf-8")
        buf = io.BytesIO()
        buf.write(
            b"".join(
                (
                    prefix,
                    _zigzag(len(event_id)),
                    event_id,
                    self._ops[event["op"]],
                    _zigzag(ts_ms),
                    self._source_bytes(event["source"]),
                    _zigzag(len(key)),
                    key,
                )
            )
        )
        record = self._record
        before, after = event["before"], event["after"]
        if before is None:
            buf.write(b"\x00")
        else:
            buf.write(b"\x02")
            schemaless_writer(buf, record, before, strict=True, strict_allow_default=True)
        if after is None:
            buf.write(b"\x00")
        else:
            buf.write(b"\x02")
            schemaless_writer(buf, record, after, strict=True, strict_allow_default=True)
        return buf.getvalue()
