"""A log replaced by another, longer one (same broker, so the same cluster id; the topic
deleted and created again, then filled by others past every offset the bus saw): the broker
guard notices it by the anchor, the last record the bus wrote, read back at its offset."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from bus import broker_guard
from bus.broker_guard import BrokerDataLostError
from bus.config import Settings
from bus.consume import Consumer
from bus.kafka.ends import end_offsets
from bus.kafka.options import client_options
from bus.publish import Publisher
from tests.helpers import recreate_topic, register_topic
from tests.integration.test_bus_roundtrip import events, topic_for

pytestmark = pytest.mark.integration


def _replace_log(settings: Settings, topic: str, records: int, partitions: int) -> None:
    """Delete ``topic``, create it again and fill each partition with ``records`` other
    records."""
    recreate_topic(settings, topic)
    other = Publisher(settings, origin="publish:elsewhere")  # framed as the bus frames them
    encoded = [other.encode(topic, e) for e in events(records, start=1000)]
    other.close()
    raw = KafkaProducer(**client_options(settings))  # written by a client the bus does not know
    for partition in range(partitions):
        for key, value in encoded:
            raw.send(topic, key=key, value=value, partition=partition)
    raw.flush()
    raw.close()


def test_a_longer_log_in_place_of_the_published_one_stops_every_run(
    settings: Settings, unique: str
) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings, origin="publish:cli") as pub:
        pub.publish(topic, events(20))
    seen = broker_guard.known(settings, [topic])
    assert seen.anchors and all(offset >= 0 for offset, _ in seen.anchors.values())
    broker_guard.check(settings, [topic])  # intact: passes
    before = end_offsets(settings, [topic])

    _replace_log(settings, topic, sum(before.values()) + 10, len(before))
    ends = end_offsets(settings, [topic])
    assert all(ends[key] > end for key, end in before.items())  # ends say nothing wrong
    with pytest.raises(BrokerDataLostError, match=r"another record at offset \d+ .*replaced"):
        broker_guard.check(settings, [topic])
    with Consumer(settings, f"g-{unique}") as consumer:  # a sink's read judges it too
        with pytest.raises(BrokerDataLostError, match="the log was replaced"):
            consumer.run_bounded([topic], lambda batch: None)
    with Publisher(settings, origin="publish:cli") as pub:  # and a publisher's first send
        with pytest.raises(BrokerDataLostError, match="the log was replaced"):
            pub.publish(topic, events(1, start=20))


def test_an_intact_log_the_bus_goes_on_writing_passes(settings: Settings, unique: str) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    for start in (0, 10, 20):  # three publishers one after another: the anchor moves along
        with Publisher(settings, origin="publish:cli") as pub:
            pub.publish(topic, events(10, start=start))
        broker_guard.check(settings, [topic])
    anchors = broker_guard.known(settings, [topic]).anchors
    ends = end_offsets(settings, [topic])
    assert {key: offset + 1 for key, (offset, _) in anchors.items()} == {
        key: end for key, end in ends.items() if end
    }
    with Consumer(settings, f"g-{unique}") as consumer:
        assert consumer.run_bounded([topic], lambda batch: None).read == 30
