"""Archive verification speed vs a plain SHA-256 loop over the same bytes (target >= 100k/s).

Entries are inserted directly in bulk (30 chains: 10 topics x 3 partitions, ~330-byte framed
payloads as a typical envelope), two checkpoints are signed, then ``verify`` recomputes every
chain from the control database (SQLite) and checks the signatures. The baseline is
``sha256(prev + payload)`` in a Python loop over the same payloads, with nothing read from a
database: the ratio says how much of the hashing speed the verifier keeps.
"""

from __future__ import annotations

import hashlib
import os
import time

import pytest

from bench._report import machine, record, size
from bus.archive.archiver import Archiver
from bus.archive.chain import canonical_bytes, chain_hash, genesis, parse_dataset_topic
from bus.archive.models import ArchiveChain, ArchiveEntry
from bus.archive.verify import verify
from bus.config import Settings
from bus.db import open_engine

pytestmark = pytest.mark.bench

CHUNK = 20_000


def _fill(settings: Settings, n: int) -> list[bytes]:
    topics = [f"lgsp.79.760.{26734 + t}.bench.dossier" for t in range(10)]
    chains = [(t, p) for t in topics for p in range(3)]
    heads = {c: (genesis(*c), 0) for c in chains}
    payloads: list[bytes] = []
    entry_t, chain_t = ArchiveEntry.__table__, ArchiveChain.__table__
    engine = open_engine(settings)
    rows: list[dict] = []
    with engine.begin() as conn:
        for i in range(n):
            topic, partition = chains[i % len(chains)]
            prev, seq = heads[(topic, partition)]
            seq += 1
            payload = b"\x00\x00\x00\x00\x07" + os.urandom(16) + b"x" * 310
            fields = {
                "epoch": 0,
                "offset": seq - 1,
                "ts_ms": 1_772_000_000_000 + i,
                "schema_id": 7,
                "op": "u",
                "event_id": f"{i:032x}",
                "source_unit": topic.split(".")[3],
                "key": f'{{"id":{i}}}',
                "payload": payload,
            }
            prev = chain_hash(prev, seq, canonical_bytes(**fields))
            heads[(topic, partition)] = (prev, seq)
            payloads.append(payload)
            parsed = parse_dataset_topic(topic)
            rows.append(
                {
                    "topic": topic,
                    "kafka_partition": partition,
                    "seq": seq,
                    "epoch": 0,
                    "kafka_offset": seq - 1,
                    "dataset": parsed.dataset,
                    "unit_path": parsed.unit_path,
                    "event_id": fields["event_id"],
                    "op": "u",
                    "ts_ms": fields["ts_ms"],
                    "event_key": fields["key"],
                    "source_unit": fields["source_unit"],
                    "schema_id": 7,
                    "payload": payload,
                    "entry_hash": prev,
                    "archived_ms": 0,
                }
            )
            if len(rows) == CHUNK:
                conn.execute(entry_t.insert(), rows)
                rows = []
        if rows:
            conn.execute(entry_t.insert(), rows)
        for (topic, partition), (prev, seq) in heads.items():
            parsed = parse_dataset_topic(topic)
            conn.execute(
                chain_t.insert().values(
                    topic=topic,
                    kafka_partition=partition,
                    dataset=parsed.dataset,
                    unit_path=parsed.unit_path,
                    epoch=0,
                    head_seq=seq,
                    head_offset=seq - 1,
                    head_hash=prev,
                    signed_seq=0,
                    updated_ms=0,
                )
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
