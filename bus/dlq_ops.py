"""Operator actions on dead letters: list them, and re-drive them after a fix."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import Any

from bus import broker_guard
from bus.config import Settings
from bus.consume import Consumer, Message, end_offsets
from bus.dlq import (
    H_ATTEMPTS,
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    H_TOPIC,
    SUFFIX,
    DeadLetter,
    dlq_topic,
    parse_headers,
    send_dead_letter,
    to_dead_letter,
)
from bus.errors import DataError
from bus.kafka import clients
from bus.registry import Registry, subject_for
from bus.serde import AvroCodec
from bus.serde.jsoncodec import JsonToAvro

log = logging.getLogger(__name__)
REPLAY_GROUP = "lgsp.dlq-replay"


def dead_letter_topics(settings: Settings) -> dict[str, int]:
    """``{origin topic: records parked in its DLQ}`` for every DLQ topic on the broker."""
    client = clients.admin(settings)
    try:
        names = sorted(t for t in client.list_topics() if t.endswith(SUFFIX))
    finally:
        client.close()
    counts = dict.fromkeys((n.removesuffix(SUFFIX) for n in names), 0)
    for (name, _), end in end_offsets(settings, names).items():
        counts[name.removesuffix(SUFFIX)] += end
    return counts


def list_dead_letters(settings: Settings, topic: str, limit: int = 1000) -> list[DeadLetter]:
    """Entries of ``<topic>.dlq`` from the beginning, headers decoded."""
    entries: list[DeadLetter] = []

    def keep(batch: list[Message]) -> None:
        entries.extend(to_dead_letter(_Raw(m)) for m in batch)

    with Consumer(settings, None, decode=False) as consumer:
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
class DeadLetterReplayReport:
    """What one re-drive of a DLQ topic did (``lgsp stream dlq replay``)."""

    replayed: int = 0
    still_failing: int = 0
    duplicates: int = 0


def replay_dead_letters(settings: Settings, topic: str) -> DeadLetterReplayReport:
    """Re-drive the DLQ entries not replayed before: those that now decode against the origin
    topic's subject (or, parked at publish time as JSON, now match its current schema) go back
    to the origin topic; the others are parked again (attempts + 1). A record parked by several
    consumer groups is re-driven once."""
    registry = Registry(settings)
    codec = AvroCodec(registry)
    allowed = registry.subject_ids(subject_for(topic))
    report = DeadLetterReplayReport()
    producer = clients.producer(settings)
    futures: list[Any] = []

    seen: set[tuple[str, str, str]] = set()

    @functools.cache
    def current_schema() -> tuple[int, JsonToAvro]:
        """The topic's current schema id and its JSON converter (looked up once per replay)."""
        latest = registry.latest(subject_for(topic))
        return latest.id, JsonToAvro(latest.schema)

    def value_for(message: Message, headers: dict[str, str]) -> bytes:
        """The framed record to re-drive: as parked, or (parked at publish time, as JSON)
        converted again with the topic's current schema."""
        if headers.get(H_STAGE) != "publish":
            codec.decode(message.raw, allowed_ids=allowed)
            return message.raw
        try:
            event = json.loads(message.raw)
        except (ValueError, TypeError):
            raise DataError("the parked event is not JSON") from None
        schema_id, convert = current_schema()
        return codec.encode(schema_id, convert(event))

    def redrive(batch: list[Message]) -> None:
        for message in batch:
            headers = parse_headers(message.headers)
            origin = headers.get(H_TOPIC) or topic
            where = (origin, headers.get(H_PARTITION, ""), headers.get(H_OFFSET, ""))
            if where[2] not in ("", "-1") and where in seen:
                report.duplicates += 1  # parked by several consumer groups: re-driven once
                continue
            seen.add(where)
            key = message.key.encode() if message.key is not None else None
            try:
                value = value_for(message, headers)
            except DataError as exc:
                attempts = int(headers.get(H_ATTEMPTS, "1") or 1) + 1
                futures.append(
                    send_dead_letter(
                        producer,
                        topic=origin,
                        key=key,
                        value=message.raw,
                        exc=exc,
                        partition=int(where[1]) if where[1].lstrip("-").isdigit() else None,
                        offset=int(where[2]) if where[2].lstrip("-").isdigit() else None,
                        stage=headers.get(H_STAGE, "replay"),
                        attempts=attempts,
                    )
                )
                report.still_failing += 1
                continue
            futures.append(producer.send(origin, key=key, value=value))
            report.replayed += 1
        broker_guard.acknowledge(settings, producer, futures, broker_guard.DLQ_REPLAY)
        futures.clear()

    try:
        with Consumer(settings, f"{REPLAY_GROUP}.{topic}", decode=False) as consumer:
            consumer.run_bounded([dlq_topic(topic)], redrive)
    finally:
        producer.close(timeout=5)
    return report
