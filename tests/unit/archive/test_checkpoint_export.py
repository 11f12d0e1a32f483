"""The archiver's export of its checkpoints: one line per checkpoint, identical to the database,
caught up after a failed append, never appended over a checkpoint the database lost."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bus.archive.archiver import Archiver
from bus.archive.checkpoint import checkpoint_records, export_checkpoints, export_path
from bus.archive.checkpoint_file import read_exported
from bus.archive.verify import verify
from bus.config import Settings
from bus.db import open_engine
from bus.errors import ConfigurationError
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
    assert report.ok and report.checkpoints_file == str(target)


def test_a_missing_checkpoints_file_is_a_clear_error(offline_settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="--checkpoints: cannot read"):
        verify(offline_settings, checkpoints_file=offline_settings.home / "nothing.jsonl")


def test_without_an_export_file_verify_fails_unless_accepted(offline_settings: Settings) -> None:
    """The archiver exports every checkpoint: its export file gone (and no --checkpoints) is a
    problem, since a checkpoint deleted with the tail it signed is then invisible; accepted
    only on request (a warning), and never with strict."""
    archiver = Archiver(offline_settings)
    archiver.append(messages(10))
    archiver.checkpoint()
    export_path(offline_settings).unlink()
    report = verify(offline_settings)
    assert not report.ok and report.checkpoints_file is None
    assert [p.kind for p in report.problems] == ["no exported checkpoints"]
    accepted = verify(offline_settings, allow_missing_export=True)
    assert accepted.ok
    assert [w for w in accepted.warnings if w.startswith("no exported checkpoints compared")]
    public = archiver.signing_key().public
    strict = verify(offline_settings, public_keys=[public], strict=True, allow_missing_export=True)
    assert [p.kind for p in strict.problems] == ["strict"]


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
    assert [r.n for r in exported] == [1] and bad == ["line 2: not UTF-8 text"]
