"""Publish → broker → consume, DLQ, crash and rerun, bad inputs: against the real broker."""

from __future__ import annotations

import datetime as dt
import decimal
import multiprocessing
import os
import struct
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer

from bus.broker_guard import DLQ_REPLAY, holder_ends
from bus.config import Settings
from bus.consume import Consumer, Message
from bus.context import Context
from bus.dlq import H_ERROR, H_ERROR_CLASS, H_OFFSET, H_PARTITION, H_TOPIC
from bus.dlq_ops import list_dead_letters, replay_dead_letters
from bus.envelope import make_event
from bus.errors import BrokerUnavailableError, DataError, UnknownUnitError
from bus.kafka import clients
from bus.kafka.ends import PROBE_DEADLINE_S, end_offsets
from bus.kafka.options import client_options
from bus.publish import Publisher
from bus.registry import Registry, subject_for
from tests.helpers import record_schema, register_topic, wait_until

pytestmark = pytest.mark.integration

VN = dt.timezone(dt.timedelta(hours=7))
SOURCE = {"agency": "ubnd-phuong-tan-dinh", "unit": "26734", "system": "hoso"}


def topic_for(unique: str) -> str:
    return f"lgsp.79.760.26734.test.x{unique}"


def person(i: int, name: str = "Nguyễn Thị Ánh Tuyết") -> dict:
    return {
        "id": i,
        "name": f"{name} {i}",
        "amount": decimal.Decimal("1234567.89") + i,
        "born": None if i % 3 == 0 else dt.date(1990, 1, 1) + dt.timedelta(days=i),
        "seen": dt.datetime(2026, 3, 1, 8, 30, tzinfo=VN) + dt.timedelta(minutes=i),
    }


def events(n: int, start: int = 0) -> list[dict]:
    return [
        make_event(
            op="c", key={"id": i}, source=SOURCE, ts_ms=1_770_000_000_000 + i, after=person(i)
        )
        for i in range(start, start + n)
    ]


def collect(settings: Settings, topic: str, group: str) -> list[Message]:
    seen: list[Message] = []
    with Consumer(settings, group) as consumer:
        consumer.run_bounded([topic], seen.extend)
    return seen


def test_publish_then_consume_typed_values(settings: Settings, unique: str) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        report = pub.publish(topic, events(50))
    assert report.sent == 50
    seen = collect(settings, topic, f"g-{unique}")
    assert len(seen) == 50
    by_id = {m.value["after"]["id"]: m.value for m in seen}
    assert by_id[7]["after"] == person(7)
    assert by_id[3]["after"]["born"] is None
    assert by_id[7]["after"]["seen"] == person(7)["seen"]
    assert by_id[7]["source"]["agency"] == "ubnd-phuong-tan-dinh"
    assert by_id[7]["key"] == '{"id":7}'
    # a second bounded run of the same group reads nothing new
    assert collect(settings, topic, f"g-{unique}") == []
    ends = end_offsets(settings, [topic])
    assert sum(ends.values()) == 50


def test_bad_records_go_to_dlq_and_good_ones_arrive(settings: Settings, unique: str) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    other = Registry(settings).register(
        subject_for(topic + "other"),
        {"type": "record", "name": "Other", "fields": [{"name": "x", "type": "int"}]},
    )
    with Publisher(settings) as pub:
        pub.publish(topic, events(5))
    raw = KafkaProducer(**client_options(settings))
    raw.send(topic, key=b'{"id":99}', value=b"\x00\x00\x00corrupt-079203001234")
    raw.send(topic, key=b'{"id":98}', value=b"\x00" + struct.pack(">I", other.id) + b"\x02")
    raw.flush()
    raw.close()
    with Publisher(settings) as pub:
        pub.publish(topic, events(5, start=5))
    seen = collect(settings, topic, f"g-{unique}")
    assert sorted(m.value["after"]["id"] for m in seen) == list(range(10))
    dead = list_dead_letters(settings, topic)
    assert len(dead) == 2
    classes = sorted(d.error_class for d in dead)
    assert classes == ["UnknownSchemaError", "UnknownSchemaError"]  # DataError subclasses
    reasons = " ".join(d.error for d in dead)
    assert "not a version of this topic" in reasons
    assert "079203001234" not in reasons
    for d in dead:
        assert d.origin_topic == topic and d.origin_offset is not None
        assert d.origin_partition is not None


def test_dlq_headers_and_replay_after_fix(settings: Settings, unique: str) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    # written with a compatible newer schema that was never registered for the topic
    newer = record_schema(extra=[{"name": "ward", "type": "string", "default": ""}])
    from bus.envelope import envelope_schema
    from bus.serde import AvroCodec

    env = envelope_schema(newer, settings.schemas_dir)
    stray = Registry(settings).register(f"stray-{unique}-value", env)
    codec = AvroCodec(Registry(settings))
    event = events(1)[0]
    event["after"]["ward"] = "26734"
    value = codec.encode(stray.id, event)
    raw = KafkaProducer(**client_options(settings))
    raw.send(topic, key=b'{"id":0}', value=value).get(10)
    raw.close()
    assert collect(settings, topic, f"g-{unique}") == []
    consumer = clients.consumer(settings, None)
    from kafka import TopicPartition

    tps = [TopicPartition(topic + ".dlq", p) for p in consumer.partitions_for_topic(topic + ".dlq")]
    consumer.assign(tps)
    consumer.seek_to_beginning()
    records = [r for batch in consumer.poll(timeout_ms=2000).values() for r in batch]
    consumer.close()
    assert len(records) == 1
    headers = dict(records[0].headers)
    assert headers[H_TOPIC] == topic.encode()
    assert int(headers[H_PARTITION]) >= 0 and int(headers[H_OFFSET]) == 0
    assert headers[H_ERROR_CLASS] == b"UnknownSchemaError"  # a DataError
    assert b"not a version" in headers[H_ERROR]
    assert records[0].value == value
    # still failing: parked again, not lost
    first = replay_dead_letters(Context.load(settings), topic)
    assert (first.replayed, first.still_failing) == (0, 1)
    # the fix: register the newer schema for the topic; the replay now re-drives it
    Registry(settings).register(subject_for(topic), env)
    again = [d for d in list_dead_letters(settings, topic) if d.attempts == 2]
    assert [(d.origin_topic, d.origin_offset, d.stage) for d in again] == [(topic, 0, "consume")]
    second = replay_dead_letters(Context.load(settings), topic)
    assert (second.replayed, second.still_failing) == (1, 0)
    seen = collect(settings, topic, f"g-{unique}")
    assert [m.value["after"]["ward"] for m in seen] == ["26734"]
    # re-driven as parked (the original framed bytes), through the Publisher: acknowledged
    # and recorded under the replay's origin
    assert [m.raw for m in seen] == [value]
    assert topic in {t for t, _ in holder_ends(settings)[DLQ_REPLAY]}


def test_dlq_replay_sends_nothing_to_a_topic_the_entry_names_elsewhere(
    settings: Settings, unique: str
) -> None:
    topic, other = topic_for(unique), topic_for(unique + "o")
    register_topic(settings, topic)
    register_topic(settings, other)
    with Publisher(settings) as pub:
        pub.publish(other, events(1))
        value = pub.encode(topic, events(1, start=1)[0])[1]
    raw = KafkaProducer(**client_options(settings))
    headers = [(H_TOPIC, other.encode()), (H_PARTITION, b"0"), (H_OFFSET, b"0")]
    raw.send(topic + ".dlq", key=b'{"id":1}', value=value, headers=headers).get(10)
    raw.close()
    result = replay_dead_letters(Context.load(settings), topic)
    assert (result.replayed, result.still_failing) == (0, 1)
    assert sum(end_offsets(settings, [topic]).values()) == 0
    assert sum(end_offsets(settings, [other]).values()) == 1
    parked = [d for d in list_dead_letters(settings, topic) if d.attempts == 2]
    assert [(d.origin_topic, d.error) for d in parked] == [
        (topic, f"lgsp.dlq.origin.topic: expected {topic}, the entry names another")
    ]


def _crashing_consumer(settings: Settings, topic: str, group: str, out: str, crash_at: int) -> None:
    batches = 0

    def handle(batch: list[Message]) -> None:
        nonlocal batches
        batches += 1
        with open(out, "a", encoding="utf-8") as fh:
            for m in batch:
                fh.write(f"{m.value['after']['id']}\n")
        if batches == crash_at:
            os._exit(17)  # killed mid-run: this batch was handled but never committed

    with Consumer(settings, group) as consumer:
        consumer.run_bounded([topic], handle)


def test_bounded_consume_killed_mid_batch_and_rerun(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.publish(topic, events(300))
    small = settings.model_copy(update={"batch_size": 40})
    out = tmp_path / "seen.txt"
    proc = multiprocessing.get_context("fork").Process(
        target=_crashing_consumer, args=(small, topic, f"g-{unique}", str(out), 3)
    )
    proc.start()
    proc.join(60)
    assert proc.exitcode == 17
    first = out.read_text().split()
    assert 0 < len(first) < 300
    again = collect(small, topic, f"g-{unique}")
    ids = first + [str(m.value["after"]["id"]) for m in again]
    assert set(ids) == {str(i) for i in range(300)}, "nothing lost"
    duplicates = len(ids) - 300
    assert 0 < duplicates <= 40, "duplicates only from the uncommitted batch"


def test_publish_refuses_unknown_unit(settings: Settings) -> None:
    with pytest.raises(UnknownUnitError, match="99999"):
        with Publisher(settings) as pub:
            pub.publish("lgsp.79.760.99999.test.demo", [])


def test_publish_refuses_record_not_matching(settings: Settings, unique: str) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    bad = events(3)
    bad[1]["after"]["amount"] = "not money"
    with (
        Publisher(settings) as pub,
        pytest.raises(DataError, match="event 1: demo.Person.amount: expected bytes \\(decimal\\)"),
    ):
        pub.publish(topic, bad)
    assert sum(end_offsets(settings, [topic]).values()) == 0, "nothing of the batch was sent"


def test_broker_down_is_one_clear_error(home: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = Settings(
        home=home,
        kafka_bootstrap=f"127.0.0.1:{port}",
        kafka={"request_timeout_ms": 2000, "api_timeout_ms": 1500},
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="does not answer"):
        Publisher(down)
    assert time.monotonic() - started < 10


def test_continuous_consume_sees_records_published_while_running(
    settings: Settings, unique: str
) -> None:
    import threading

    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.publish(topic, events(5))
    seen: list[Message] = []
    done = threading.Event()

    def handle(batch: list[Message]) -> None:
        seen.extend(batch)
        if len(seen) >= 12:
            done.set()

    def later() -> None:  # once the running consumer has read the first 5
        wait_until(lambda: len(seen) >= 5, 30, "first 5 records read by the consumer")
        with Publisher(settings) as pub:
            pub.publish(topic, events(7, start=5))

    threading.Thread(target=later, daemon=True).start()
    deadline = time.monotonic() + 30
    with Consumer(settings, f"g-{unique}") as consumer:
        consumer.run_forever(
            [topic],
            handle,
            should_stop=lambda: done.is_set() or time.monotonic() > deadline,
            poll_ms=200,
        )
    assert sorted(m.value["after"]["id"] for m in seen) == list(range(12))
    # the offsets were committed: a bounded run of the same group has nothing left
    assert collect(settings, topic, f"g-{unique}") == []


def test_bounded_run_ends_at_the_start_end_even_while_records_arrive(
    settings: Settings, unique: str
) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.publish(topic, events(300))
    small = settings.model_copy(update={"batch_size": 50})
    seen: list[Message] = []

    def handle(batch: list[Message]) -> None:
        if not seen:  # while the run goes on, another system publishes more
            with Publisher(settings) as pub:
                pub.publish(topic, events(40, start=1000))
        seen.extend(batch)

    with Consumer(small, f"g-{unique}") as consumer:
        report = consumer.run_bounded([topic], handle)
    ids = sorted(m.value["after"]["id"] for m in seen)
    assert ids == list(range(300)), "exactly what was there at the start, every partition"
    assert report.read == 300 and set(report.lag.values()) == {0}
    later = collect(settings, topic, f"g-{unique}")
    assert sorted(m.value["after"]["id"] for m in later) == list(range(1000, 1040))


def test_end_offsets_do_not_chase_a_producer_that_keeps_publishing(
    settings: Settings, unique: str
) -> None:
    """The end is read from one fetch's high watermark: a probe taken while another system
    keeps publishing returns the end of that moment (at least what was there before it), not
    whatever the producer manages to append until it stops."""
    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.publish(topic, events(200))
    stop = threading.Event()
    published = [200]

    def keep_publishing() -> None:
        with Publisher(settings) as pub:
            deadline = time.monotonic() + 20
            while not stop.is_set() and time.monotonic() < deadline:
                pub.publish(topic, events(20, start=published[0]))
                published[0] += 20

    worker = threading.Thread(target=keep_publishing)
    worker.start()
    try:
        wait_until(lambda: published[0] > 200, 20, "batch from the publishing thread")
        before = published[0]
        started = time.monotonic()
        probed = sum(end_offsets(settings, [topic]).values())
        took = time.monotonic() - started
        after = published[0]
        # the producer goes on after the probe (on a busy machine its thread may wait a
        # moment for its turn: give it up to 5 s, it stops only at its 20 s deadline)
        waited = time.monotonic() + 5
        while published[0] <= probed and time.monotonic() < waited:
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join()
    assert before <= probed <= after + 20
    # a probe that read on until the partition went quiet would run into its deadline here
    assert took < PROBE_DEADLINE_S / 3, f"the probe chased the producer for {took:.1f} s"
    assert probed < published[0], "the probe returned while the producer was still publishing"
    assert sum(end_offsets(settings, [topic]).values()) == published[0]


def test_dlq_replay_of_publish_stage_json_and_of_records_parked_twice(
    settings: Settings, unique: str
) -> None:
    from bus.envelope import envelope_schema

    topic = topic_for(unique)
    register_topic(settings, topic)
    event = events(1)[0]
    event["after"]["ward"] = "26734"  # a field the topic's schema does not have yet
    with Publisher(settings) as pub:
        report = pub.publish(topic, [event], on_invalid="dlq")
    assert (report.sent, report.dlq) == (0, 1)
    # a corrupt record, read by two consumer groups: each parks a copy
    raw = KafkaProducer(**client_options(settings))
    raw.send(topic, key=b'{"id":5}', value=b"\x00\x00\x00\x00\x09junk").get(10)
    raw.close()
    assert collect(settings, topic, f"a-{unique}") == []
    assert collect(settings, topic, f"b-{unique}") == []
    dead = list_dead_letters(settings, topic)
    assert sorted(d.stage for d in dead) == ["consume", "consume", "publish"]
    assert {d.group for d in dead if d.stage == "consume"} == {f"a-{unique}", f"b-{unique}"}

    newer = record_schema(extra=[{"name": "ward", "type": "string", "default": ""}])
    Registry(settings).register(subject_for(topic), envelope_schema(newer, settings.schemas_dir))
    result = replay_dead_letters(Context.load(settings), topic)
    assert (result.replayed, result.still_failing, result.duplicates) == (1, 1, 1)
    seen = collect(settings, topic, f"c-{unique}")
    assert [m.value["after"]["ward"] for m in seen] == ["26734"]
