"""Dead letters: records that cannot be decoded or do not match go to ``<topic>.dlq``.

The DLQ record keeps the original key and value bytes; headers say where it came from and why.
Header messages come only from the bus's own ``DataError`` texts, which name fields and
expectations, never values; any other exception contributes only its class name.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer

from bus.errors import safe_message

SUFFIX = ".dlq"
H_TOPIC = "lgsp.dlq.origin.topic"
H_PARTITION = "lgsp.dlq.origin.partition"
H_OFFSET = "lgsp.dlq.origin.offset"
H_ERROR_CLASS = "lgsp.dlq.error.class"
H_ERROR = "lgsp.dlq.error.message"
H_STAGE = "lgsp.dlq.stage"
H_TS = "lgsp.dlq.ts_ms"
H_ATTEMPTS = "lgsp.dlq.attempts"
H_GROUP = "lgsp.dlq.group"


_LONG_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{9,}(?![0-9A-Za-z])")


def mask_numbers(text: str) -> str:
    """``text`` with every run of 9 or more digits (a citizen id, a phone) masked to its last
    two digits: a second guard, for messages shown to people, behind ``safe_message``."""
    return _LONG_NUMBER.sub(lambda m: "*" * (len(m.group()) - 2) + m.group()[-2:], text)


def dlq_topic(topic: str) -> str:
    return topic if topic.endswith(SUFFIX) else topic + SUFFIX


@dataclass(frozen=True)
class DeadLetter:
    """One DLQ entry as listed to an operator (headers decoded, value left as bytes)."""

    offset: int
    partition: int
    origin_topic: str
    origin_partition: int | None
    origin_offset: int | None
    error_class: str
    error: str
    stage: str
    ts_ms: int
    attempts: int
    size: int
    group: str = ""


def headers_for(
    *,
    topic: str,
    partition: int | None,
    offset: int | None,
    exc: BaseException,
    stage: str,
    attempts: int = 1,
    group: str | None = None,
) -> list[tuple[str, bytes]]:
    return [
        (H_GROUP, (group or "").encode()),
        (H_TOPIC, topic.encode()),
        (H_PARTITION, str(-1 if partition is None else partition).encode()),
        (H_OFFSET, str(-1 if offset is None else offset).encode()),
        (H_ERROR_CLASS, type(exc).__name__.encode()),
        (H_ERROR, safe_message(exc).encode()),
        (H_STAGE, stage.encode()),
        (H_TS, str(int(time.time() * 1000)).encode()),
        (H_ATTEMPTS, str(attempts).encode()),
    ]


def parse_headers(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or []}


def to_dead_letter(record: Any) -> DeadLetter:
    h = parse_headers(record.headers)

    def _int(name: str) -> int | None:
        value = int(h.get(name, "-1") or -1)
        return None if value < 0 else value

    return DeadLetter(
        offset=record.offset,
        partition=record.partition,
        origin_topic=h.get(H_TOPIC, ""),
        origin_partition=_int(H_PARTITION),
        origin_offset=_int(H_OFFSET),
        error_class=h.get(H_ERROR_CLASS, ""),
        error=mask_numbers(h.get(H_ERROR, "")),
        stage=h.get(H_STAGE, ""),
        ts_ms=int(h.get(H_TS, "0") or 0),
        attempts=int(h.get(H_ATTEMPTS, "1") or 1),
        size=len(record.value or b""),
        group=h.get(H_GROUP, ""),
    )


def send_dead_letter(
    producer: KafkaProducer,
    *,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    exc: BaseException,
    partition: int | None = None,
    offset: int | None = None,
    stage: str = "consume",
    attempts: int = 1,
    group: str | None = None,
) -> Any:
    """Park one record; returns the send future."""
    return producer.send(
        dlq_topic(topic),
        key=key,
        value=value,
        headers=headers_for(
            topic=topic,
            partition=partition,
            offset=offset,
            exc=exc,
            stage=stage,
            attempts=attempts,
            group=group,
        ),
    )
