"""Every kind of tampering with the archive table is detected, with its position.

The archive is filled through the archiver's append path with synthetic messages (no broker),
signed, then edited with direct SQL, as someone with database access would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete, insert, select, update

from bus.archive.archiver import Archiver, Plan
from bus.archive.checkpoint import export_checkpoints, export_path
from bus.archive.verify import verify
from bus.config import Settings
from bus.errors import ConfigurationError
from tests.unit.archive._forge import (
    OTHER,
    Archive,
    C,
    E,
    K,
    build,
    delete_checkpoints,
    edit_payload,
    failing,
    insert_entry,
    positions,
    recompute,
    row,
    run_sql,
    swap_entries,
    truncate_tail,
    where,
)
from tests.unit.archive._synthetic import TOPIC, messages


@pytest.fixture
def archive(offline_settings: Settings) -> Iterator[Archive]:
    """p0 of TOPIC: 35 entries, signed to 30; OTHER p1: 30 entries, signed to 30."""
    yield build(offline_settings, sign_tail=False)


# ---- intact ------------------------------------------------------------------------------
def test_intact_archive_verifies_when_its_unsigned_tail_is_accepted(archive: Archive) -> None:
    report = verify(archive.settings, allow_unsigned_tail=True)
    assert report.ok, report.problems
    assert report.entries == 65 and report.checkpoints == 2
    by_chain = {(c.topic, c.partition): c for c in report.chains}
    assert by_chain[(TOPIC, 0)].signed_seq == 30 and by_chain[(TOPIC, 0)].head_seq == 35
    assert by_chain[(OTHER, 1)].signed_seq == 30 and by_chain[(OTHER, 1)].checkpoint_n == 2
    assert report.unsigned_entries == 5 and report.unsigned_accepted
    assert len(report.warnings) == 1 and "31..35 (5 entries)" in report.warnings[0]
    # the archiver's export file, read by default (reported as the local export)
    assert report.local_export_present and report.local_exported == 2
    assert verify(archive.settings, dataset="tthc.dossier", allow_unsigned_tail=True).entries == 65
    assert verify(archive.settings, dataset="dancu.resident").entries == 0


def test_an_unsigned_tail_fails_unless_accepted(archive: Archive) -> None:
    """Fail closed: entries after the last signed checkpoint prove nothing."""
    report = verify(archive.settings)
    assert [(p.topic, p.kind) for p in failing(report)] == [(TOPIC, "unsigned tail")]
    assert "31..35 (5 entries)" in report.problems[0].detail and report.unsigned_entries == 5
    archive.archiver.checkpoint()  # signed: intact without any flag
    assert verify(archive.settings).ok


def test_strict_fails_on_every_warning(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="--strict, --allow-unsigned-tail"):
        verify(archive.settings, strict=True, allow_unsigned_tail=True)
    archive.archiver.checkpoint()
    public = archive.archiver.signing_key().public
    with pytest.raises(ConfigurationError, match="--strict: requires --checkpoints FILE"):
        verify(archive.settings, strict=True, public_keys=[public])
    local = export_path(archive.settings)
    with pytest.raises(ConfigurationError, match="the archiver's own export file"):
        verify(archive.settings, strict=True, public_keys=[public], checkpoints_file=local)
    shipped = tmp_path / "offsite.jsonl"
    export_checkpoints(archive.settings, shipped)
    assert verify(archive.settings, strict=True, public_keys=[public], checkpoints_file=shipped).ok
    strict = verify(archive.settings, strict=True, checkpoints_file=shipped)
    kinds = [p.detail for p in failing(strict)]
    assert kinds == [
        "signatures were checked with the configured signing key, not with a published "
        "public key (--public-key)"
    ]


def test_redelivery_is_idempotent(archive: Archive) -> None:
    added, skipped = archive.archiver.append(messages(15, start=25))
    assert (added, skipped) == (5, 10)
    report = verify(archive.settings, allow_unsigned_tail=True)
    assert report.ok and report.entries == 70


def test_new_broker_log_continues_the_chain_as_next_epoch(archive: Archive) -> None:
    archive.archiver.plans[(TOPIC, 0)] = Plan(TOPIC, 0, 1, None, "new broker log")
    added, skipped = archive.archiver.append(messages(3, start=0))
    assert (added, skipped) == (3, 0)
    assert row(archive, 36)["epoch"] == 1 and row(archive, 36)["kafka_offset"] == 0
    assert verify(archive.settings, allow_unsigned_tail=True).ok


# ---- each tampering kind -----------------------------------------------------------------
def test_edited_bytes(archive: Archive) -> None:
    edit_payload(archive, 5)
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
    assert positions(problems) == [5]
    assert "content altered" in problems[0].detail and problems[0].topic == TOPIC


def test_edited_event_time(archive: Archive) -> None:
    run_sql(archive, update(E).where(*where(7)).values(ts_ms=row(archive, 7)["ts_ms"] - 86_400_000))
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
    assert positions(problems) == [7] and "content altered" in problems[0].detail


def test_edited_hash(archive: Archive) -> None:
    run_sql(archive, update(E).where(*where(9)).values(entry_hash=b"\x00" * 32))
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
    assert positions(problems) == [9] and problems[0].detail == "stored hash altered"


def test_deleted_entry(archive: Archive) -> None:
    run_sql(archive, delete(E).where(*where(12)))
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
    assert positions(problems) == [12] and problems[0].kind == "missing"


def test_inserted_entry(archive: Archive) -> None:
    insert_entry(archive, 11)
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
    assert positions(problems)[0] == 11 and problems[0].kind == "broken link"


def test_appended_forged_entry(archive: Archive) -> None:
    last = row(archive, 35)
    forged = last | {"seq": 36, "kafka_offset": 99, "event_id": "forged", "entry_hash": b"1" * 32}
    run_sql(archive, insert(E).values(**forged))
    problems = failing(verify(archive.settings))
    assert 36 in positions(problems, "broken link")
    assert positions(problems, "head mismatch") == [36]


def test_appended_entry_with_recomputed_hashes_is_an_unsigned_tail(archive: Archive) -> None:
    """A forger who recomputes the tail past the last checkpoint: only the signature gap shows,
    and it fails unless the operator accepts an unsigned tail."""
    forged = row(archive, 35) | {"seq": 36, "kafka_offset": 99, "event_id": "forged"}
    run_sql(archive, insert(E).values(**forged))
    recompute(archive)
    problems = failing(verify(archive.settings))
    assert [p.kind for p in problems] == ["unsigned tail"] and "31..36" in str(problems[0])
    accepted = verify(archive.settings, allow_unsigned_tail=True)
    assert accepted.ok and accepted.unsigned_entries == 6


def test_swapped_entries(archive: Archive) -> None:
    swap_entries(archive, 4, 6)
    problems = failing(verify(archive.settings))
    assert 4 in positions(problems, "broken link") and 6 in positions(problems, "broken link")
    assert positions(problems, "out of order")  # offsets run backwards at the swap


def test_rewritten_chain_is_caught_by_the_checkpoint(archive: Archive) -> None:
    payload = bytearray(row(archive, 3)["payload"])
    payload[10] ^= 0xFF
    run_sql(archive, update(E).where(*where(3)).values(payload=bytes(payload)))
    recompute(archive)
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
    assert positions(problems, "differs from checkpoint") == [20, 30]


def test_deleted_signed_tail(archive: Archive) -> None:
    truncate_tail(archive, keep=24)
    problems = failing(verify(archive.settings))
    assert positions(problems, "signed entry missing") == [30]


def test_deleted_chain(archive: Archive) -> None:
    run_sql(
        archive,
        delete(E).where(E.c.topic == OTHER),
        delete(C).where(C.c.topic == OTHER),
    )
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
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
    delete_checkpoints(archive, 1)
    problems = failing(verify(archive.settings, allow_unsigned_tail=True))
    assert any(p.kind == "checkpoint missing" for p in problems)
    assert any("in the exported file but not in the database" in p.detail for p in problems)


def test_wrong_signing_key(archive: Archive, tmp_path: Path) -> None:
    other = Ed25519PrivateKey.generate().public_key()
    problems = failing(verify(archive.settings, public_keys=[other], allow_unsigned_tail=True))
    assert len(problems) == 2 and all("wrong signing key" in p.detail for p in problems)
    right = archive.archiver.signing_key().public
    assert verify(archive.settings, public_keys=[right], allow_unsigned_tail=True).ok


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
    report = verify(archive.settings, allow_unsigned_tail=True)
    assert appended == [(7, 0)]
    assert report.ok, report.problems  # no "head mismatch" from the concurrent append
    assert report.entries == 65
    monkeypatch.undo()
    assert verify(archive.settings, allow_unsigned_tail=True).entries == 72
