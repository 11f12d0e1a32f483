"""Operator actions on dead letters: list them, and re-drive them after a fix."""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bus import broker_guard
from bus.config import Settings
from bus.consume import Consumer, Message
from bus.dlq import (
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    H_TOPIC,
    SUFFIX,
    DeadLetter,
    dlq_topic,
    parse_headers,
    to_dead_letter,
)
from bus.errors import DataError
from bus.kafka import clients
from bus.kafka.ends import end_offsets
from bus.publish import Publisher
from bus.registry import subject_for
from bus.serde import AvroCodec
from bus.serde.jsoncodec import JsonToAvro

if TYPE_CHECKING:
    from bus.context import Context

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


def replay_dead_letters(ctx: Context, topic: str) -> DeadLetterReplayReport:
    """Re-drive the DLQ entries not replayed before: those that now decode against the origin
    topic's subject go back to the origin topic with their original framed bytes; one parked
    at publish time (JSON) is encoded with the topic's current schema. Either way they go
    through the bus's one ``Publisher`` (topic checks, broker guard, acknowledgement recorded
    under ``DLQ_REPLAY``). The others are parked again (attempts + 1, their origin, stage and
    group kept). A record parked by several consumer groups is re-driven once; an entry whose
    headers name another topic than ``topic`` is parked again, never sent there."""
    registry = ctx.registry
    codec = AvroCodec(registry)
    allowed = registry.subject_ids(subject_for(topic))
    report = DeadLetterReplayReport()
    seen: set[tuple[str, str, str]] = set()

    @functools.cache
    def converter() -> JsonToAvro:
        """The JSON converter of the topic's current schema (built once per replay)."""
        return JsonToAvro(publisher.schema_for(topic).schema)

    def value_for(message: Message, headers: dict[str, str]) -> bytes:
        """The framed record to re-drive: as parked, or (parked at publish time, as JSON)
        encoded with the topic's current schema."""
        origin = headers.get(H_TOPIC) or topic
        if origin != topic:
            raise DataError(f"lgsp.dlq.origin.topic: expected {topic}, the entry names another")
        if headers.get(H_STAGE) != "publish":
            codec.decode(message.raw, allowed_ids=allowed)
            return message.raw
        try:
            event = json.loads(message.raw)
        except (ValueError, TypeError):
            raise DataError("the parked event is not JSON") from None
        return publisher.encode(topic, converter()(event))[1]

    def redrive(batch: list[Message]) -> None:
        records: list[tuple[bytes, bytes]] = []
        for message in batch:
            headers = parse_headers(message.headers)
            where = (topic, headers.get(H_PARTITION, ""), headers.get(H_OFFSET, ""))
            if where[2] not in ("", "-1") and where in seen:
                report.duplicates += 1  # parked by several consumer groups: re-driven once
                continue
            seen.add(where)
            try:
                value = value_for(message, headers)
            except DataError as exc:
                publisher.park_again(topic, message, exc, headers)
                report.still_failing += 1
                continue
            key = message.key.encode() if message.key is not None else b""
            records.append((key, value))
        # re-driven and parked-again records acknowledged before the replay group commits
        publisher.publish_encoded(topic, records)
        report.replayed += len(records)

    with (
        Publisher(ctx.settings, registry, origin=broker_guard.DLQ_REPLAY) as publisher,
        Consumer(
            ctx.settings, f"{REPLAY_GROUP}.{topic}", registry=registry, decode=False
        ) as consumer,
    ):
        consumer.run_bounded([dlq_topic(topic)], redrive)
    return report
