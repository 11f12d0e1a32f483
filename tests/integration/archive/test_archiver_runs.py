"""The archiver's runs: a crash on either side of the archive commit neither loses nor
duplicates an event; DLQ topics and non-dataset topics are left out; follow mode stops."""

from __future__ import annotations

import threading
import time

import pytest

from bus.archive.archiver import Archiver, list_dataset_topics
from bus.archive.verify import verify
from bus.config import Settings
from bus.consume import Message
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
