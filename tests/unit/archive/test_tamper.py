"""Every kind of tampering with the archive table is detected, with its position.

The archive is filled through the archiver's append path with synthetic messages (no broker),
signed, then edited with direct SQL, as someone with database access would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, delete, insert, select, update

from bus.archive.archiver import Archiver, Plan
from bus.archive.chain import canonical_bytes, chain_hash, genesis
from bus.archive.models import ArchiveChain, ArchiveCheckpoint, ArchiveEntry
from bus.archive.verify import Problem, VerifyReport, verify
from bus.config import Settings
from bus.db import open_engine
from tests.unit.archive._synthetic import TOPIC, messages

E = ArchiveEntry.__table__
C = ArchiveChain.__table__
K = ArchiveCheckpoint.__table__
OTHER = "lgsp.79.760.tthc.dossier"


@dataclass
class Archive:
    settings: Settings
    engine: Engine
    archiver: Archiver


@pytest.fixture
def archive(offline_settings: Settings) -> Iterator[Archive]:
    """p0 of TOPIC: 35 entries, signed to 30; OTHER p1: 30 entries, signed to 30."""
    archiver = Archiver(offline_settings)
    archiver.append(messages(20) + messages(20, topic=OTHER, partition=1))
    assert archiver.checkpoint() is not None
    archiver.append(messages(10, start=20) + messages(10, start=20, topic=OTHER, partition=1))
    assert archiver.checkpoint() is not None
    archiver.append(messages(5, start=30))
    yield Archive(offline_settings, open_engine(offline_settings), archiver)


def where(seq: int, topic: str = TOPIC, partition: int = 0):  # type: ignore[no-untyped-def]
    return (E.c.topic == topic, E.c.kafka_partition == partition, E.c.seq == seq)


def row(a: Archive, seq: int, topic: str = TOPIC, partition: int = 0) -> dict:
    with a.engine.connect() as conn:
        return dict(conn.execute(select(E).where(*where(seq, topic, partition))).one()._mapping)


def run_sql(a: Archive, *statements) -> None:  # type: ignore[no-untyped-def]
    with a.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def failing(report: VerifyReport) -> list[Problem]:
    assert not report.ok, "tampering went unnoticed"
    return report.problems


def positions(problems: list[Problem], kind: str | None = None) -> list[int | None]:
    return [p.seq for p in problems if kind is None or p.kind == kind]


def recompute(a: Archive, topic: str = TOPIC, partition: int = 0) -> None:
    """What a careful forger does: recompute every hash of the chain and the head record."""
    with a.engine.begin() as conn:
        rows = conn.execute(
            select(E).where(E.c.topic == topic, E.c.kafka_partition == partition).order_by(E.c.seq)
        ).all()
        prev = genesis(topic, partition)
        for r in rows:
            prev = chain_hash(
                prev,
                r.seq,
                canonical_bytes(
                    epoch=r.epoch,
                    offset=r.kafka_offset,
                    ts_ms=r.ts_ms,
                    schema_id=r.schema_id,
                    op=r.op,
                    event_id=r.event_id,
                    source_unit=r.source_unit,
                    key=r.event_key,
                    payload=r.payload,
                ),
            )
            conn.execute(update(E).where(*where(r.seq, topic, partition)).values(entry_hash=prev))
        conn.execute(
            update(C)
            .where(C.c.topic == topic, C.c.kafka_partition == partition)
            .values(head_seq=rows[-1].seq, head_hash=prev)
        )


# ---- intact ------------------------------------------------------------------------------
def test_intact_archive_verifies(archive: Archive) -> None:
    report = verify(archive.settings)
    assert report.ok, report.problems
    assert report.entries == 65 and report.checkpoints == 2
    by_chain = {(c.topic, c.partition): c for c in report.chains}
    assert by_chain[(TOPIC, 0)].signed_seq == 30 and by_chain[(TOPIC, 0)].head_seq == 35
    assert by_chain[(OTHER, 1)].signed_seq == 30 and by_chain[(OTHER, 1)].checkpoint_n == 2
    assert len(report.warnings) == 1 and "31..35" in report.warnings[0]
    assert not verify(archive.settings, strict=True).ok
    assert verify(archive.settings, dataset="tthc.dossier").entries == 65
    assert verify(archive.settings, dataset="dancu.resident").entries == 0


def test_redelivery_is_idempotent(archive: Archive) -> None:
    added, skipped = archive.archiver.append(messages(15, start=25))
    assert (added, skipped) == (5, 10)
    report = verify(archive.settings)
    assert report.ok and report.entries == 70


def test_new_broker_log_continues_the_chain_as_next_epoch(archive: Archive) -> None:
    archive.archiver.plans[(TOPIC, 0)] = Plan(TOPIC, 0, 1, None, "new broker log")
    added, skipped = archive.archiver.append(messages(3, start=0))
    assert (added, skipped) == (3, 0)
    assert row(archive, 36)["epoch"] == 1 and row(archive, 36)["kafka_offset"] == 0
    assert verify(archive.settings).ok


# ---- each tampering kind -----------------------------------------------------------------
def test_edited_bytes(archive: Archive) -> None:
    payload = bytearray(row(archive, 5)["payload"])
    payload[-1] ^= 0x01
    run_sql(archive, update(E).where(*where(5)).values(payload=bytes(payload)))
    problems = failing(verify(archive.settings))
    assert positions(problems) == [5]
    assert "content altered" in problems[0].detail and problems[0].topic == TOPIC


def test_edited_event_time(archive: Archive) -> None:
    run_sql(archive, update(E).where(*where(7)).values(ts_ms=row(archive, 7)["ts_ms"] - 86_400_000))
    problems = failing(verify(archive.settings))
    assert positions(problems) == [7] and "content altered" in problems[0].detail


def test_edited_hash(archive: Archive) -> None:
    run_sql(archive, update(E).where(*where(9)).values(entry_hash=b"\x00" * 32))
    problems = failing(verify(archive.settings))
    assert positions(problems) == [9] and problems[0].detail == "stored hash altered"


def test_deleted_entry(archive: Archive) -> None:
    run_sql(archive, delete(E).where(*where(12)))
    problems = failing(verify(archive.settings))
    assert positions(problems) == [12] and problems[0].kind == "missing"


def test_inserted_entry(archive: Archive) -> None:
    forged = row(archive, 3) | {"seq": 11, "kafka_offset": 1000, "event_id": "forged"}
    with archive.engine.begin() as conn:
        for seq in range(35, 10, -1):  # make room, as a forger must (positions are unique)
            conn.execute(update(E).where(*where(seq)).values(seq=seq + 1))
        conn.execute(insert(E).values(**forged))
    problems = failing(verify(archive.settings))
    assert positions(problems)[0] == 11 and problems[0].kind == "broken link"


def test_appended_forged_entry(archive: Archive) -> None:
    last = row(archive, 35)
    forged = last | {"seq": 36, "kafka_offset": 99, "event_id": "forged", "entry_hash": b"1" * 32}
    run_sql(archive, insert(E).values(**forged))
    problems = failing(verify(archive.settings))
    assert 36 in positions(problems, "broken link")
    assert positions(problems, "head mismatch") == [36]


def test_appended_entry_with_recomputed_hashes_needs_strict(archive: Archive) -> None:
    """A forger who recomputes the tail past the last checkpoint: only the signature gap shows."""
    forged = row(archive, 35) | {"seq": 36, "kafka_offset": 99, "event_id": "forged"}
    run_sql(archive, insert(E).values(**forged))
    recompute(archive)
    assert verify(archive.settings).ok  # not signed yet: a warning, not a failure
    report = verify(archive.settings, strict=True)
    assert not report.ok and "31..36" in str(report.problems[0])


def test_swapped_entries(archive: Archive) -> None:
    with archive.engine.begin() as conn:
        conn.execute(update(E).where(*where(4)).values(seq=-4))
        conn.execute(update(E).where(*where(6)).values(seq=4))
        conn.execute(update(E).where(*where(-4)).values(seq=6))
    problems = failing(verify(archive.settings))
    assert 4 in positions(problems, "broken link") and 6 in positions(problems, "broken link")
    assert positions(problems, "out of order")  # offsets run backwards at the swap


def test_rewritten_chain_is_caught_by_the_checkpoint(archive: Archive) -> None:
    payload = bytearray(row(archive, 3)["payload"])
    payload[10] ^= 0xFF
    run_sql(archive, update(E).where(*where(3)).values(payload=bytes(payload)))
    recompute(archive)
    problems = failing(verify(archive.settings))
    assert positions(problems, "differs from checkpoint") == [20, 30]


def test_deleted_signed_tail(archive: Archive) -> None:
    run_sql(archive, delete(E).where(E.c.topic == TOPIC, E.c.kafka_partition == 0, E.c.seq >= 25))
    recompute(archive)
    problems = failing(verify(archive.settings))
    assert positions(problems, "signed entry missing") == [30]


def test_deleted_chain(archive: Archive) -> None:
    run_sql(
        archive,
        delete(E).where(E.c.topic == OTHER),
        delete(C).where(C.c.topic == OTHER),
    )
    problems = failing(verify(archive.settings))
    assert [p.kind for p in problems] == ["chain missing"] and problems[0].topic == OTHER


def test_dataset_column_moved(archive: Archive) -> None:
    run_sql(archive, update(E).where(*where(8)).values(dataset="dancu.resident"))
    assert 8 in positions(failing(verify(archive.settings)), "columns altered")
    scoped = failing(verify(archive.settings, dataset="tthc.dossier"))
    assert 8 in positions(scoped, "columns altered")


def test_edited_checkpoint(archive: Archive) -> None:
    with archive.engine.begin() as conn:
        message = conn.scalar(select(K.c.message).where(K.c.n == 1))
        conn.execute(update(K).where(K.c.n == 1).values(message=message.replace('"n":1', '"n": 1')))
    problems = failing(verify(archive.settings))
    assert any("signature does not verify" in p.detail for p in problems)
    assert any("does not link" in p.detail for p in problems)  # checkpoint 2 links to the old


def test_deleted_checkpoint(archive: Archive) -> None:
    run_sql(archive, delete(K).where(K.c.n == 1))
    problems = failing(verify(archive.settings))
    assert any(p.kind == "checkpoint missing" for p in problems)


def test_wrong_signing_key(archive: Archive, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    problems = failing(verify(archive.settings, public_keys=[other]))
    assert len(problems) == 2 and all("wrong signing key" in p.detail for p in problems)
    right = archive.archiver.signing_key().public
    assert verify(archive.settings, public_keys=[right]).ok


def test_many_problems_are_capped(archive: Archive) -> None:
    run_sql(archive, update(E).where(E.c.topic == TOPIC).values(entry_hash=b"\x01" * 32))
    report = verify(archive.settings, max_problems=10)
    assert len(report.problems) == 10 and report.more_problems > 0


def test_verify_reads_one_snapshot_while_the_archiver_appends(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append between reading the chain heads and streaming the entries changes neither."""
    import bus.archive.verify as verify_module

    stream = verify_module._stream
    appended = []

    def append_then_stream(*args, **kwargs):  # type: ignore[no-untyped-def]
        appended.append(Archiver(archive.settings).append(messages(7, start=35)))
        return stream(*args, **kwargs)

    monkeypatch.setattr(verify_module, "_stream", append_then_stream)
    report = verify(archive.settings)
    assert appended == [(7, 0)]
    assert report.ok, report.problems  # no "head mismatch" from the concurrent append
    assert report.entries == 65
    monkeypatch.undo()
    assert verify(archive.settings).entries == 72
