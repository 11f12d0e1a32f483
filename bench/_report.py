"""Benchmarks print their figures and append them to ``bench/out/results.jsonl``;
``make bench`` then writes ``bench/results.md`` from that file (see ``bench/summary.py``)."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "out"


def full_size() -> bool:
    return os.environ.get("LGSP_BENCH_FULL") == "1"


def size(full: int, small: int) -> int:
    return full if full_size() else small


def record(name: str, figures: dict[str, Any], target: str = "") -> None:
    """Print one benchmark's figures and keep them for the summary."""
    line = {"name": name, "full": full_size(), "at": time.time(), "target": target, **figures}
    print(f"\n[bench] {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))
    if target:
        print(f"[bench] {name}: target {target}")
    OUT.mkdir(exist_ok=True)
    with (OUT / "results.jsonl").open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, Linux). ``getrusage``'s ru_maxrss is not
    used: it keeps the parent's high-water mark across fork and exec, so a child of a big
    pytest process would report the parent's memory."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
