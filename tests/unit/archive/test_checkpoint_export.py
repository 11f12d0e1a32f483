"""The archiver's export of its checkpoints: one line per checkpoint, identical to the database,
caught up after a failed append, never appended over a checkpoint the database lost."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from bus.archive.archiver import Archiver
from bus.archive.checkpoint import (
    _sign_heads,
    checkpoint_records,
    export_checkpoints,
    export_path,
)
from bus.archive.checkpoint_file import read_exported
from bus.archive.verify import verify
from bus.config import Settings
from bus.db import open_engine
from bus.errors import ConfigurationError, FatalError
from tests.unit.archive._synthetic import messages


def records(settings: Settings) -> list:
    with open_engine(settings).connect() as conn:
        return checkpoint_records(conn)


def test_every_checkpoint_is_exported_as_stored(offline_settings: Settings) -> None:
    archiver = Archiver(offline_settings)
    for start in (0, 10, 20):
        archiver.append(messages(10, start=start))
        archiver.checkpoint()
    exported, bad = read_exported(export_path(offline_settings), "test")
    assert bad == [] and [r.n for r in exported] == [1, 2, 3]
    assert exported == records(offline_settings)
    assert export_checkpoints(offline_settings) == 0  # nothing lacking: nothing appended
    assert len(export_path(offline_settings).read_text().splitlines()) == 3


def test_a_failed_append_is_caught_up_by_the_next_checkpoint(
    offline_settings: Settings, tmp_path: Path
) -> None:
    target = tmp_path / "shipped" / "checkpoints.jsonl"
    settings = offline_settings.model_copy(update={"checkpoint_export_file": target})
    archiver = Archiver(settings)
    archiver.append(messages(10))
    target.mkdir(parents=True)  # the file cannot be opened: a directory stands in its place
    with pytest.raises(ConfigurationError, match="checkpoint_export_file: cannot open"):
        archiver.checkpoint()
    assert [r.n for r in records(settings)] == [1]  # signed in the database all the same
    shutil.rmtree(target)
    archiver.append(messages(5, start=10))
    assert archiver.checkpoint() is not None
    exported, _ = read_exported(target, "test")
    assert [r.n for r in exported] == [1, 2] and exported == records(settings)
    report = verify(settings)
    assert report.ok and report.local_export == str(target) and report.local_exported == 2


def test_a_missing_checkpoints_file_is_a_clear_error(offline_settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="--checkpoints: cannot read"):
        verify(offline_settings, checkpoints_file=offline_settings.home / "nothing.jsonl")


def test_a_missing_local_export_is_a_warning_and_strict_needs_an_offsite_copy(
    offline_settings: Settings, tmp_path: Path
) -> None:
    """The archiver's export file gone is a warning (nothing exported is compared, so a
    checkpoint deleted with the tail it signed cannot be seen); strict requires an off-host
    copy and passes with one, the local export gone or not."""
    archiver = Archiver(offline_settings)
    archiver.append(messages(10))
    archiver.checkpoint()
    shipped = tmp_path / "offsite.jsonl"
    assert export_checkpoints(offline_settings, shipped) == 1
    export_path(offline_settings).unlink()
    report = verify(offline_settings)
    assert report.ok and report.checkpoints_file is None and not report.local_export_present
    assert [w for w in report.warnings if "local export" in w and "is missing" in w]
    public = archiver.signing_key().public
    with pytest.raises(ConfigurationError, match="--strict: requires --checkpoints FILE"):
        verify(offline_settings, public_keys=[public], strict=True)
    strict = verify(offline_settings, public_keys=[public], strict=True, checkpoints_file=shipped)
    assert strict.ok and strict.warnings == [] and strict.exported_checkpoints == 1


def _three_checkpoints(settings: Settings) -> Archiver:
    archiver = Archiver(settings)
    for start in (0, 10, 20):
        archiver.append(messages(10, start=start))
        archiver.checkpoint()
    return archiver


def test_a_cut_local_export_fails_naming_the_checkpoints(offline_settings: Settings) -> None:
    """The archiver appends every checkpoint it commits: a local export that lacks the
    database's latest ones was cut (or its append failed) and fails, after a short wait."""
    _three_checkpoints(offline_settings)
    path = export_path(offline_settings)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:1]))
    report = verify(offline_settings, reread_s=0.2)
    assert [(p.kind, p.checkpoint) for p in report.problems] == [("export cut", 2)]
    assert str(report.problems[0]).startswith("checkpoints 2..3: in the database but not in")
    path.write_text("".join(lines[:2]) + lines[2][:40])  # cut inside the last line
    report = verify(offline_settings, reread_s=0.2)
    kinds = [(p.kind, p.checkpoint) for p in report.problems]
    assert kinds == [("export edited", 3), ("export cut", 3)]
    assert "line 3: not JSON (file edited), after checkpoint 2" in str(report.problems[0])
    with pytest.raises(FatalError, match="its last line is not a checkpoint"):
        export_checkpoints(offline_settings)  # nothing appended after a cut line
    path.write_text("".join(lines[:2]))
    assert export_checkpoints(offline_settings) == 1  # appended again from the database
    assert verify(offline_settings).ok


def test_an_edited_local_export_fails_naming_the_checkpoint(offline_settings: Settings) -> None:
    _three_checkpoints(offline_settings)
    path = export_path(offline_settings)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + lines[1].replace('"n":2', '"n":7') + lines[2])
    report = verify(offline_settings, reread_s=0.2)
    assert report.local_exported == 3
    assert sorted((p.kind, p.checkpoint) for p in report.problems) == [
        ("checkpoint removed", 7),
        ("exported checkpoint mismatch", 7),
        ("exported checkpoint missing", 2),
        ("exported checkpoint repeated", 3),
    ]
    record = json.loads(lines[1])
    record["message"] = record["message"].replace('"v":1', '"v":2')  # a signed message edited
    path.write_text(lines[0] + json.dumps(record) + "\n" + lines[2])
    report = verify(offline_settings, reread_s=0.2)
    assert sorted((p.kind, p.checkpoint) for p in report.problems) == [
        ("checkpoint rewritten", 2),
        ("exported checkpoint bad signature", 2),
        ("exported checkpoint unlinked", 3),
    ]
    assert "checkpoint 2: differs in the database from the exported copy" in str(
        report.problems[-1]
    )


def test_verify_waits_for_an_append_in_progress(offline_settings: Settings) -> None:
    """A checkpoint committed but not yet appended to the local export (the archiver commits,
    then appends) is not a cut: verify reads the file again for a moment."""
    archiver = _three_checkpoints(offline_settings)
    archiver.append(messages(10, start=30))
    assert _sign_heads(offline_settings, archiver.signing_key(), force=False) is not None
    timer = threading.Timer(0.4, export_checkpoints, args=(offline_settings,))
    timer.start()
    try:
        report = verify(offline_settings, reread_s=5.0)
    finally:
        timer.join()
    assert report.ok, report.problems
    assert report.local_exported == 4 and report.checkpoints == 4


@pytest.mark.parametrize("tail", ["  \n", "\r\n", "\n\n \t \n"])
def test_a_trailing_blank_line_is_not_a_missing_checkpoint(
    offline_settings: Settings, tail: str
) -> None:
    """One line rule for every reader of the file: a last line of whitespace is skipped (it
    made the archiver see an empty file and export every checkpoint again)."""
    archiver = Archiver(offline_settings)
    archiver.append(messages(10))
    archiver.checkpoint()
    path = export_path(offline_settings)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(tail)
    assert export_checkpoints(offline_settings) == 0
    archiver.append(messages(5, start=10))
    archiver.checkpoint()
    exported, bad = read_exported(path, "test")
    assert bad == [] and [r.n for r in exported] == [1, 2]
    assert exported == records(offline_settings)


def test_a_last_line_without_its_newline_gets_one_before_the_next(
    offline_settings: Settings,
) -> None:
    archiver = Archiver(offline_settings)
    archiver.append(messages(10))
    archiver.checkpoint()
    path = export_path(offline_settings)
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    archiver.append(messages(5, start=10))
    archiver.checkpoint()
    exported, bad = read_exported(path, "test")
    assert bad == [] and [r.n for r in exported] == [1, 2]
    assert path.read_bytes().count(b"\n") == 2


def test_a_line_that_is_not_utf8_is_a_bad_line(offline_settings: Settings) -> None:
    archiver = Archiver(offline_settings)
    archiver.append(messages(10))
    archiver.checkpoint()
    path = export_path(offline_settings)
    with open(path, "ab") as handle:
        handle.write(b"\xff\xfe{}\n")
    exported, bad = read_exported(path, "test")
    assert [r.n for r in exported] == [1] and [str(b) for b in bad] == ["line 2: not UTF-8 text"]
    assert bad[0].after == 1


def test_the_local_export_given_as_checkpoints_is_checked_once_as_the_local_export(
    offline_settings: Settings,
) -> None:
    _three_checkpoints(offline_settings)
    path = export_path(offline_settings)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    report = verify(offline_settings, checkpoints_file=path, reread_s=0.1)
    assert report.checkpoints_file is None and report.local_exported == 2
    assert [(p.kind, p.checkpoint) for p in report.problems] == [("export cut", 3)]  # not a lag
