"""The bounded reader without a group: chosen start offsets, nothing committed, the broker guard
off only with a reason, undecodable records counted rather than parked (replay's read)."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer, TopicPartition

from bus import broker_guard, consume
from bus.config import Settings
from bus.consume import Consumer, Message, ReadEndedShortError, SkipCount
from bus.kafka.ends import end_offsets
from bus.kafka.options import client_options
from bus.publish import Publisher
from tests.helpers import register_topic
from tests.integration.test_bus_roundtrip import events, topic_for

pytestmark = pytest.mark.integration


def _published(settings: Settings, unique: str, n: int) -> tuple[str, dict[tuple[str, int], int]]:
    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        assert pub.publish(topic, events(n)).sent == n
    return topic, end_offsets(settings, [topic])


def test_reads_from_chosen_offsets_to_the_end_and_commits_nothing(
    settings: Settings, unique: str
) -> None:
    topic, ends = _published(settings, unique, 30)
    named = min(ends)  # one partition starts two before its end, the others at their beginning
    starts = {TopicPartition(*named): max(0, ends[named] - 2)}
    seen: list[Message] = []
    with Consumer(settings, None) as consumer:
        result = consumer.run_bounded([topic], seen.extend, starts=starts, commit=False)
    got = sorted((m.partition, m.offset) for m in seen)
    wanted = sorted(
        (p, o)
        for (_, p), end in ends.items()
        for o in range(starts.get(TopicPartition(topic, p), 0), end)
    )
    assert got == wanted and result.read == len(wanted)
    assert set(result.lag.values()) == {0}


def test_the_guard_stops_a_read_of_a_short_log_unless_told_why_not(
    settings: Settings, unique: str
) -> None:
    topic, ends = _published(settings, unique, 6)
    # the bus saw the topic reach further than the broker holds: a new broker log
    broker_guard.record_ends(settings, broker_guard.PUBLISH, {k: v + 5 for k, v in ends.items()})
    seen: list[Message] = []
    with Consumer(settings, None) as consumer:
        with pytest.raises(broker_guard.BrokerDataLostError, match=topic):
            consumer.run_bounded([topic], seen.extend, commit=False)
        result = consumer.run_bounded(
            [topic], seen.extend, commit=False, unguarded="a test reads the new log"
        )
    assert result.read == len(seen) == 6


def test_a_read_that_gives_up_short_raises_after_committing_what_it_read(
    settings: Settings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No read ends short silently: it raises (its report names what was left), what it
    handled is committed, and the next read goes on from there; a caller that says why a short
    read is acceptable gets the report instead."""
    topic, ends = _published(settings, unique, 12)
    group = f"lgsp.test.short.{unique}"
    seen: list[Message] = []
    with monkeypatch.context() as m:
        m.setattr(consume, "IDLE_GIVE_UP_S", -1.0)  # gives up after its first poll
        m.setattr(settings, "batch_size", 1)  # which reads one record
        with Consumer(settings, group) as consumer:
            with pytest.raises(ReadEndedShortError, match="were not read") as raised:
                consumer.run_bounded([topic], seen.extend)
            short = raised.value.report
            assert short.short and sum(short.short.values()) == 12 - len(seen)
            assert short.read == len(seen) < 12
            accepted = consumer.run_bounded(
                [topic], seen.extend, commit=False, short_ok="a test accepts it"
            )
            assert accepted.short and accepted.read <= 1
    del seen[len(seen) - accepted.read :]  # not committed: read again below
    with Consumer(settings, group) as consumer:
        rest = consumer.run_bounded([topic], seen.extend)  # from what the first one committed
    assert rest.short == {} and set(rest.lag.values()) == {0}
    assert len(seen) == len({(m.partition, m.offset) for m in seen}) == sum(ends.values())


def test_skip_count_counts_undecodable_records_and_parks_none(
    settings: Settings, unique: str
) -> None:
    topic, _ = _published(settings, unique, 3)
    raw = KafkaProducer(**client_options(settings))
    raw.send(topic, key=b'{"id":99}', value=b"\x00\x00\x00corrupt").get(10)
    raw.close()
    skipped = SkipCount()
    seen: list[Message] = []
    with Consumer(settings, None, on_error=skipped) as consumer:
        result = consumer.run_bounded([topic], seen.extend, commit=False)
    assert sum(end_offsets(settings, [f"{topic}.dlq"]).values()) == 0  # nothing parked
    assert (len(seen), skipped.count, result.read, result.dlq) == (3, 1, 4, 0)
