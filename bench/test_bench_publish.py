"""Publishing through the bus API vs raw kafka-python sends of the same encoded bytes."""

from __future__ import annotations

import datetime as dt
import decimal
import time

import pytest
from kafka import KafkaProducer

from bench._report import record, size
from bus.config import Settings
from bus.envelope import make_event
from bus.kafka.options import client_options
from bus.publish import Publisher
from tests.helpers import register_topic

pytestmark = pytest.mark.bench
VN = dt.timezone(dt.timedelta(hours=7))


def _events(n: int) -> list[dict]:
    base = dt.datetime(2026, 3, 1, 8, tzinfo=VN)
    source = {"agency": "ubnd-phuong-tan-dinh", "unit": "26734", "system": "hoso"}
    return [
        make_event(
            op="c",
            key={"id": i},
            source=source,
            ts_ms=1_770_000_000_000 + i,
            after={
                "id": i,
                "name": f"Nguyễn Văn An {i}",
                "amount": decimal.Decimal(i) / 100,
                "born": dt.date(1990, 1, 1),
                "seen": base,
            },
        )
        for i in range(n)
    ]


def test_publish_rate_vs_raw(settings: Settings, unique: str) -> None:
    n = size(200_000, 5_000)
    api_topic = f"lgsp.79.760.26734.bench.api{unique}"
    raw_topic = f"lgsp.79.760.26734.bench.raw{unique}"
    for topic in (api_topic, raw_topic):
        register_topic(settings, topic)
    events = _events(n)

    opts = client_options(settings)
    raw = KafkaProducer(
        **opts,
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.kafka.linger_ms,
        batch_size=settings.kafka.batch_size,
    )
    with Publisher(settings) as pub:
        pub.ensure_topic(api_topic)
        pub.ensure_topic(raw_topic)
        encoded = [pub.encode(raw_topic, e) for e in events]
        # warm both paths up (connections, metadata, first batches) before timing
        pub.publish(api_topic, events[:200])
        for k, v in encoded[:200]:
            raw.send(raw_topic, key=k, value=v)
        raw.flush()
        timings = {"api": 0.0, "raw": 0.0}
        # alternate the two in halves so that neither profits from running second
        half = n // 2
        for lo, hi in ((0, half), (half, n)):
            started = time.perf_counter()
            futures = [raw.send(raw_topic, key=k, value=v) for k, v in encoded[lo:hi]]
            raw.flush()
            for f in futures:
                f.get(30)
            timings["raw"] += time.perf_counter() - started
            started = time.perf_counter()
            report = pub.publish(api_topic, events[lo:hi])
            timings["api"] += time.perf_counter() - started
            assert report.sent == hi - lo
    raw.close()
    api_s, raw_s = timings["api"], timings["raw"]

    api_rate, raw_rate = n / api_s, n / raw_s
    record(
        "publish: bus API vs raw kafka-python",
        {
            "records": n,
            "bus_api_msg_s": round(api_rate),
            "raw_msg_s": round(raw_rate),
            "ratio": round(api_rate / raw_rate, 3),
        },
        target="ratio >= 0.8",
    )
