"""Records read at chosen offsets (the broker guard's anchors, ``lgsp broker restore``'s
comparison of a partition with the archive)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from bus.errors import BrokerUnavailableError

FETCH_POLL_MS = 250
FETCH_DEADLINE_S = 15.0


def record_digest(key: bytes | None, value: bytes | None) -> str:
    """The SHA-256 (hex) of a record's key and value bytes as sent (``None`` and empty told
    apart): what identifies a record the bus wrote, whatever its offset or timestamp."""
    h = hashlib.sha256()
    for part in (key, value):
        if part is None:
            h.update(b"\x00")
        else:
            h.update(b"\x01" + len(part).to_bytes(8, "big") + bytes(part))
    return h.hexdigest()


def records_at(consumer: Any, wanted: dict[TopicPartition, int]) -> dict[TopicPartition, Any]:
    """The record at each chosen offset, read with ``consumer`` (its assignment is left to the
    caller to set afterwards). A partition whose record at that offset is gone (below the log
    start, compacted away) or that gave no answer within ``FETCH_DEADLINE_S`` is left out."""
    if not wanted:
        return {}
    found: dict[TopicPartition, Any] = {}
    try:
        if consumer.assignment():
            consumer.unsubscribe()
        consumer.assign(list(wanted))
        for tp, offset in wanted.items():
            consumer.seek(tp, offset)
        pending = set(wanted)
        deadline = time.monotonic() + FETCH_DEADLINE_S
        while pending and time.monotonic() < deadline:
            for tp, items in consumer.poll(timeout_ms=FETCH_POLL_MS).items():
                if tp not in pending or not items:
                    continue
                pending.discard(tp)
                consumer.pause(tp)
                first = next((r for r in items if r.offset >= wanted[tp]), None)
                if first is not None and first.offset == wanted[tp]:
                    found[tp] = first
        consumer.resume(*wanted)  # the caller's assignment may keep these partitions
        return found
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read records ({type(exc).__name__})") from exc
