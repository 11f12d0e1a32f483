"""Write ``bench/results.md`` from the figures the benchmarks of this run appended."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

from bench._report import OUT, machine

RESULTS = Path(__file__).resolve().parent / "results.md"


def main() -> int:
    source = OUT / "results.jsonl"
    if not source.is_file():
        print("no benchmark figures found (run make bench)", file=sys.stderr)
        return 1
    rows = [json.loads(line) for line in source.read_text(encoding="utf-8").splitlines() if line]
    lines = [
        "# Benchmark results",
        "",
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {machine()};"
        " each baseline was measured in the same run as the figure it is compared with.",
        "",
    ]
    for row in rows:
        name, target, full = row.pop("name"), row.pop("target", ""), row.pop("full", False)
        row.pop("at", None)
        lines.append(f"## {name}{'' if full else ' (small size)'}")
        lines.append("")
        lines.append("| figure | value |")
        lines.append("|---|---|")
        lines += [f"| {k} | {v} |" for k, v in row.items()]
        if target:
            lines.append(f"| target | {target} |")
        lines.append("")
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
