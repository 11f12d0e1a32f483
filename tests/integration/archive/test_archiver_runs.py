"""The archiver's runs: a crash on either side of the archive commit neither loses nor
duplicates an event; DLQ topics and non-dataset topics are left out; follow mode stops; a
followed archiver runs the full broker guard at its start and when due, the light one between."""

from __future__ import annotations

import threading
import time

import pytest

from bus import broker_guard, consume
from bus.archive.archiver import Archiver, broker_topics, list_dataset_topics
from bus.archive.verify import verify
from bus.config import Settings
from bus.consume import Message, ReadEndedShortError
from bus.kafka.topics import ensure_topics
from bus.publish import Publisher
from tests.helpers import register_topic
from tests.integration.archive._scenario import CHANGES, Source

pytestmark = pytest.mark.integration


class Crash(Exception):
    pass


class CrashingArchiver(Archiver):
    """Dies in the second batch, after (``after_commit``) or before its archive commit."""

    def __init__(self, settings: Settings, after_commit: bool) -> None:
        super().__init__(settings)
        self.after_commit = after_commit
        self.batches = 0
        self.committed = 0

    def append(self, messages: list[Message]) -> tuple[int, int]:  # type: ignore[override]
        self.batches += 1
        if self.batches == 2 and not self.after_commit:
            raise Crash("before the archive commit")
        result = super().append(messages)
        self.committed += result[0]
        if self.batches == 2:
            raise Crash("after the archive commit, before the broker commit")
        return result


@pytest.mark.parametrize("after_commit", [True, False])
def test_crash_and_rerun_archives_every_event_once(
    settings: Settings, unique: str, after_commit: bool
) -> None:
    settings = settings.model_copy(update={"batch_size": 4})
    topic = f"lgsp.79.760.26734.k{unique}.dossier"
    register_topic(settings, topic)
    events = Source(CHANGES).events
    with Publisher(settings) as pub:
        pub.publish(topic, events)
    crashing = CrashingArchiver(settings, after_commit)
    with pytest.raises(Crash):
        crashing.run_once(topic)
    assert 0 < crashing.committed < len(events)
    report = Archiver(settings).run_once(topic)
    assert report.appended == len(events) - crashing.committed
    checked = verify(settings)
    assert checked.ok and checked.entries == len(events)
    assert Archiver(settings).run_once(topic).appended == 0


def test_an_archive_run_whose_read_ends_short_fails_and_the_next_goes_on(
    settings: Settings, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker read that gives up before the end it set out to reach fails the run (not a
    success with events left out); what it archived is committed, the next run adds the rest."""
    topic = f"lgsp.79.760.26734.s{unique}.dossier"
    register_topic(settings, topic)
    events = Source(CHANGES).events
    with Publisher(settings) as pub:
        pub.publish(topic, events)
    with monkeypatch.context() as m:
        m.setattr(consume, "IDLE_GIVE_UP_S", -1.0)  # gives up after its first poll
        m.setattr(settings, "batch_size", 1)  # which reads one record
        with pytest.raises(ReadEndedShortError, match="what it read is committed") as raised:
            Archiver(settings).run_once(topic)
    first = raised.value.report.read
    assert first < len(events)
    assert Archiver(settings).run_once(topic).appended == len(events) - first
    checked = verify(settings)
    assert checked.ok and checked.entries == len(events)


def test_only_dataset_topics_are_archived(settings: Settings, unique: str) -> None:
    topic = f"lgsp.79.760.26734.d{unique}.dossier"
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.ensure_topic(topic)  # creates <topic>.dlq as well
    ensure_topics(settings, {f"lgsp.x{unique}.odd": None})
    found = list_dataset_topics(settings, f"*{unique}*")
    assert found == [topic]
    assert list_dataset_topics(settings, f"lgsp.79.*.d{unique}.*,lgsp.nothing.*") == [topic]


def test_follow_archives_new_events_until_stopped(settings: Settings, unique: str) -> None:
    topic = f"lgsp.79.760.26734.f{unique}.dossier"
    register_topic(settings, topic)
    events = Source(CHANGES).events
    with Publisher(settings) as pub:
        pub.publish(topic, events[:5])
    stop = threading.Event()
    reports = []
    result = {}

    def follow() -> None:
        result["total"] = Archiver(settings).follow(
            topic,
            interval_s=0.2,
            checkpoint_every_s=3600,
            should_stop=stop.is_set,
            on_report=reports.append,
        )

    worker = threading.Thread(target=follow)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while sum(r.appended for r in reports) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        with Publisher(settings) as pub:
            pub.publish(topic, events[5:])
        while sum(r.appended for r in reports) < len(events) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        worker.join(30)
    total = result["total"]
    assert total.appended == len(events)
    assert total.checkpoint is not None  # signed when stopping
    checked = verify(settings)  # fails closed: an entry left unsigned would be a problem
    assert checked.ok and checked.entries == len(events) and checked.unsigned_entries == 0


def _published(settings: Settings, topic: str) -> dict[tuple[str, int], int]:
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.publish(topic, Source(CHANGES).events[:4])
    return dict(broker_guard.known(settings, [topic]).ends)


def listed(settings: Settings) -> tuple[str | None, set[str]]:
    cluster_id, names = broker_topics(settings)
    return cluster_id, set(names)


def test_the_light_guard_judges_cluster_and_topics_but_not_ends(
    settings: Settings, unique: str
) -> None:
    topic = f"lgsp.79.760.26734.l{unique}.dossier"
    ends = _published(settings, topic)
    assert ends and all(end > 0 for end in ends.values())
    # the bus saw the topic reach further than the broker holds: only the full check sees it
    broker_guard.record_ends(settings, broker_guard.PUBLISH, {k: v + 5 for k, v in ends.items()})
    broker_guard.check_listed(settings, None, lambda: listed(settings))
    with pytest.raises(broker_guard.BrokerDataLostError, match=topic):
        broker_guard.check(settings)
    # a topic the bus saw that the broker does not hold: the light check sees it too
    gone = f"lgsp.79.760.26734.m{unique}.dossier"
    broker_guard.record_ends(settings, broker_guard.PUBLISH, {(gone, 0): 3})
    with pytest.raises(broker_guard.BrokerDataLostError, match=f"topic {gone} is missing"):
        broker_guard.check_listed(settings, [gone], lambda: listed(settings))


def test_a_followed_archiver_checks_in_full_at_start_then_lightly(
    settings: Settings, unique: str
) -> None:
    archived = f"lgsp.79.760.26734.a{unique}.dossier"
    other = f"lgsp.79.760.26734.o{unique}.dossier"  # known to the bus, not archived here
    _published(settings, archived)
    ends = _published(settings, other)
    broker_guard.record_ends(settings, broker_guard.PUBLISH, {k: v + 5 for k, v in ends.items()})
    archiver = Archiver(settings)
    with pytest.raises(broker_guard.BrokerDataLostError, match=other):
        archiver.follow(archived, interval_s=0.1, should_stop=lambda: False)  # full at start
    with pytest.raises(broker_guard.BrokerDataLostError, match=other):
        archiver.run_once(archived)  # a bounded run: the full check
    not_due = broker_guard.Periodic(settings, None, 3600)  # between two full checks
    report = archiver.run_once(archived, guard=not_due)  # light: the other's ends unseen
    assert report.appended == 4
    due = broker_guard.Periodic(settings, None, 0)
    with pytest.raises(broker_guard.BrokerDataLostError, match=other):
        archiver.run_once(archived, guard=due)
