"""The load generator of ``bench/test_bench_lookup.py``, run in a process of its own.

``python -m bench.lookup_client api URL KEY DATASET PURPOSE RATE SECONDS KEYS_FILE``: single
lookups (GET) sent open-loop at RATE requests/s for SECONDS by a pool of threads (one HTTP
session each); a request's latency is from its scheduled start to its answer, so a client that
falls behind counts its wait too. ``... health URL RATE SECONDS``: ``/healthz`` the same way
(the HTTP floor). ``... sql URL TABLE KEY_COLUMN KEYS_FILE``: the same keys
looked up directly in the store's database, one connection, one after another. Prints one JSON
object of figures.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

import requests
import sqlalchemy as sa

WORKERS = 32


def _stats(latencies_s: list[float], seconds: float) -> dict[str, Any]:
    ordered = sorted(latencies_s)
    n = len(ordered)
    return {
        "requests": n,
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(n - 1, int(n * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "per_s": round(n / seconds, 1),
    }


def api(url: str, headers: dict[str, str], paths: list[str], rate: float) -> dict[str, Any]:
    """GET ``paths`` open-loop at ``rate`` per second."""
    local = threading.local()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def fetch(path: str, scheduled: float) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        status = session.get(url + path, headers=headers, timeout=30).status_code
        took = time.perf_counter() - scheduled
        with lock:
            latencies.append(took)
            statuses[status] = statuses.get(status, 0) + 1

    # warm up every worker's connection
    with ThreadPoolExecutor(WORKERS) as pool:
        for i in range(WORKERS):
            pool.submit(fetch, paths[i % len(paths)], time.perf_counter())
    latencies.clear()
    statuses.clear()
    with ThreadPoolExecutor(WORKERS) as pool:
        start = time.perf_counter()
        for i, path in enumerate(paths):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(fetch, path, scheduled)
    elapsed = time.perf_counter() - start
    return {**_stats(latencies, elapsed), "statuses": statuses, "offered_per_s": rate}


def sql(url: str, table: str, column: str, keys: list[str]) -> dict[str, Any]:
    engine = sa.create_engine(url)
    store = sa.Table(table, sa.MetaData(), autoload_with=engine)
    query = sa.select(store).where(store.c[column] == sa.bindparam("k"))
    latencies: list[float] = []
    found = 0
    with engine.connect() as conn:
        conn.execute(query, {"k": keys[0]}).first()
        start = time.perf_counter()
        for key in keys:
            began = time.perf_counter()
            found += conn.execute(query, {"k": key}).first() is not None
            latencies.append(time.perf_counter() - began)
        elapsed = time.perf_counter() - start
    engine.dispose()
    return {**_stats(latencies, elapsed), "found": found}


def main(argv: list[str]) -> int:
    mode = argv[1]
    if mode == "api":
        url, key, dataset, purpose, rate, seconds, keys_file = argv[2:9]
        keys = open(keys_file, encoding="utf-8").read().split()
        total = int(float(rate) * float(seconds))
        paths = [
            f"/v1/datasets/{dataset}/records/{quote(keys[i % len(keys)], safe='')}"
            for i in range(total)
        ]
        headers = {"Authorization": f"Bearer {key}", "X-Purpose": quote(purpose)}
        out = api(url, headers, paths, float(rate))
    elif mode == "health":
        url, rate, seconds = argv[2:5]
        out = api(url, {}, ["/healthz"] * int(float(rate) * float(seconds)), float(rate))
    else:
        url, table, column, keys_file = argv[2:6]
        out = sql(url, table, column, open(keys_file, encoding="utf-8").read().split())
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
