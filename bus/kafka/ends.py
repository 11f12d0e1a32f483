"""Exact end offsets of partitions, read with a consumer: the one place that computes them (the
bounded runs' stop line, the broker guard's check, ``lgsp topic list``, lag figures)."""

from __future__ import annotations

import logging
import time
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError

from bus.config import Settings
from bus.errors import BrokerUnavailableError
from bus.kafka import clients

log = logging.getLogger(__name__)
TopicEnds = dict[tuple[str, int], int]
PROBE_POLL_MS = 250
PROBE_DEADLINE_S = 15.0


def probe_ends(consumer: Any, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The exact offset after the last record of each partition, read with ``consumer``.

    The embedded broker answers ``ListOffsets`` with a lower bound (the base offset of the last
    batch), but its fetch responses carry the exact high watermark, as Apache Kafka's do: each
    partition is fetched once from the listed offset and its end is the high watermark of that
    fetch (never below the offsets seen). One fetch per partition, whatever a concurrent
    producer appends meanwhile. The consumer's assignment and positions are left to the caller
    to set afterwards.
    """
    if not tps:
        return {}
    try:
        hints = consumer.end_offsets(tps)
        if consumer.assignment():
            consumer.unsubscribe()  # forget high watermarks seen before this probe
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, hints[tp])
        ends = {tp: hints[tp] for tp in tps}
        pending = set(tps)
        deadline = time.monotonic() + PROBE_DEADLINE_S
        while pending and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=PROBE_POLL_MS)
            for tp, items in polled.items():
                ends[tp] = max(ends[tp], items[-1].offset + 1)
            for tp in list(pending):
                highwater = consumer.highwater(tp)
                if highwater is not None:
                    ends[tp] = max(ends[tp], highwater)
                    pending.discard(tp)
        if pending:
            log.warning(
                "no fetch answer with a high watermark for %s within %.0f s: ending at the "
                "offsets seen",
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(pending)),
                PROBE_DEADLINE_S,
            )
        return ends
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read end offsets ({type(exc).__name__})") from exc


def partitions_of(consumer: Any, topics: list[str]) -> list[TopicPartition]:
    """Every partition of those of ``topics`` the broker has (in topic, partition order)."""
    try:
        return [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot list partitions ({type(exc).__name__})") from exc


def topic_ends(consumer: Any, topics: list[str]) -> TopicEnds:
    """``{(topic, partition): exact end}`` of every partition of ``topics`` on the broker (a
    topic it does not have has none), read with ``consumer`` (see ``probe_ends``)."""
    ends = probe_ends(consumer, partitions_of(consumer, topics))
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


def end_offsets(settings: Settings, topics: list[str]) -> TopicEnds:
    """``topic_ends`` with a consumer of its own."""
    consumer = clients.consumer(settings, None)
    try:
        return topic_ends(consumer, topics)
    finally:
        consumer.close(autocommit=False)
