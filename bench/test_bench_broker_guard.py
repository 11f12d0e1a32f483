"""The broker guard's full check vs its light check, as a followed archiver runs them.

``N`` dataset topics (60 at full size, 12 small) hold a few events each, published by the
bus (so it knows their ends). The full check (``broker_guard.check``: the exact end offset of
every partition the bus knows of, one fetch each) runs when ``lgsp archive run --follow``
starts and every ``GUARD_FULL_EVERY_S``; the light check (``broker_guard.check_listed``: cluster
id and topics present, from the topic listing the run makes anyway) on every run in between.
Also timed: one idle followed run (nothing new to archive) with each guard.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from bench._report import machine, record, size
from bus import broker_guard
from bus.archive.archiver import Archiver, broker_topics
from bus.config import Settings
from bus.publish import Publisher
from tests.helpers import register_topic
from tests.integration.test_bus_roundtrip import events

pytestmark = [pytest.mark.bench, pytest.mark.integration]


def _ms(call: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def test_full_vs_light_broker_guard(settings: Settings, unique: str) -> None:
    n = size(60, 12)
    topics = [f"lgsp.79.760.26734.g{unique}.d{i}" for i in range(n)]
    with Publisher(settings) as pub:
        for topic in topics:
            register_topic(settings, topic)
            assert pub.publish(topic, events(3)).sent == 3
    partitions = len(broker_guard.known(settings).ends)
    full_ms = _ms(lambda: broker_guard.check(settings), 5)
    cluster_id, names = broker_topics(settings)
    listing_ms = _ms(lambda: broker_topics(settings), 5)
    light_ms = _ms(
        lambda: broker_guard.check_listed(settings, None, lambda: (cluster_id, set(names))), 5
    )
    archiver = Archiver(settings)
    pattern = f"lgsp.*.g{unique}.*"
    archiver.run_once(pattern, record_idle=False)  # archive everything once
    light = broker_guard.Periodic(settings, None, 3600)  # not due: the light check every run
    run_full_ms = _ms(lambda: archiver.run_once(pattern, sign=False, record_idle=False), 3)
    run_light_ms = _ms(
        lambda: archiver.run_once(pattern, sign=False, record_idle=False, guard=light), 3
    )
    record(
        "broker guard: full vs light check (followed archiver)",
        {
            "topics": n,
            "partitions_known": partitions,
            "full_check_ms": round(full_ms, 1),
            "light_check_ms": round(light_ms, 1),
            "topic_listing_ms": round(listing_ms, 1),
            "idle_run_full_guard_ms": round(run_full_ms, 1),
            "idle_run_light_guard_ms": round(run_light_ms, 1),
            "machine": machine(),
        },
        target="light check well below the full one",
    )
