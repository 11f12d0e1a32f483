"""Canonical entry bytes and the hash chain of one topic-partition.

Definition (version 1), all integers big-endian::

    h_0 = SHA-256("LGSP-ARCHIVE-V1" 0x00 || topic (UTF-8) || 0x00 || partition (decimal ASCII))
    h_n = SHA-256(h_{n-1} || seq (u64) || canonical_bytes(entry_n))

    canonical_bytes = epoch (u32) || offset (i64) || ts_ms (i64) || schema_id (i32)
                   || op (1 ASCII byte)
                   || len(event_id) (u16) || len(source_unit) (u16)
                   || len(key) (i32, -1 when the key is null) || len(payload) (u32)
                   || event_id (UTF-8) || source_unit (UTF-8) || key (UTF-8) || payload

``payload`` is the record value exactly as received from the broker (Confluent framing: magic
byte, schema id, Avro binary), so the entry decodes later with the registry. Every column that
replay selects on (event time, op, key, unit, event id, schema id, offset) is covered, so an edit
of any of them breaks the chain. ``seq`` counts from 1 within the chain; ``epoch`` counts the
broker incarnations of the topic (an embedded broker restart resets offsets to 0).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from bus.errors import InvalidNameError
from bus.units.topics import split_topic

HASH_SIZE = 32
GENESIS_TAG = b"LGSP-ARCHIVE-V1\x00"
SEQ = struct.Struct(">Q")
HEAD = struct.Struct(">Iqqic" + "HHiI")
_pack_head = HEAD.pack


def canonical_json(data: Any) -> str:
    """The archive's one canonical JSON, for everything it hashes or signs (checkpoint
    messages, exported checkpoint lines, replay's content hash): object keys sorted, no
    spaces, non-ASCII text kept as UTF-8."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def genesis(topic: str, partition: int) -> bytes:
    """h_0 of a chain: binds the chain to its topic and partition."""
    return hashlib.sha256(
        GENESIS_TAG + topic.encode() + b"\x00" + str(int(partition)).encode()
    ).digest()


def canonical_bytes(
    epoch: int,
    offset: int,
    ts_ms: int,
    schema_id: int,
    op: str,
    event_id: str,
    source_unit: str,
    key: str | None,
    payload: bytes,
) -> bytes:
    """The entry's bytes as defined above (the one definition: the archiver and the verifier
    both call it; positional calls are the verifier's fast path)."""
    eid = event_id.encode()
    unit = source_unit.encode()
    if key is None:
        kb = b""
        klen = -1
    else:
        kb = key.encode()
        klen = len(kb)
    return (
        _pack_head(
            epoch, offset, ts_ms, schema_id, op.encode(), len(eid), len(unit), klen, len(payload)
        )
        + eid
        + unit
        + kb
        + payload
    )


def chain_hash(prev: bytes, seq: int, canonical: bytes) -> bytes:
    """h_n from h_{n-1}, the position and the canonical bytes."""
    return hashlib.sha256(prev + SEQ.pack(seq) + canonical).digest()


@dataclass(frozen=True)
class DatasetTopic:
    """What a dataset topic name says: ``lgsp.<unit path>.<domain>.<name>``."""

    topic: str
    unit_path: str
    dataset: str


def parse_dataset_topic(topic: str) -> DatasetTopic:
    """Unit path and dataset of a topic name; ``InvalidNameError`` for anything else.

    The hierarchy is not consulted: the archive keeps every dataset topic it is given.
    """
    if isinstance(topic, str) and topic.endswith(".dlq"):
        raise InvalidNameError(f"topic {topic!r}: a dead-letter topic, not a dataset topic")
    codes, dataset = split_topic(topic)
    return DatasetTopic(topic, ".".join(codes), dataset)


def is_dataset_topic(topic: str) -> bool:
    try:
        parse_dataset_topic(topic)
    except InvalidNameError:
        return False
    return True


def unit_within(unit_path: str, prefix: str) -> bool:
    """Whether ``unit_path`` is ``prefix`` or below it (``79.760.26734`` within ``79.760``)."""
    return unit_path == prefix or unit_path.startswith(prefix + ".")
