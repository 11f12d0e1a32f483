"""Generating Bình Tân's 778,298 residents (and a year of dossiers) as one lazy stream."""

from __future__ import annotations

import resource
import time

import pytest

from bench._report import record, size
from bus.generate import BINH_TAN_PERMANENT, BINH_TAN_RESIDENTS, generate

pytestmark = pytest.mark.bench


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_bench_generate_binh_tan_residents() -> None:
    n = size(BINH_TAN_RESIDENTS, 50_000)
    rss_before = _max_rss_mb()
    started = time.perf_counter()
    total = permanent = 0
    for resident in generate("dancu.resident", n, 2026, ["777"]):
        total += 1
        permanent += resident["residence_type"] == "permanent"
    seconds = time.perf_counter() - started
    assert total == n
    assert permanent == round(n * BINH_TAN_PERMANENT / BINH_TAN_RESIDENTS)
    if n == BINH_TAN_RESIDENTS:
        assert permanent == BINH_TAN_PERMANENT
    record(
        "generate: Bình Tân residents (dancu.resident)",
        {
            "rows": n,
            "seconds": round(seconds, 2),
            "rows_s": round(n / seconds),
            "max_rss_growth_mb": round(_max_rss_mb() - rss_before, 1),
        },
        target="778,298 residents in under 60 s, memory flat",
    )
    assert seconds < 60 * n / BINH_TAN_RESIDENTS + 5


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
