"""The once-only lookup: single lookups through a real ``lgsp serve`` at 200 requests/s.

A dataset of N citizens (citizen_id key, PII tokenised for a PII-free grant) is written into
its lookup store (the store's own sink connector, ``lookup-<dataset>``, on the default SQLite
control database) by the SQL sink's write path; then a client in a process of its own sends
single GET lookups open-loop at 200/s for S seconds (latency from each request's scheduled
start, so a client or server that falls behind counts its wait) with a random sample of
existing keys; then the same keys are looked up directly in SQL (one connection, one after
another) in the same run. Figures: p50/p99/max and throughput of both, ``/healthz`` at the
same rate (the HTTP floor of this server and client: no key, no database), and the mean time
of each step of a lookup measured in process (key check, grant check, store read, masking,
access-log write by the API's group-commit writer).
N = 1,000,000 and S = 30 with LGSP_BENCH_FULL=1, else 5,000 and 2 (a smoke run).
Target (printed, not asserted): p99 <= 20 ms for a single lookup at 200 requests/s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from bench._report import machine, record, size
from bus.catalog import add_agency, add_grant
from bus.catalog.access_log import AccessLogWriter
from bus.catalog.api_keys import authenticate, create_key
from bus.catalog.grants import live_grant
from bus.catalog.masking import mask_record
from bus.config import Settings
from bus.context import Context
from bus.envelope import canonical_key, record_schema_of
from bus.lookup.reader import StoreReader
from bus.lookup.store import ensure_store, store_name, store_table
from bus.registry import subject_for
from bus.sync import connector_for
from bus.units import topic_name
from connectors.base import Batch
from tests.integration.api.conftest import LGSP, free_port
from tests.unit.catalog.support import FAR_FUTURE, citizen_id, publish

pytestmark = pytest.mark.bench

N = size(1_000_000, 5_000)
SECONDS = size(30, 2)
RATE = 200
TARGET_MS = 20.0
PURPOSE = "Điền sẵn thông tin công dân trên biểu mẫu trực tuyến"
ROOT = Path(__file__).resolve().parent.parent
WRITE_BATCH = 5000


def _event(i: int) -> dict[str, Any]:
    record = {
        "citizen_id": citizen_id(i),
        "full_name": f"Nguyễn Thị Minh {i}",
        "birth_date": dt.date(1950, 1, 1) + dt.timedelta(days=i % 20000),
        "phone": f"09{i:08d}",
        "unit": "26734",
        "household_id": f"HK-{i // 3}",
        "note": None,
    }
    return {
        "event_id": f"ev-{i}",
        "op": "c",
        "ts_ms": 1_770_000_000_000 + i,
        "source": {"agency": "cong-an-tp", "unit": "79", "system": "b", "table": "t"},
        "key": canonical_key({"citizen_id": record["citizen_id"]}),
        "before": None,
        "after": record,
    }


def _fill(ctx: Context, dataset: str) -> float:
    """Write N records into the store with the sink's own write path; returns seconds."""
    ensure_store(ctx, dataset)
    topic = topic_name(ctx.hierarchy, "79", dataset)
    schema = record_schema_of(ctx.registry.latest(subject_for(topic)).schema)
    connector = connector_for(ctx, store_name(dataset))
    table = store_table(dataset)
    started = time.perf_counter()
    with connector:
        connector.prepare(table, schema)
        for start in range(0, N, WRITE_BATCH):
            events = [_event(i) for i in range(start, min(N, start + WRITE_BATCH))]
            report = connector.write(Batch(table, events, schema=schema))
            assert report.applied == len(events) and not report.rejected
    return time.perf_counter() - started


def _mean_ms(step: Callable[[], object], runs: int = 300) -> float:
    step()
    started = time.perf_counter()
    for _ in range(runs):
        step()
    return round((time.perf_counter() - started) / runs * 1000, 3)


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process ``pid`` used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _client(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.lookup_client", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=SECONDS * 20 + 600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_bench_lookup(settings: Settings, tmp_path: Path) -> None:
    dataset = "dancu.bench_lookup"
    publish(settings, tmp_path, dataset, units=["79"])
    add_agency(settings, "ubnd-q1", "Ủy ban nhân dân Quận 1")
    grant = add_grant(
        settings,
        dataset=dataset,
        agency="ubnd-q1",
        purpose=PURPOSE,
        legal_basis="Luật Cư trú 2020",
        fields="citizen_id,full_name,birth_date,unit,household_id",
        expires=FAR_FUTURE,
    )
    _, key = create_key(settings, "ubnd-q1", "consumer")
    ctx = Context.build(settings)
    fill_s = _fill(ctx, dataset)
    rng = random.Random(16)
    sample = [citizen_id(rng.randrange(N)) for _ in range(RATE * SECONDS)]
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("\n".join(sample), encoding="utf-8")

    # where a lookup's time goes, step by step, in this process
    reader = StoreReader(ctx, dataset)
    view = live_grant(settings, agency="ubnd-q1", dataset=dataset, purpose=PURPOSE)
    found = reader.get(sample[0])
    assert found is not None
    writer = AccessLogWriter(settings)  # the API's (group commit), not record_access's
    steps = {
        "step_key_check_ms": _mean_ms(lambda: authenticate(settings, key)),
        "step_grant_check_ms": _mean_ms(
            lambda: live_grant(settings, agency="ubnd-q1", dataset=dataset, purpose=PURPOSE)
        ),
        "step_store_read_ms": _mean_ms(lambda: reader.get(rng.choice(sample))),
        "step_mask_ms": _mean_ms(lambda: mask_record(found.record, view)),
        "step_access_log_ms": _mean_ms(
            lambda: writer.write(
                principal="bench",
                agency="ubnd-q1",
                dataset=dataset,
                purpose=PURPOSE,
                records=1,
                action="lookup",
                grant_id=grant.id,
            )
        ),
    }
    reader.close()

    port = free_port()
    env = {
        **os.environ,
        "LGSP_HOME": str(settings.home),
        "LGSP_KAFKA_BOOTSTRAP": settings.kafka_bootstrap or "",
        "LGSP_API__RATE_PER_MINUTE": str(10**7),
    }
    env.pop("LGSP_DATABASE_URL", None)
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([LGSP, "serve", "--port", str(port)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(url + "/healthz", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "lgsp serve did not start"
            time.sleep(0.2)
        args = (url, key, dataset, PURPOSE, str(RATE), str(SECONDS), str(keys_file))
        cpu = _cpu_s(proc.pid)
        api = _client("api", *args)
        api_cpu = _cpu_s(proc.pid) - cpu
        assert api["statuses"] == {"200": api["requests"]}, api["statuses"]
        cpu = _cpu_s(proc.pid)
        floor = _client("health", url, str(RATE), str(SECONDS))
        floor_cpu = _cpu_s(proc.pid) - cpu
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()
    direct = _client(
        "sql", settings.control_database_url, store_table(dataset), "citizen_id", str(keys_file)
    )
    assert direct["found"] == len(sample)

    figures: dict[str, Any] = {
        "records": N,
        "fill_s": round(fill_s, 1),
        "rate_per_s": RATE,
        "seconds": SECONDS,
        "api_p50_ms": api["p50_ms"],
        "api_p99_ms": api["p99_ms"],
        "api_max_ms": api["max_ms"],
        "api_per_s": api["per_s"],
        "api_server_cpu_ms_per_request": round(api_cpu / api["requests"] * 1000, 2),
        "healthz_p50_ms": floor["p50_ms"],
        "healthz_p99_ms": floor["p99_ms"],
        "healthz_server_cpu_ms_per_request": round(floor_cpu / floor["requests"] * 1000, 2),
        "sql_p50_ms": direct["p50_ms"],
        "sql_p99_ms": direct["p99_ms"],
        "sql_per_s": direct["per_s"],
        **steps,
        "p99_to_target": round(api["p99_ms"] / TARGET_MS, 2),
        "store": "SQLite (control database)",
        "machine": machine(),
    }
    record(
        "once-only lookup: single GET at 200/s via lgsp serve vs direct SQL",
        figures,
        f"p99 <= {TARGET_MS:g} ms at {RATE} requests/s",
    )
