"""Log-based capture (``mode: log``) against polling (``mode: incremental``) on PostgreSQL.

A table of N rows gets U single-row updates, each its own transaction; then a bounded run of a
``mode: log`` source and one of an incremental source (cursor ``updated_at``) over the same
table read what changed. Figures: events/s of each (the log publishes every update, polling
only each row's last state) and their ratio. Then a followed log source runs while R updates
a second are committed for D seconds: commit-to-topic latency (the record's producer
timestamp minus the event's ``ts_ms``, the commit time) p50/p99.
N = U = 1,000,000, R = 1,000/s, D = 30 s with LGSP_BENCH_FULL=1; else 5,000, 5,000, 200/s, 3 s.
Targets (printed, not asserted): log events/s >= polling rows/s; p99 latency <= 1 s.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from bench._report import machine, record, size
from bus.config import Settings
from bus.connector_service.registration import register
from bus.consume import Consumer, Message
from bus.sync import Follow, run
from tests.integration.cdc.conftest import logical_pg  # noqa: F401 - the fixture
from tests.integration.cdc.helpers import drop_log
from tests.integration.cdc.pg_cluster import Cluster
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.bench

N = size(1_000_000, 5_000)
U = size(1_000_000, 5_000)
RATE = size(1_000, 200)
SECONDS = size(30, 3)
# U single-row updates, each committed on its own
UPDATES = (
    "DO $$ BEGIN FOR i IN 1..{u} LOOP UPDATE {t} SET so = so + 1, "
    "updated_at = clock_timestamp() WHERE id = 1 + mod(i - 1, {n}); COMMIT; END LOOP; END $$"
)


def _sql(url: str, statement: str) -> Any:
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _topic(settings: Settings, topic: str) -> list[Message]:
    out: list[Message] = []
    with Consumer(settings, None) as consumer:  # type: ignore[arg-type]
        consumer.run_bounded([topic], out.extend, from_beginning=True, commit=False)
    return out


def _paced_updates(url: str, table: str, rate: int, seconds: float) -> int:
    """Single-row update transactions at ``rate`` a second for ``seconds``."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    done = 0
    started = time.monotonic()
    with engine.connect() as conn:
        statement = sa.text(
            f"UPDATE {table} SET so = so + 1, updated_at = clock_timestamp() WHERE id = :k"  # noqa: S608
        )
        while time.monotonic() - started < seconds:
            conn.execute(statement, {"k": 1 + done % N})
            done += 1
            ahead = done / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    engine.dispose()
    return done


def test_log_capture_against_polling(
    settings: Settings,
    logical_pg: Cluster,  # noqa: F811 - the fixture imported above
    unique: str,
) -> None:
    url, table = logical_pg.url, f"bench_log_{unique}"
    _sql(
        url,
        f"CREATE TABLE {table} (id int PRIMARY KEY, ten text NOT NULL, so bigint NOT NULL, "
        "updated_at timestamptz NOT NULL)",
    )
    _sql(
        url,
        f"INSERT INTO {table} SELECT g, 'Nguyễn Văn ' || g, 0, now() "  # noqa: S608
        f"FROM generate_series(1, {N}) g",
    )
    logged = [{"table": table, "dataset": f"tthc.bl{unique}", "mode": "log"}]
    polled = [{"table": table, "dataset": f"tthc.bp{unique}", "cursor": "updated_at"}]
    log_topic = (
        register(settings, config("postgresql", "source", url, logged, name="log", batch_size=2000))
        .tables[0]
        .topic
    )
    register(settings, config("postgresql", "source", url, polled, name="poll", batch_size=2000))
    try:
        assert run(settings, "log").rows == N  # the snapshot
        assert run(settings, "poll").rows == N
        _sql(
            url,
            UPDATES.replace("{t}", table).replace("{u}", str(U)).replace("{n}", str(N)),
        )
        started = time.perf_counter()
        log_rows = run(settings, "log").rows
        log_s = time.perf_counter() - started
        started = time.perf_counter()
        poll_rows = run(settings, "poll").rows
        poll_s = time.perf_counter() - started
        assert log_rows == U
        assert poll_rows == min(U, N)

        # commit-to-topic latency of a followed log source at RATE updates/s
        stop = threading.Event()
        follow = Follow(should_stop=stop.is_set, poll_s=0.05)
        thread = threading.Thread(target=lambda: run(settings, "log", follow=follow))
        thread.start()
        time.sleep(2.0)  # the follow is reading
        begin_ms = int(time.time() * 1000)
        paced = _paced_updates(url, table, RATE, SECONDS)
        time.sleep(2.0)
        stop.set()
        thread.join(60)
        latencies = sorted(
            m.timestamp_ms - m.value["ts_ms"]
            for m in _topic(settings, log_topic)
            if m.value["op"] == "u" and m.value["ts_ms"] >= begin_ms
        )
        assert len(latencies) == paced
        p50 = statistics.median(latencies)
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        log_rate, poll_rate = log_rows / log_s, poll_rows / poll_s
        record(
            "pglog",
            {
                "machine": machine(),
                "rows": N,
                "updates": U,
                "log_events_per_s": round(log_rate),
                "poll_rows_per_s": round(poll_rate),
                "log_over_poll": round(log_rate / poll_rate, 2),
                "log_run_s": round(log_s, 2),
                "poll_run_s": round(poll_s, 2),
                "latency_rate_per_s": RATE,
                "latency_updates": paced,
                "latency_p50_ms": p50,
                "latency_p99_ms": p99,
            },
            target="log events/s >= polling rows/s; p99 commit-to-topic <= 1000 ms",
        )
    finally:
        drop_log(url, "log", table)
