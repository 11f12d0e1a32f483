"""Writing generated records as JSON lines or CSV (the shapes ``lgsp publish`` and people read)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import Any, TextIO

from bus.envelope import to_jsonable
from bus.serde.jsoncodec import dumps


def write_jsonl(records: Iterable[dict[str, Any]], out: TextIO) -> int:
    """One JSON object per line: UTC ISO timestamps, ISO dates, decimals as strings."""
    count = 0
    for record in records:
        out.write(dumps(record))
        out.write("\n")
        count += 1
    return count


def write_csv(records: Iterable[dict[str, Any]], out: TextIO, columns: list[str]) -> int:
    """A header and one row per record; nested values (status history) as JSON text."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for record in records:
        row = []
        for name in columns:
            value = to_jsonable(record.get(name))
            if isinstance(value, list | dict):
                value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            row.append("" if value is None else value)
        writer.writerow(row)
        count += 1
    return count
