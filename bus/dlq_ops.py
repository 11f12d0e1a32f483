"""Operator actions on dead letters: list them, and re-drive them after a fix."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from bus import kafka_clients
from bus.config import Settings
from bus.consume import Consumer, Message
from bus.dlq import (
    H_ATTEMPTS,
    DeadLetter,
    dlq_topic,
    parse_headers,
    send_dead_letter,
    to_dead_letter,
)
from bus.errors import DataError
from bus.registry import Registry, subject_for
from bus.serde import AvroCodec

log = logging.getLogger(__name__)
REPLAY_GROUP = "lgsp.dlq-replay"


def list_dead_letters(settings: Settings, topic: str, limit: int = 1000) -> list[DeadLetter]:
    """Entries of ``<topic>.dlq`` from the beginning, headers decoded."""
    entries: list[DeadLetter] = []

    def keep(batch: list[Message]) -> None:
        entries.extend(to_dead_letter(_Raw(m)) for m in batch)

    with Consumer(settings, None, decode=False) as consumer:  # type: ignore[arg-type]
        consumer.run_bounded([dlq_topic(topic)], keep, max_records=limit, from_beginning=True)
    return entries


class _Raw:
    """Adapts a Message of an undecoded read back to the record shape ``to_dead_letter`` reads."""

    def __init__(self, message: Message) -> None:
        self.offset = message.offset
        self.partition = message.partition
        self.value = message.raw
        self.headers = message.headers


@dataclass
class ReplayReport:
    replayed: int = 0
    still_failing: int = 0


def replay_dead_letters(settings: Settings, topic: str) -> ReplayReport:
    """Re-drive the DLQ entries not replayed before: those that now decode against the origin
    topic's subject go back to the origin topic; the others are parked again (attempts + 1)."""
    registry = Registry(settings)
    codec = AvroCodec(registry)
    allowed = registry.subject_ids(subject_for(topic))
    report = ReplayReport()
    producer = kafka_clients.producer(settings)
    futures: list[Any] = []

    def redrive(batch: list[Message]) -> None:
        for message in batch:
            headers = parse_headers(message.headers)
            origin = headers.get("lgsp.dlq.origin.topic") or topic
            try:
                codec.decode(message.raw, allowed_ids=allowed)
            except DataError as exc:
                attempts = int(headers.get(H_ATTEMPTS, "1") or 1) + 1
                futures.append(
                    send_dead_letter(
                        producer,
                        topic=origin,
                        key=message.key.encode() if message.key is not None else None,
                        value=message.raw,
                        exc=exc,
                        stage="replay",
                        attempts=attempts,
                    )
                )
                report.still_failing += 1
                continue
            key = message.key.encode() if message.key is not None else None
            futures.append(producer.send(origin, key=key, value=message.raw))
            report.replayed += 1
        producer.flush()
        for future in futures:
            future.get(timeout=settings.kafka.request_timeout_ms / 1000)
        futures.clear()

    try:
        with Consumer(settings, f"{REPLAY_GROUP}.{topic}", decode=False) as consumer:
            consumer.run_bounded([dlq_topic(topic)], redrive)
    finally:
        producer.close(timeout=5)
    return report
