"""Publishing change events: validated against the topic's schema, framed, acked by the broker.

``Publisher.publish`` returns only after the broker acknowledged every record (acks=all,
idempotent producer), so a caller may commit its source position afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError, MessageSizeTooLargeError

from bus import broker_guard
from bus.config import Settings
from bus.dlq import (
    H_ATTEMPTS,
    H_GROUP,
    H_OFFSET,
    H_PARTITION,
    H_STAGE,
    dlq_topic,
    send_dead_letter,
)
from bus.envelope import canonical_key
from bus.errors import BrokerUnavailableError, DataError
from bus.kafka import clients
from bus.kafka.topics import ensure_topics
from bus.registry import RegisteredSchema, Registry, subject_for
from bus.serde import AvroCodec
from bus.serde.jsoncodec import dumps
from bus.units.topics import parse_topic_dated

log = logging.getLogger(__name__)


@dataclass
class PublishReport:
    sent: int = 0
    dlq: int = 0
    # partition -> the offset after the last record of this call the broker acknowledged
    ends: dict[int, int] = field(default_factory=dict)


def event_key(event: dict[str, Any]) -> bytes:
    """The record key of an event: its canonical key text."""
    key = event.get("key")
    if type(key) is str:
        return key.encode()
    if isinstance(key, dict):
        key = canonical_key(key)
    return str(key).encode() if key is not None else b""


def validate_topic(settings: Settings, topic: str) -> None:
    """Bus topics (``lgsp.<unit path>.<domain>.<name>``) must name a real unit chain."""
    if topic.startswith("lgsp."):
        parse_topic_dated(settings.hierarchy, topic)


class Publisher:
    """One producer for many topics; use as a context manager or call ``close``. ``origin``
    names who publishes (``broker_guard.ORIGINS``): what it sent is recorded under it, so a
    broker restore can tell whether a rerun publishes it again. ``registry``: the process
    context's (``Context.registry``); without one (a test), a registry of its own."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry | None = None,
        *,
        origin: str = broker_guard.PUBLISH,
        **producer_overrides: Any,
    ) -> None:
        self.settings = settings
        self.origin = origin
        self.registry = registry or Registry(settings)
        self.codec = AvroCodec(self.registry)
        self._schemas: dict[str, RegisteredSchema] = {}
        self._ready_topics: set[str] = set()
        self._producer = clients.producer(settings, **producer_overrides)
        self._pending: list[Any] = []
        self._records: list[tuple[bytes | None, bytes | None]] = []  # (key, value) per future
        self.acked: broker_guard.TopicEnds = {}  # what the last flush saw acknowledged
        self._reached: broker_guard.TopicEnds = {}  # what every flush saw acknowledged
        self._anchored: set[tuple[str, int]] = set()  # partitions this publisher anchored
        # topics the broker guard passed for this publisher (a run that checked them adds them)
        self.guarded: set[str] = set()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._producer.close(timeout=10)

    def schema_for(self, topic: str) -> RegisteredSchema:
        found = self._schemas.get(topic)
        if found is None:
            found = self.registry.latest(subject_for(topic))
            self._schemas[topic] = found
        return found

    def ensure_topic(self, topic: str, dataset: str | None = None) -> None:
        """Create the topic and its DLQ if missing, once per publisher; first the broker
        guard (a topic the bus published to must not be silently created again)."""
        if topic not in self._ready_topics:
            validate_topic(self.settings, topic)
            if topic not in self.guarded:
                broker_guard.check(self.settings, [topic])
                self.guarded.add(topic)
            ensure_topics(self.settings, {topic: dataset, dlq_topic(topic): None})
            self._ready_topics.add(topic)

    def encode(self, topic: str, event: dict[str, Any]) -> tuple[bytes, bytes]:
        """(key bytes, framed value) of an event; ``DataError`` if it does not match."""
        schema = self._schemas.get(topic) or self.schema_for(topic)
        return event_key(event), self.codec.encode(schema.id, event)

    def _send_all(self, topic: str, encoded: list[tuple[bytes, bytes]]) -> None:
        """Send encoded records (acknowledged on ``flush``), with the lookups done once."""
        send, add, keep = self._producer.send, self._pending.append, self._records.append
        value = b""
        try:
            for key, value in encoded:
                add(send(topic, key=key or None, value=value))
                keep((key or None, value))
        except MessageSizeTooLargeError:
            raise DataError(
                f"a record of {len(value)} bytes is larger than the producer accepts "
                f"(max_request_size) for {topic}"
            ) from None
        except KafkaError as exc:
            raise BrokerUnavailableError(f"cannot send to {topic} ({type(exc).__name__})") from exc

    def publish(
        self,
        topic: str,
        events: Iterable[dict[str, Any]],
        *,
        on_invalid: str = "raise",
        dataset: str | None = None,
    ) -> PublishReport:
        """Send events and wait for the broker's acknowledgement of all of them.

        Every event is encoded (and so validated) before the first is sent.
        ``on_invalid="raise"`` refuses the whole call at the first event that does not match
        the schema (with its index), sending nothing; ``"dlq"`` parks each such event in
        ``<topic>.dlq`` with the reason and sends the others.
        """
        self.ensure_topic(topic, dataset)
        encoded: list[tuple[bytes, bytes]] = []
        refused: list[tuple[dict[str, Any], DataError]] = []
        encode, add = self.encode, encoded.append
        for index, event in enumerate(events):  # every event is checked before any is sent
            try:
                add(encode(topic, event))
            except DataError as exc:
                if on_invalid != "dlq":
                    raise DataError(f"event {index}: {exc}") from None
                refused.append((event, exc))
        for event, exc in refused:
            self.park_event(topic, event, exc, "publish")
        return self.publish_encoded(topic, encoded, dlq=len(refused))

    def publish_encoded(
        self,
        topic: str,
        records: list[tuple[bytes, bytes]],
        *,
        dataset: str | None = None,
        dlq: int = 0,
    ) -> PublishReport:
        """Send records already framed for ``topic`` (``(key, value)`` pairs, as ``encode``
        returns them, or the original bytes of a parked record) and wait for the broker's
        acknowledgement of them and of anything parked before; ``dlq``: how many of those
        were parked (for the report)."""
        self.ensure_topic(topic, dataset)
        self._send_all(topic, records)
        self.flush()
        ends = {p: end for (t, p), end in self.acked.items() if t == topic}
        return PublishReport(sent=len(records), dlq=dlq, ends=ends)

    def _track(self, future: Any, key: bytes | None, value: bytes | None) -> None:
        """A send to acknowledge on ``flush``, with the bytes it sent (for the anchors)."""
        self._pending.append(future)
        self._records.append((key, value))

    def park_event(self, topic: str, event: dict[str, Any], exc: BaseException, stage: str) -> None:
        """Send an event that cannot be published, as JSON, to ``<topic>.dlq``; acked on
        flush. A DLQ replay converts it again once the schema fits."""
        key, value = event_key(event), dumps(event).encode()
        future = send_dead_letter(
            self._producer, topic=topic, key=key, value=value, exc=exc, stage=stage
        )
        self._track(future, key, value)

    def park(self, message: Any, exc: BaseException, stage: str) -> None:
        """Send a consumed record (``bus.consume.Message``) to its topic's DLQ; acked on flush."""
        key = message.key.encode() if message.key is not None else None
        future = send_dead_letter(
            self._producer,
            topic=message.topic,
            key=key,
            value=message.raw,
            exc=exc,
            partition=message.partition,
            offset=message.offset,
            stage=stage,
        )
        self._track(future, key, message.raw)

    def park_again(
        self, topic: str, message: Any, exc: BaseException, headers: dict[str, str]
    ) -> None:
        """Send a dead letter of ``topic`` that still fails (``lgsp dlq replay``) back to
        ``<topic>.dlq``: its bytes, origin offset, stage and group as parked (``headers``,
        decoded), attempts + 1."""

        def number(name: str) -> int | None:
            text = headers.get(name, "")
            return int(text) if text.lstrip("-").isdigit() and int(text) >= 0 else None

        key = message.key.encode() if message.key is not None else None
        future = send_dead_letter(
            self._producer,
            topic=topic,
            key=key,
            value=message.raw,
            exc=exc,
            partition=number(H_PARTITION),
            offset=number(H_OFFSET),
            stage=headers.get(H_STAGE) or "replay",
            attempts=(number(H_ATTEMPTS) or 1) + 1,
            group=headers.get(H_GROUP) or None,
        )
        self._track(future, key, message.raw)

    def flush(self) -> None:
        """Block until every pending record is acknowledged; raise if any was not."""
        pending, self._pending = self._pending, []
        records, self._records = self._records, []
        self.acked = {}
        self.acked = broker_guard.acknowledge(
            self.settings,
            self._producer,
            pending,
            self.origin,
            reached=self._reached,
            records=records,
            anchored=self._anchored,
        )
