"""The exported checkpoints: an append-only JSON-lines file, one signed checkpoint a line.

Each line is the canonical JSON of::

    {"n": N, "key_id": ..., "message": <the signed message, verbatim>,
     "signature": <base64 of the Ed25519 signature>}

The archiver appends every checkpoint it writes to the database (``export_checkpoints`` in
``bus.archive.checkpoint``), so the file is a second copy of the signed chain heads that can be
shipped off the archive's host (log shipping, WORM storage, an auditor's mailbox). ``lgsp audit
verify`` reads it back and checks that the database still holds every exported checkpoint
unchanged and that the chains still match the heads they sign: a checkpoint deleted from the
database, or a chain rewritten below an exported checkpoint, fails verification.

Writers take an exclusive ``flock`` on the file, so two archivers signing at the same moment
append whole lines in order; readers take a shared one. Only this module knows the line format,
and one rule (``_lines``) says what a line is for the reader of the whole file and for the
archiver's look at its last line.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bus.archive.chain import canonical_json
from bus.errors import ConfigurationError

TAIL_CHUNK = 65536
LOCK_WAIT_S = 2.0


@dataclass(frozen=True)
class CheckpointRecord:
    """A signed checkpoint as stored: a database row or an exported line."""

    n: int
    key_id: str
    message: str
    signature: bytes

    def line(self) -> str:
        return canonical_json(
            {
                "n": self.n,
                "key_id": self.key_id,
                "message": self.message,
                "signature": base64.b64encode(self.signature).decode("ascii"),
            }
        )


def parse_line(text: str) -> CheckpointRecord:
    """One exported line; ``ValueError`` saying what is wrong with it."""
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    n, kid, message, signature = (data.get(k) for k in ("n", "key_id", "message", "signature"))
    if type(n) is not int or not isinstance(kid, str) or not isinstance(message, str):
        raise ValueError("expected n (integer), key_id and message (strings)")
    try:
        raw = base64.b64decode(str(signature), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("signature is not base64") from None
    return CheckpointRecord(n, kid, message, raw)


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """The one rule for the file's lines, for every reader of it: split at ``\\n`` only (a
    canonical JSON line holds no raw newline), whitespace around a line ignored (a ``\\r`` of
    a copy made on Windows, trailing spaces), blank lines skipped. Yields (line number counted
    from 1 within ``data``, the line)."""
    for number, raw in enumerate(data.split(b"\n"), 1):
        line = raw.strip()
        if line:
            yield number, line


@dataclass(frozen=True)
class BadLine:
    """A line of the file that is not a checkpoint, and the checkpoint it follows (0: none)."""

    number: int
    reason: str
    after: int

    def __str__(self) -> str:
        return f"line {self.number}: {self.reason}"


def read_exported(path: Path, where: str) -> tuple[list[CheckpointRecord], list[BadLine]]:
    """The checkpoints of an exported file and the lines that are not checkpoints
    (``line 7: not JSON``). ``where`` names the option or setting, for the error.

    The file is read under a shared lock (bounded wait), so a line the archiver is appending
    under its exclusive lock is read whole or not at all."""
    try:
        data = _read_shared(path)
    except OSError as exc:
        raise ConfigurationError(f"{where}: cannot read {path} ({exc.strerror})") from exc
    records: list[CheckpointRecord] = []
    bad: list[BadLine] = []
    for number, line in _lines(data):
        try:
            records.append(parse_line(line.decode("utf-8")))
        except UnicodeDecodeError:
            bad.append(BadLine(number, "not UTF-8 text", records[-1].n if records else 0))
        except ValueError as exc:
            bad.append(BadLine(number, str(exc), records[-1].n if records else 0))
    return records, bad


def _read_shared(path: Path) -> bytes:
    with open(path, "rb") as handle:
        deadline = time.monotonic() + LOCK_WAIT_S
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:  # a writer stuck holding it: read anyway
                    break
                time.sleep(0.02)
        return handle.read()  # the lock goes with the handle


def _last_line(handle: IO[bytes]) -> bytes:
    """The last line of an open file by the ``_lines`` rule, read from its end."""
    end = handle.seek(0, os.SEEK_END)
    buffer = b""
    position = end
    while position > 0:
        step = min(TAIL_CHUNK, position)
        position -= step
        handle.seek(position)
        buffer = handle.read(step) + buffer
        found = list(_lines(buffer))
        # the first piece of a chunk may be the end of a longer line: only a later one is whole
        if found and (position == 0 or found[-1][0] > 1):
            return found[-1][1]
    return b""


class ExportedFile:
    """The export file opened for appending under an exclusive lock (a context manager)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: IO[bytes] | None = None

    def __enter__(self) -> ExportedFile:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a+b")  # closed in __exit__
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX)
        except OSError as exc:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            raise ConfigurationError(
                f"checkpoint_export_file: cannot open {self.path} for appending ({exc.strerror})"
            ) from exc
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._handle is not None
        self._handle.close()  # releases the lock
        self._handle = None

    def last(self) -> CheckpointRecord | None:
        """The last exported checkpoint; ``ValueError`` when the last line is not one."""
        assert self._handle is not None
        line = _last_line(self._handle)
        return parse_line(line.decode("utf-8")) if line else None

    def append(self, records: Iterable[CheckpointRecord]) -> int:
        """Append whole lines and flush them to disk; how many were written."""
        assert self._handle is not None
        data = "".join(record.line() + "\n" for record in records).encode("utf-8")
        if not data:
            return 0
        try:
            if self._handle.seek(0, os.SEEK_END) > 0:
                self._handle.seek(-1, os.SEEK_END)
                if self._handle.read(1) != b"\n":  # a last line without its newline
                    data = b"\n" + data
            self._handle.write(data)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise ConfigurationError(
                f"checkpoint_export_file: cannot append to {self.path} ({exc.strerror})"
            ) from exc
        return len(list(_lines(data)))
