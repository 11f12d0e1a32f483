"""Generating Bình Tân's 778,298 residents (and a year of dossiers) as one lazy stream."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._report import peak_rss_mb, record, size
from bus.generate import BINH_TAN_PERMANENT, BINH_TAN_RESIDENTS, generate

pytestmark = pytest.mark.bench


def child(n: int) -> None:
    """Generate ``n`` residents in a fresh process; print time, counts and memory as JSON."""
    baseline = peak_rss_mb()
    started = time.perf_counter()
    total = permanent = 0
    for resident in generate("dancu.resident", n, 2026, ["777"]):
        total += 1
        permanent += resident["residence_type"] == "permanent"
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "total": total,
                "permanent": permanent,
                "seconds": seconds,
                "rss_growth_mb": peak_rss_mb() - baseline,
            }
        )
    )


def _in_child(n: int) -> dict:
    code = f"import bench.test_bench_generate as b; b.child({n})"
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_bench_generate_binh_tan_residents() -> None:
    n = size(BINH_TAN_RESIDENTS, 50_000)
    tenth = _in_child(n // 10)
    full = _in_child(n)
    assert full["total"] == n
    assert full["permanent"] == round(n * BINH_TAN_PERMANENT / BINH_TAN_RESIDENTS)
    if n == BINH_TAN_RESIDENTS:
        assert full["permanent"] == BINH_TAN_PERMANENT
    record(
        "generate: Bình Tân residents (dancu.resident)",
        {
            "rows": n,
            "seconds": round(full["seconds"], 2),
            "rows_s": round(n / full["seconds"]),
            "rss_growth_mb": round(full["rss_growth_mb"], 1),
            "rss_growth_mb_at_tenth": round(tenth["rss_growth_mb"], 1),
        },
        target="778,298 residents in under 60 s, memory flat in row count",
    )


def test_bench_generate_dossiers() -> None:
    n = size(200_000, 5_000)
    started = time.perf_counter()
    count = sum(1 for _ in generate("tthc.dossier", n, 2026, ["760"]))
    seconds = time.perf_counter() - started
    assert count == n
    record(
        "generate: District 1 dossiers (tthc.dossier)",
        {"rows": n, "seconds": round(seconds, 2), "rows_s": round(n / seconds)},
        target="informative (timelines use the working-day calendar)",
    )
