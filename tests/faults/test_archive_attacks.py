"""Archive attacks: every way to rewrite the archive in the database is reported by
``lgsp audit verify`` with the problem kinds it amounts to, and the exported checkpoints catch
what the database alone cannot (the one consistent rewrite: only an exported copy shows it).

The archive is filled without a broker (``tests.unit.archive._forge``): two chains, three
checkpoints, every head signed, the checkpoints exported by the archiver to the state folder
and copied off the host with ``lgsp archive export-checkpoints``. Each forger works with direct
SQL, recomputes what it can, and deletes the export file of the state folder (same host) so
that the database's own protections are what is tested; the off-host copy is used only where
said.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from bus.archive.checkpoint import export_path
from bus.config import Settings, reset_settings
from bus.errors import FatalError
from tests.helpers import run_cli as run
from tests.unit.archive._forge import (
    Archive,
    C,
    build,
    delete_checkpoints,
    delete_entry,
    edit_payload,
    erase_key_and_rechain,
    insert_entry,
    run_sql,
    swap_entries,
    truncate_tail,
)

CLEAN_ENV = (
    "LGSP_DATABASE_URL",
    "LGSP_KAFKA_BOOTSTRAP",
    "LGSP_SIGNING_KEY",
    "LGSP_SIGNING_KEY_FILE",
    "LGSP_SIGNING_COMMAND",
    "LGSP_CHECKPOINT_EXPORT_FILE",
    "LGSP_CONFIG",
)


@pytest.fixture
def archive(offline_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    for name in CLEAN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LGSP_HOME", str(offline_settings.home))
    reset_settings()
    yield build(offline_settings, sign_tail=True)
    reset_settings()


@pytest.fixture
def offsite(archive: Archive, tmp_path: Path) -> tuple[Path, Path]:
    """The published public key and a copy of the exported checkpoints, both off the host."""
    folder = tmp_path / "offsite"
    folder.mkdir()
    key, shipped = folder / "archive.pub", folder / "checkpoints.jsonl"
    assert run("archive", "export-key", "--out", str(key))[0] == 0
    code, out, err = run("archive", "export-checkpoints", str(shipped))
    assert code == 0 and "appended 3 checkpoint(s)" in out, err
    return key, shipped


def forger_wipes_local_export(a: Archive) -> None:
    export_path(a.settings).unlink()


def rechain_after_deleting_checkpoints(a: Archive) -> None:
    """The issue's reproduction: checkpoints deleted, a key erased, the chains recomputed."""
    delete_checkpoints(a)
    erase_key_and_rechain(a)
    run_sql(a, update(C).values(signed_seq=0))


def kinds(*args: str) -> tuple[int, list[str], str]:
    """Exit code and the sorted problem kinds of ``lgsp audit verify --json ARGS``."""
    code, out, err = run("audit", "verify", "--json", *args)
    report = json.loads(out)
    assert report["ok"] is (code == 0), out + err
    return code, sorted({p["kind"] for p in report["problem_details"]}), out


MUTATIONS: dict[str, Callable[[Archive], object]] = {
    "edit an entry's payload": edit_payload,
    "delete an entry": delete_entry,
    "insert an entry": insert_entry,
    "reorder two entries": swap_entries,
    "erase a key and rechain": erase_key_and_rechain,
    "delete every checkpoint": lambda a: delete_checkpoints(a),
    "delete the latest checkpoint": lambda a: delete_checkpoints(a, 3),
    "delete checkpoints, erase a key, rechain": rechain_after_deleting_checkpoints,
    "truncate the tail": lambda a: truncate_tail(a, keep=32),
    # the latest checkpoint deleted with the tail it signed: a consistent database (found by
    # review); only an exported copy contradicts it
    "delete the latest checkpoint and its tail": lambda a: (
        delete_checkpoints(a, 3),
        truncate_tail(a, keep=30),
    ),
}

# The problem kinds each mutation is reported with: (1) plain 'lgsp audit verify', the
# forger having wiped the archiver's local export too; (2) the auditor's 'lgsp audit verify
# --strict --public-key KEY --checkpoints OFFSITE' (local export wiped as well); (3) plain
# verify with the local export left as it was.
BROKEN = ["broken link"]
INSERTED = ["broken link", "differs from checkpoint", "head mismatch", "out of order"]
INSERTED += ["unsigned tail"]  # the chain's head moved past its signed position
RECHAINED = ["differs from checkpoint", "signed entry missing", "unsigned tail"]
EXPECTED: dict[str, tuple[list[str], list[str], list[str]]] = {
    "edit an entry's payload": (BROKEN, BROKEN, BROKEN),
    "delete an entry": (["missing"], ["missing"], ["missing"]),
    "insert an entry": (INSERTED, INSERTED, INSERTED),
    "reorder two entries": (BROKEN + ["out of order"],) * 3,
    "erase a key and rechain": (RECHAINED, RECHAINED, RECHAINED),
    # an exported copy still signs the heads: removed checkpoints, no unsigned tail
    "delete every checkpoint": (
        ["no checkpoint", "unsigned tail"],
        ["checkpoint removed", "no checkpoint"],
        ["checkpoint removed", "no checkpoint"],
    ),
    "delete the latest checkpoint": (
        ["unsigned tail"],
        ["checkpoint removed"],
        ["checkpoint removed"],
    ),
    "delete checkpoints, erase a key, rechain": (
        ["no checkpoint", "unsigned tail"],
        sorted(["checkpoint removed", "no checkpoint", *RECHAINED]),
        sorted(["checkpoint removed", "no checkpoint", *RECHAINED]),
    ),
    "truncate the tail": (["signed entry missing", "unsigned tail"],) * 2
    + (["signed entry missing", "unsigned tail"],),
    # consistent in the database: with no exported copy left on the host, plain verify passes
    # (warning that the local export is missing); any exported copy shows it
    "delete the latest checkpoint and its tail": (
        [],
        ["checkpoint removed", "signed entry missing"],
        ["checkpoint removed", "signed entry missing"],
    ),
}


def test_a_clean_archive_passes(archive: Archive, offsite: tuple[Path, Path]) -> None:
    code, out, err = run("audit", "verify")
    assert code == 0 and "OK: the archive is intact" in out, out + err
    assert "compared with 3 exported checkpoint(s)" in out
    key, shipped = offsite
    code, out, err = run(
        "audit", "verify", "--strict", "--public-key", str(key), "--checkpoints", str(shipped)
    )
    assert code == 0 and "OK: the archive is intact" in out, out + err


def test_the_unmutated_archive_passes_every_view(
    archive: Archive, offsite: tuple[Path, Path]
) -> None:
    key, shipped = offsite
    assert kinds()[:2] == (0, [])
    assert kinds("--strict", "--public-key", str(key), "--checkpoints", str(shipped))[:2] == (0, [])
    forger_wipes_local_export(archive)
    code, found, out = kinds()
    assert (code, found) == (0, [])
    assert json.loads(out)["local_export"]["present"] is False
    assert kinds("--strict", "--public-key", str(key), "--checkpoints", str(shipped))[:2] == (0, [])


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_every_mutation_reports_its_problem_kinds(
    archive: Archive, offsite: tuple[Path, Path], mutation: str
) -> None:
    key, shipped = offsite
    plain, audited, kept = EXPECTED[mutation]
    MUTATIONS[mutation](archive)
    code, found, _ = kinds()
    assert (code, found) == (4, kept), mutation
    forger_wipes_local_export(archive)
    code, found, out = kinds()
    assert (code, found) == (4 if plain else 0, plain), mutation
    if not plain:
        assert any("is missing and no off-host copy" in w for w in json.loads(out)["warnings"])
    strict = ("--strict", "--public-key", str(key), "--checkpoints", str(shipped))
    assert kinds(*strict)[:2] == (4, audited), mutation


def test_the_consistent_deletion_without_a_copy_passes_with_a_warning_only(
    archive: Archive,
) -> None:
    """The text form of the one mutation plain verify cannot see: the warning says why."""
    MUTATIONS["delete the latest checkpoint and its tail"](archive)
    forger_wipes_local_export(archive)
    code, out, _ = run("audit", "verify")
    assert code == 0 and "OK: the archive is intact" in out
    assert "warning: the archiver's local export" in out and "--checkpoints FILE" in out
    code, _, err = run("audit", "verify", "--strict")
    assert code == 2 and "--strict: requires --checkpoints FILE" in err


def test_an_unsigned_tail_is_accepted_only_on_request_and_reported(archive: Archive) -> None:
    delete_checkpoints(archive)
    forger_wipes_local_export(archive)
    code, out, _ = run("audit", "verify")
    assert code == 4 and "PROBLEM no checkpoint: the archive holds 65 entries" in out
    code, out, _ = run("audit", "verify", "--allow-unsigned-tail")
    assert code == 0
    assert "65 entries after them are not signed (accepted with --allow-unsigned-tail)" in out
    code, _, err = run("audit", "verify", "--allow-unsigned-tail", "--strict")
    assert code == 2 and "--strict, --allow-unsigned-tail" in err


def test_a_checkpoint_deleted_from_the_database_fails_against_the_export(
    archive: Archive, offsite: tuple[Path, Path]
) -> None:
    """Deleting the latest checkpoint with the tail it signed leaves a consistent database (the
    earlier checkpoint signs the new head); the exported copy still holds the deleted one."""
    _key, shipped = offsite
    delete_checkpoints(archive, 3)
    truncate_tail(archive, keep=30)
    forger_wipes_local_export(archive)
    code, out, _ = run("audit", "verify", "--checkpoints", str(shipped))
    assert code == 4
    assert "checkpoint 3: is in the exported file but not in the database (removed)" in out
    assert "position 35: signed entry missing" in out


def test_a_chain_rewritten_and_re_signed_with_a_stolen_key_fails_against_the_export(
    archive: Archive, offsite: tuple[Path, Path]
) -> None:
    """The forger has the state folder (key and local export) and re-signs the rewritten
    archive: everything on the host agrees; the published key and the off-host copy do not."""
    key, shipped = offsite
    rechain_after_deleting_checkpoints(archive)
    forger_wipes_local_export(archive)
    assert archive.archiver.checkpoint() is not None  # re-signed, and a fresh local export
    assert run("audit", "verify", "--public-key", str(key))[0] == 0  # the host cannot tell
    code, out, _ = run("audit", "verify", "--public-key", str(key), "--checkpoints", str(shipped))
    assert code == 4
    assert "checkpoint 1: differs in the database from the exported copy" in out
    assert "differs from checkpoint" in out or "signed entry missing" in out


def test_an_edited_export_file_fails(archive: Archive, offsite: tuple[Path, Path]) -> None:
    _key, shipped = offsite
    lines = shipped.read_text().splitlines()
    shipped.write_text("\n".join([lines[0], lines[2], lines[2], "not json"]) + "\n")
    code, out, _ = run("audit", "verify", "--checkpoints", str(shipped))
    assert code == 4
    assert "exported checkpoint missing: exported checkpoint 2 not found" in out
    assert "exported checkpoint 3: appears again or out of order" in out
    assert "line 4: not JSON (file edited)" in out


def test_an_export_file_behind_the_database_warns_and_fails_strict(
    archive: Archive, offsite: tuple[Path, Path]
) -> None:
    key, shipped = offsite
    shipped.write_text("".join(shipped.read_text().splitlines(keepends=True)[:2]))
    code, out, _ = run("audit", "verify", "--checkpoints", str(shipped))
    assert code == 0 and "lacks checkpoint(s) 3..3 of the database" in out
    args = ("--public-key", str(key), "--checkpoints", str(shipped))
    assert run("audit", "verify", "--strict", *args)[0] == 4
    code, out, _ = run("archive", "export-checkpoints", str(shipped))  # brought up to date
    assert code == 0 and "appended 1 checkpoint(s)" in out
    assert run("audit", "verify", "--strict", *args)[0] == 0


def test_the_archiver_refuses_to_export_over_a_checkpoint_the_database_lost(
    archive: Archive, offsite: tuple[Path, Path]
) -> None:
    _key, shipped = offsite
    delete_checkpoints(archive, 3)
    code, _, err = run("archive", "export-checkpoints", str(shipped))
    assert code == 4 and "checkpoint 3 is missing in the database" in err
    before = export_path(archive.settings).read_bytes()
    archive.archiver.append([])  # nothing new; the next checkpoint re-signs the tail
    with pytest.raises(FatalError, match="checkpoint 3 is changed in the database"):
        archive.archiver.checkpoint(force=True)
    assert export_path(archive.settings).read_bytes() == before  # nothing appended
