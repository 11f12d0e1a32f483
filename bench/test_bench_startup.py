"""Start-up: wall time of ``lgsp --help``, ``--version``, ``units show 26734``, ``dataset
list`` and ``connector list`` (on an empty state folder: the first run creates the control
database), each the median of N runs in a new process, beside a bare ``python -c pass``
measured in the same run.
Target: ``--help`` and ``--version`` <= 0.3 s. N = 15 with LGSP_BENCH_FULL=1, else 3.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench._report import machine, record, size

pytestmark = pytest.mark.bench

RUNS = size(15, 3)
TARGET_S = 0.3
LGSP = "from bus.cli.main import main; main()"
COMMANDS = {
    "help": ["--help"],
    "version": ["--version"],
    "units_show": ["units", "show", "26734"],
    "dataset_list": ["dataset", "list"],
    "connector_list": ["connector", "list"],
}


def _median_s(argv: list[str], env: dict[str, str]) -> float:
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, check=True, timeout=120)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def test_bench_startup(tmp_path: Path) -> None:
    env = {**os.environ, "LGSP_HOME": str(tmp_path / "home")}
    env.pop("LGSP_DATABASE_URL", None)
    figures: dict[str, object] = {"runs": RUNS}
    figures["python_s"] = round(_median_s([sys.executable, "-c", "pass"], env), 3)
    for name, args in COMMANDS.items():
        figures[f"{name}_s"] = round(_median_s([sys.executable, "-c", LGSP, *args], env), 3)
    for name in ("help", "version"):
        figures[f"{name}_to_target"] = round(float(figures[f"{name}_s"]) / TARGET_S, 2)  # type: ignore[arg-type]
    figures["machine"] = machine()
    record(
        "start-up: lgsp commands, median wall time", figures, f"--help, --version <= {TARGET_S} s"
    )
