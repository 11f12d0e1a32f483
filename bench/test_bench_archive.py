"""Archive verification speed vs a plain SHA-256 loop over the same bytes (target >= 100k/s).

Entries are built by the archiver's own row functions and inserted in bulk (30 chains: 10
topics x 3 partitions, ~330-byte framed payloads as a typical envelope), one checkpoint is
signed, then ``verify`` recomputes every chain from the control database (SQLite) and checks
the signatures. The baseline is
``sha256(prev + payload)`` in a Python loop over the same payloads, with nothing read from a
database: the ratio says how much of the hashing speed the verifier keeps.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from bench._report import machine, record, size
from bus.archive.archiver import Archiver, entry_row, write_head
from bus.archive.chain import genesis, parse_dataset_topic
from bus.archive.models import ArchiveEntry
from bus.archive.verify import verify
from bus.config import Settings
from bus.db import open_engine

pytestmark = pytest.mark.bench

CHUNK = 20_000


def _fill(settings: Settings, n: int) -> list[bytes]:
    """n entries over 30 chains, built and written by the archiver's own row functions."""
    topics = [parse_dataset_topic(f"lgsp.79.760.{26734 + t}.bench.dossier") for t in range(10)]
    chains = [(t, p) for t in topics for p in range(3)]
    heads = {(t.topic, p): (genesis(t.topic, p), 0) for t, p in chains}
    payloads: list[bytes] = []
    entry_t = ArchiveEntry.__table__
    rows: list[dict] = []
    with open_engine(settings).begin() as conn:
        for i in range(n):
            parsed, partition = chains[i % len(chains)]
            prev, seq = heads[(parsed.topic, partition)]
            seq += 1
            payload = b"\x00\x00\x00\x00\x07" + os.urandom(16) + b"x" * 310
            fields = {
                "event_id": f"{i:032x}",
                "op": "u",
                "ts_ms": 1_772_000_000_000 + i,
                "event_key": f'{{"id":{i}}}',
                "source_unit": parsed.unit_path.split(".")[-1],
            }
            row = entry_row(
                parsed,
                partition,
                seq=seq,
                epoch=0,
                offset=seq - 1,
                schema_id=7,
                fields=fields,
                payload=payload,
                prev=prev,
                archived_ms=0,
            )
            heads[(parsed.topic, partition)] = (row["entry_hash"], seq)
            payloads.append(payload)
            rows.append(row)
            if len(rows) == CHUNK:
                conn.execute(entry_t.insert(), rows)
                rows = []
        if rows:
            conn.execute(entry_t.insert(), rows)
        for parsed, partition in chains:
            prev, seq = heads[(parsed.topic, partition)]
            write_head(
                conn,
                parsed,
                partition,
                new=True,
                epoch=0,
                head_seq=seq,
                head_offset=seq - 1,
                head_hash=prev,
                updated_ms=0,
            )
    return payloads


def test_verify_rate_vs_plain_sha256(offline_settings: Settings) -> None:
    n = size(1_000_000, 50_000)
    payloads = _fill(offline_settings, n)
    assert Archiver(offline_settings).checkpoint(force=True) is not None

    started = time.perf_counter()
    prev = b"\x00" * 32
    sha256 = hashlib.sha256
    for payload in payloads:
        prev = sha256(prev + payload).digest()
    baseline_rate = n / (time.perf_counter() - started)

    report = verify(offline_settings)
    assert report.ok, report.problems[:3]
    assert report.entries == n and len(report.chains) == 30 and report.checkpoints == 1
    record(
        "archive verify: entries/s vs plain sha256 loop",
        {
            "entries": n,
            "verify_entries_s": round(report.rate),
            "baseline_sha256_s": round(baseline_rate),
            "ratio": round(report.rate / baseline_rate, 3),
            "db": "sqlite",
            "machine": machine(),
        },
        target="verify >= 100000 entries/s",
    )
