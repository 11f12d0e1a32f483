"""Verification of the archive: every chain recomputed, every checkpoint signature checked.

What is reported, with the position (``seq``) in its chain:

- a position missing from the sequence (an entry deleted);
- an entry that does not link (its recomputed hash differs from the stored one): content
  altered, stored hash altered, or (when neither explains it) an inserted or moved entry;
- offsets that go backwards within an epoch (entries reordered);
- dataset or unit columns that do not match the topic;
- a chain head record that does not match the last entry;
- a checkpoint that is missing from the numbering, does not link to the previous one, is not
  signed by the verifying key, or whose signature does not verify;
- a signed head that differs from the archive (the chain was rewritten) or is gone;
- with exported copies of the checkpoints (``bus.archive.checkpoint_file``; the archiver's
  local export file and, given, an off-host copy): an exported checkpoint that the database
  lacks or holds changed, a file line that is not a validly signed checkpoint, a file that
  does not run 1, 2, 3... with each line linking to the one before, and a local export that
  lacks checkpoints of the database (cut). The heads of exported checkpoints count as signed
  heads, so a chain rewritten below one of them fails even when the database's checkpoints
  were replaced.

Verification fails closed: every chain head must be covered by a signed checkpoint. Entries
after the last signed position of their chain (an "unsigned tail": appended since the last
checkpoint, or left when checkpoints were removed) are a problem unless the caller accepts
them (``allow_unsigned_tail``), in which case they are a warning that counts them. A missing
local export is a warning: then nothing exported is compared, and a checkpoint deleted with
the tail it signed leaves a consistent database that only an off-host copy contradicts. An
off-host copy that lags the database is a warning too (an older copy). ``strict`` is the
auditor's mode: it requires an off-host copy (``checkpoints_file``), turns every warning into
a problem and also fails when the signatures were checked with the configured key rather
than a published one. A local export that lacks the database's latest checkpoints is read
again for a moment before it counts as cut: the archiver commits a checkpoint, then appends
it.
Rows are streamed in chain order (``yield_per``); nothing is held in memory but the
checkpoints' heads.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, Select, select

from bus.archive.chain import SEQ, canonical_bytes, genesis, parse_dataset_topic
from bus.archive.checkpoint import ZERO_DIGEST, checkpoint_records, export_path, message_digest
from bus.archive.checkpoint_file import BadLine, CheckpointRecord, read_exported
from bus.archive.models import ArchiveChain, ArchiveCheckpoint, ArchiveEntry
from bus.archive.signing import key_id, load_signing_key, verify_signature
from bus.config import Settings
from bus.db import open_engine
from bus.errors import ConfigurationError, InvalidNameError, NotFoundError

entry_t = ArchiveEntry.__table__
chain_t = ArchiveChain.__table__
checkpoint_t = ArchiveCheckpoint.__table__
REREAD_S = 2.0  # how long verify waits for the archiver's append of a just-committed checkpoint
REREAD_POLL_S = 0.05

ROW_COLUMNS = (
    "topic",
    "kafka_partition",
    "seq",
    "epoch",
    "kafka_offset",
    "dataset",
    "unit_path",
    "event_id",
    "op",
    "ts_ms",
    "event_key",
    "source_unit",
    "schema_id",
    "payload",
    "entry_hash",
)
Visitor = Callable[[tuple[Any, ...]], None]


@dataclass
class Problem:
    """One finding. ``kind`` is stable (what the tests and ``--json`` readers match on);
    ``label`` is what the line starts with when it names more than the kind
    (``checkpoint 3``), ``checkpoint`` the checkpoint concerned."""

    topic: str | None
    partition: int | None
    seq: int | None
    kind: str
    detail: str
    label: str | None = None
    checkpoint: int | None = None

    def __str__(self) -> str:
        if self.topic is None:
            return f"{self.label or self.kind}: {self.detail}"
        where = f"{self.topic}[{self.partition}]"
        if self.seq is not None:
            where += f" position {self.seq}"
        return f"{where}: {self.kind}: {self.detail}"


@dataclass
class ChainSummary:
    topic: str
    partition: int
    dataset: str
    unit_path: str
    entries: int = 0
    head_seq: int = 0
    head_hash: str = ""
    signed_seq: int = 0
    checkpoint_n: int | None = None
    first_ts_ms: int | None = None
    last_ts_ms: int | None = None


@dataclass
class VerifyReport:
    chains: list[ChainSummary] = field(default_factory=list)
    entries: int = 0
    checkpoints: int = 0
    latest_checkpoint: int | None = None
    latest_digest: str | None = None
    key_ids: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    warnings: list[str] = field(default_factory=list)
    unsigned_entries: int = 0
    unsigned_accepted: bool = False
    checkpoints_file: str | None = None  # the off-host copy (--checkpoints FILE)
    exported_checkpoints: int = 0
    local_export: str | None = None  # the archiver's own export file
    local_export_present: bool = False
    local_exported: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def rate(self) -> float:
        return self.entries / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """The report as ``lgsp audit verify --json`` prints it."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "chains": [c.__dict__ for c in self.chains],
            "checkpoints": self.checkpoints,
            "latest_checkpoint": self.latest_checkpoint,
            "latest_digest": self.latest_digest,
            "checkpoints_file": self.checkpoints_file,
            "exported_checkpoints": self.exported_checkpoints,
            "local_export": {
                "path": self.local_export,
                "present": self.local_export_present,
                "exported_checkpoints": self.local_exported,
            },
            "unsigned_entries": self.unsigned_entries,
            "unsigned_accepted": self.unsigned_accepted,
            "key_ids": self.key_ids,
            "problems": [str(p) for p in self.problems],
            "problem_details": [
                {
                    "kind": p.kind,
                    "checkpoint": p.checkpoint,
                    "topic": p.topic,
                    "partition": p.partition,
                    "position": p.seq,
                    "detail": p.detail,
                }
                for p in self.problems
            ],
            "more_problems": self.more_problems,
            "warnings": self.warnings,
            "entries_per_s": round(self.rate),
        }


@dataclass
class _Signed:
    """Heads signed by valid checkpoints, per chain: seq -> [(hash hex, checkpoint n)]."""

    heads: dict[tuple[str, int], dict[int, list[tuple[str, int]]]] = field(default_factory=dict)


def verifying_keys(
    settings: Settings, public_keys: Iterable[Ed25519PublicKey] | None
) -> dict[str, Ed25519PublicKey]:
    """Given public keys, else the public half of the configured signing key (never generated)."""
    if public_keys is not None:
        return {key_id(k): k for k in public_keys}
    configured = load_signing_key(settings, create=False)
    return {configured.key_id: configured.public} if configured is not None else {}


class _Collector:
    def __init__(self, report: VerifyReport, limit: int) -> None:
        self.report = report
        self.limit = limit

    def add(self, problem: Problem) -> Problem:
        if len(self.report.problems) < self.limit:
            self.report.problems.append(problem)
        else:
            self.report.more_problems += 1
        return problem


def _need_keys(records: list[CheckpointRecord], keys: dict[str, Ed25519PublicKey]) -> None:
    if records and not keys:
        raise ConfigurationError(
            "no key to check checkpoint signatures with: pass --public-key FILE "
            "(written by 'lgsp archive export-key') or configure signing_key_file or "
            "signing_public_key_file"
        )


def _signed_heads(
    record: CheckpointRecord, data: dict[str, Any], topics: set[str] | None, signed: _Signed
) -> None:
    for topic, partition, seq, digest in data.get("heads", []):
        if topics is not None and topic not in topics:
            continue
        items = signed.heads.setdefault((str(topic), int(partition)), {}).setdefault(int(seq), [])
        if (str(digest), record.n) not in items:  # the same checkpoint from two copies
            items.append((str(digest), record.n))


def _message(record: CheckpointRecord) -> dict[str, Any] | None:
    try:
        data = json.loads(record.message)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _check_sequence(
    records: list[CheckpointRecord],
    keys: dict[str, Ed25519PublicKey],
    out: _Collector,
    where: str,
    *,
    signatures: Callable[[CheckpointRecord], bool] = lambda _r: True,
) -> dict[int, dict[str, Any]]:
    """Numbering 1, 2, 3..., the ``prev`` links and (where ``signatures`` says so) the
    signatures of a sequence of checkpoints; the messages of the valid ones, by number.

    ``where`` prefixes the problems ("checkpoint", "exported checkpoint").
    """
    valid: dict[int, dict[str, Any]] = {}
    prev_digest = ZERO_DIGEST
    expected_n = 1
    for record in records:
        n = record.n
        label = f"{where} {n}"

        def problem(kind: str, detail: str, label: str = label, number: int = n) -> None:
            out.add(Problem(None, None, None, f"{where} {kind}", detail, label, number))

        if n < expected_n:  # only a file can repeat a number (the table's key is n)
            problem("repeated", "appears again or out of order")
            continue
        if n != expected_n:
            span = f"{expected_n}" if n == expected_n + 1 else f"{expected_n}..{n - 1}"
            kind = f"{where} missing"
            out.add(Problem(None, None, None, kind, f"{where} {span} not found", None, expected_n))
        expected_n = n + 1
        data = _message(record)
        if data is None:
            problem("unreadable", "message is not valid JSON")
            prev_digest = message_digest(record.message)
            continue
        if data.get("n") != n or data.get("key_id") != record.key_id:
            problem("mismatch", "row does not match its message")
        if data.get("prev") != prev_digest:
            problem(
                "unlinked",
                "does not link to the previous checkpoint (a checkpoint was removed or altered)",
            )
        prev_digest = message_digest(record.message)
        if not signatures(record):
            valid[n] = data
            continue
        key = keys.get(record.key_id)
        if key is None:
            problem(
                "wrong key",
                f"signed by key id {record.key_id}, which is not a verifying key "
                f"({', '.join(sorted(keys)) or 'none'}): wrong signing key",
            )
            continue
        if not verify_signature(key, record.signature, record.message.encode()):
            problem(
                "bad signature",
                f"signature does not verify with key id {record.key_id} (message or "
                "signature altered, or signed with another key)",
            )
            continue
        valid[n] = data
    return valid


def _check_checkpoints(
    records: list[CheckpointRecord],
    keys: dict[str, Ed25519PublicKey],
    topics: set[str] | None,
    report: VerifyReport,
    out: _Collector,
) -> _Signed:
    """The database's checkpoints: the heads their valid ones sign."""
    _need_keys(records, keys)
    signed = _Signed()
    report.checkpoints = len(records)
    by_n = {r.n: r for r in records}
    for n, data in _check_sequence(records, keys, out, "checkpoint").items():
        report.latest_checkpoint = n
        report.latest_digest = message_digest(by_n[n].message)
        _signed_heads(by_n[n], data, topics, signed)
    return signed


@dataclass
class _Copy:
    """An exported copy of the checkpoints as read, before the database."""

    path: Path
    local: bool  # the archiver's own export file (else the off-host copy, --checkpoints)
    records: list[CheckpointRecord]
    bad_lines: list[BadLine]

    @classmethod
    def read(cls, path: Path, *, local: bool) -> _Copy:
        where = "checkpoint_export_file" if local else "--checkpoints"
        return cls(path, local, *read_exported(path, where))

    def last(self) -> int:
        return max((r.n for r in self.records), default=0)

    def catch_up(self, last_in_db: int, wait_s: float) -> None:
        """Read the file again for up to ``wait_s`` while it lacks the database's latest
        checkpoints: the archiver commits a checkpoint, then appends it (a verify between the
        two is no cut). Lines past the database's snapshot are left out; a file that is no
        longer an extension of the first read keeps the first read."""
        deadline = time.monotonic() + wait_s
        while self.last() < last_in_db and time.monotonic() < deadline:
            time.sleep(REREAD_POLL_S)
            records, bad = read_exported(self.path, "checkpoint_export_file")
            if records[: len(self.records)] != self.records:
                return
            self.records = [r for r in records if r.n <= last_in_db]
            self.bad_lines = [b for b in bad if b.after < last_in_db]


def _check_exported(
    copy: _Copy,
    records: list[CheckpointRecord],
    keys: dict[str, Ed25519PublicKey],
    topics: set[str] | None,
    signed: _Signed,
    report: VerifyReport,
    out: _Collector,
) -> None:
    """An exported copy against the database: every exported checkpoint must still be there
    unchanged; those that are not still count, by their signed heads, against the chains.
    Checkpoints of the database that the copy lacks: the local export was cut (a problem
    naming them), an off-host copy lags (a warning)."""
    exported = copy.records
    _need_keys(exported, keys)
    name = copy.path.name
    where = f"the archiver's local export {name}" if copy.local else name
    for bad in copy.bad_lines:
        after = f"after checkpoint {bad.after}" if bad.after else "before any checkpoint"
        out.add(
            Problem(
                None,
                None,
                None,
                "export edited",
                f"{bad} (file edited), {after}",
                f"exported checkpoints {name}",
                bad.after + 1,
            )
        )
    in_db = {r.n: r for r in records}
    by_n = {r.n: r for r in exported}
    # a line identical to the database row was checked with it; the others are checked here
    differs = {r.n for r in exported if in_db.get(r.n) != r}
    valid = _check_sequence(
        exported, keys, out, "exported checkpoint", signatures=lambda r: r.n in differs
    )
    for n in sorted(differs):
        if n not in in_db:
            kind = "checkpoint removed"
            detail = f"is in the exported file but not in the database (removed): seen in {where}"
        else:
            kind = "checkpoint rewritten"
            detail = (
                "differs in the database from the exported copy (rewritten or re-signed): "
                f"seen in {where}"
            )
        out.add(Problem(None, None, None, kind, detail, f"checkpoint {n}", n))
        if n in valid:
            _signed_heads(by_n[n], valid[n], topics, signed)
    last_exported = max(by_n, default=0)
    lagging = sorted(n for n in in_db if n > last_exported)
    if not lagging:
        return
    span = f"{lagging[0]}" if len(lagging) == 1 else f"{lagging[0]}..{lagging[-1]}"
    if copy.local:
        plural = "s" if len(lagging) > 1 else ""
        out.add(
            Problem(
                None,
                None,
                None,
                "export cut",
                f"in the database but not in {where} (its last lines were cut, or their "
                f"append failed; 'lgsp archive export-checkpoints {copy.path}' appends them "
                "again from the database)",
                f"checkpoint{plural} {span}",
                lagging[0],
            )
        )
    else:
        report.warnings.append(
            f"{name} lacks checkpoint(s) {lagging[0]}..{lagging[-1]} of the database (an "
            "older copy, or the export failed): those are checked against the database only"
        )


def _signed_topics(records: Iterable[CheckpointRecord]) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for record in records:
        data = _message(record)
        try:
            for topic, partition, *_ in (data or {}).get("heads", []):
                found.add((str(topic), int(partition)))
        except (ValueError, TypeError):
            continue
    return found


def _selected_topics(conn: Any, dataset: str | None, topics: set[str] | None) -> set[str] | None:
    if topics is not None:
        return set(topics)
    if dataset is None:
        return None
    found = set(conn.scalars(select(chain_t.c.topic).where(chain_t.c.dataset == dataset)))
    found |= set(
        conn.scalars(select(entry_t.c.topic).where(entry_t.c.dataset == dataset).distinct())
    )
    return found


def verify(
    settings: Settings,
    *,
    dataset: str | None = None,
    topics: Iterable[str] | None = None,
    public_keys: Iterable[Ed25519PublicKey] | None = None,
    checkpoints_file: Path | None = None,
    allow_unsigned_tail: bool = False,
    visitor: Visitor | None = None,
    strict: bool = False,
    max_problems: int = 200,
    yield_per: int = 20000,
    reread_s: float = REREAD_S,
) -> VerifyReport:
    """Recompute the chains of ``dataset`` (or of ``topics``, or all) and check checkpoints.

    The checkpoints are compared with the archiver's local export (``export_path``) when it
    exists and with ``checkpoints_file``, an off-host copy, when given (``strict`` requires
    one). ``visitor`` sees every entry row (columns in ``ROW_COLUMNS`` order) in chain order.
    ``reread_s`` bounds the wait for an append to the local export in progress.
    """
    if strict and allow_unsigned_tail:
        raise ConfigurationError(
            "--strict, --allow-unsigned-tail: strict makes every warning fail, an unsigned "
            "tail included; give one of them"
        )
    local_path = export_path(settings)
    if checkpoints_file is not None and _same_file(checkpoints_file, local_path):
        checkpoints_file = None  # the archiver's own file: checked once, as the local export
        if strict:
            raise ConfigurationError(
                f"--checkpoints: {local_path} is the archiver's own export file, which whoever "
                "rewrites the archive on its host can rewrite too; --strict needs an off-host "
                "copy (see 'lgsp archive export-checkpoints')"
            )
    if strict and checkpoints_file is None:
        raise ConfigurationError(
            "--strict: requires --checkpoints FILE, an off-host copy of the exported "
            "checkpoints ('lgsp archive export-checkpoints FILE' starts or updates one): the "
            "database and the archiver's local export can be rewritten together"
        )
    started = time.perf_counter()
    report = VerifyReport()
    out = _Collector(report, max_problems)
    keys = verifying_keys(settings, public_keys)
    report.key_ids = sorted(keys)
    report.local_export = str(local_path)
    # read before the database: the archiver commits a checkpoint before it exports it, so
    # every exported checkpoint is already in the snapshot read below
    copies: list[_Copy] = []
    if local_path.is_file():
        copies.append(_Copy.read(local_path, local=True))
    if checkpoints_file is not None:
        copies.append(_Copy.read(checkpoints_file, local=False))
    engine = open_engine(settings)
    with engine.connect() as conn:
        _snapshot(conn)
        records = checkpoint_records(conn)
        exported = [r for copy in copies for r in copy.records]
        chosen = _selected_topics(conn, dataset, set(topics) if topics is not None else None)
        if dataset is not None and chosen is not None:
            chosen |= {
                t for (t, _p) in _signed_topics(records + exported) if _dataset_of(t) == dataset
            }
        signed = _check_checkpoints(records, keys, chosen, report, out)
        last_in_db = max((r.n for r in records), default=0)
        for copy in copies:
            if copy.local:
                copy.catch_up(last_in_db, reread_s)
                report.local_export_present = True
                report.local_exported = len(copy.records)
            else:
                report.checkpoints_file = str(copy.path)
                report.exported_checkpoints = len(copy.records)
            _check_exported(copy, records, keys, chosen, signed, report, out)
        heads = {
            (r.topic, int(r.kafka_partition)): r
            for r in conn.execute(select(chain_t))
            if chosen is None or r.topic in chosen
        }
        columns = [entry_t.c[name] for name in ROW_COLUMNS]
        query = select(*columns).order_by(entry_t.c.topic, entry_t.c.kafka_partition, entry_t.c.seq)
        if chosen is not None:
            if not chosen:
                query = query.where(entry_t.c.topic.in_([""]))
            else:
                query = query.where(entry_t.c.topic.in_(sorted(chosen)))
        seen = _walk(_stream(conn, query, yield_per), signed, heads, report, out, visitor)
    missing = {
        key: f"the chain head records position {row.head_seq}"
        for key, row in heads.items()
        if key not in seen
    }
    for key, by_seq in signed.heads.items():
        if key not in seen and key not in heads:
            n = max(n for items in by_seq.values() for _, n in items)
            missing[key] = f"checkpoint {n} signed position {max(by_seq)}"
    for key, known in missing.items():
        out.add(
            Problem(
                key[0],
                key[1],
                None,
                "chain missing",
                f"{known} but the archive has no entries (deleted)",
            )
        )
    if (records or report.entries) and not copies:
        report.warnings.append(
            f"the archiver's local export {local_path} is missing and no off-host copy "
            "was given: no exported checkpoint was compared, so a checkpoint deleted "
            "together with the entries it signed cannot be seen; verify against an "
            "off-host copy with --checkpoints FILE (--strict requires one)"
        )
    _check_signed_tails(report, out, accept=allow_unsigned_tail)
    if strict:
        _warnings_fail(report, out, published_key=public_keys is not None)
    report.elapsed_s = time.perf_counter() - started
    return report


def require_archived(report: VerifyReport, dataset: str | None, option: str = "--dataset") -> None:
    """A verify of one dataset that found nothing of it is not a pass: ``NotFoundError``."""
    if dataset is not None and report.ok and not report.chains:
        raise NotFoundError(
            f"{option}: nothing of {dataset!r} is archived (no chain, no signed head); "
            "see 'lgsp archive status'"
        )


def _check_signed_tails(report: VerifyReport, out: _Collector, *, accept: bool) -> None:
    """Every chain head covered by a signed checkpoint, or (``accept``) a counted warning."""
    report.unsigned_accepted = accept
    if report.entries and report.latest_checkpoint is None and not accept:
        out.add(
            Problem(
                None,
                None,
                None,
                "no checkpoint",
                f"the archive holds {report.entries} entries and no valid signed checkpoint "
                "(checkpoints removed, or never signed): nothing proves these entries",
            )
        )
    for chain in report.chains:
        if chain.head_seq <= chain.signed_seq:
            continue
        count = chain.head_seq - chain.signed_seq
        report.unsigned_entries += count
        where = f"positions {chain.signed_seq + 1}..{chain.head_seq} ({count} entries)"
        if accept:
            report.warnings.append(
                f"{chain.topic}[{chain.partition}] {where} are not covered by a signed "
                "checkpoint (accepted with --allow-unsigned-tail)"
            )
        else:
            out.add(
                Problem(
                    chain.topic,
                    chain.partition,
                    None,
                    "unsigned tail",
                    f"{where} are not covered by a signed checkpoint: appended since the last "
                    "checkpoint, or checkpoints were removed and the chain rewritten; if they are "
                    "genuine, sign them with 'lgsp archive run' or accept them with "
                    "--allow-unsigned-tail",
                )
            )


def _warnings_fail(report: VerifyReport, out: _Collector, *, published_key: bool) -> None:
    """``strict``: every warning is a problem, and so is a key that was not published."""
    if not published_key:
        report.warnings.append(
            "signatures were checked with the configured signing key, not with a published "
            "public key (--public-key)"
        )
    for warning in report.warnings:
        out.add(Problem(None, None, None, "strict", warning))
    report.warnings = []


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.expanduser().resolve() == b.expanduser().resolve() or (
            a.exists() and b.exists() and a.samefile(b)
        )
    except OSError:
        return False


def _snapshot(conn: Connection) -> None:
    """Read everything in one snapshot, so that an archiver appending meanwhile does not look
    like a changed head: REPEATABLE READ on PostgreSQL, one read transaction on SQLite."""
    if conn.dialect.name == "postgresql":
        conn.execution_options(isolation_level="REPEATABLE READ")
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN")


def _dataset_of(topic: str) -> str | None:
    try:
        return parse_dataset_topic(topic).dataset
    except InvalidNameError:
        return None


def _stream(conn: Connection, query: Select[Any], yield_per: int) -> Iterator[Any]:
    """Rows as plain tuples, streamed: the DB-API cursor directly where that streams (SQLite;
    a server-side cursor on psycopg), else SQLAlchemy's ``yield_per``."""
    dialect = conn.dialect
    if dialect.name == "sqlite" or (dialect.name == "postgresql" and dialect.driver == "psycopg"):
        sql = str(
            query.compile(
                dialect=dialect, compile_kwargs={"literal_binds": True, "render_postcompile": True}
            )
        )
        raw = conn.connection.dbapi_connection
        assert raw is not None
        if dialect.name == "sqlite":
            cursor = raw.cursor()
        else:
            cursor = raw.cursor(name=f"lgsp_verify_{uuid.uuid4().hex[:12]}")  # type: ignore[call-arg]
        try:
            cursor.execute(sql)
            while True:
                batch = cursor.fetchmany(yield_per)
                if not batch:
                    return
                yield from batch
        finally:
            cursor.close()
    else:
        yield from conn.execution_options(yield_per=yield_per).execute(query)


def _walk(
    rows: Iterable[Any],
    signed: _Signed,
    heads: dict[tuple[str, int], Any],
    report: VerifyReport,
    out: _Collector,
    visitor: Visitor | None,
) -> set[tuple[str, int]]:
    """The hot loop: one pass over the entries in (topic, partition, seq) order."""
    sha256 = hashlib.sha256
    pack_seq = SEQ.pack
    seen: set[tuple[str, int]] = set()
    chain: ChainSummary | None = None
    topic: str | None = None
    partition = -1
    prev = b""
    expect = 1
    last_epoch = last_offset = -1
    expected: dict[int, list[tuple[str, int]]] = {}
    checked: set[int] = set()
    pending: tuple[Problem, bytes] | None = None
    dataset = unit_path = ""
    last_stored = b""
    first_ts: int | None = None
    last_ts: int | None = None
    entries = 0
    count = 0

    def finish() -> None:
        if chain is None:
            return
        chain.entries = entries
        chain.head_seq = expect - 1
        chain.head_hash = last_stored.hex()
        chain.first_ts_ms, chain.last_ts_ms = first_ts, last_ts
        for seq, items in sorted(expected.items()):
            if seq not in checked:
                for _digest, n in items:
                    out.add(
                        Problem(
                            chain.topic,
                            chain.partition,
                            seq,
                            "signed entry missing",
                            f"checkpoint {n} signed this position but the archive ends at "
                            f"position {chain.head_seq} or lacks it (entries deleted)",
                        )
                    )
        head = heads.get((chain.topic, chain.partition))
        if head is not None and (
            int(head.head_seq) != chain.head_seq or bytes(head.head_hash) != last_stored
        ):
            out.add(
                Problem(
                    chain.topic,
                    chain.partition,
                    chain.head_seq,
                    "head mismatch",
                    f"the chain head records position {head.head_seq}; the archive ends at "
                    f"position {chain.head_seq} (entries deleted or added at the end)",
                )
            )
        report.chains.append(chain)

    for row in rows:
        (
            r_topic,
            r_part,
            seq,
            epoch,
            offset,
            r_dataset,
            r_unit,
            event_id,
            op,
            ts_ms,
            key,
            source_unit,
            schema_id,
            payload,
            stored,
        ) = row
        if r_part != partition or r_topic != topic:
            finish()
            topic, partition = r_topic, r_part
            seen.add((topic, partition))
            parsed = _dataset_of(topic)
            dataset = parsed or ""
            unit_path = ".".join(topic.split(".")[1:-2]) if parsed else ""
            chain = ChainSummary(topic, partition, dataset, unit_path)
            prev = genesis(topic, partition)
            expect = 1
            last_epoch = last_offset = -1
            expected = signed.heads.get((topic, partition), {})
            checked = set()
            pending = None
            first_ts = ts_ms
            entries = 0
            if parsed is None:
                out.add(Problem(topic, partition, None, "not a dataset topic", "bad topic name"))
        count += 1
        entries += 1
        if type(stored) is not bytes:
            stored = bytes(stored)
        if seq != expect:
            if seq > expect:
                span = f"{expect}" if seq == expect + 1 else f"{expect}..{seq - 1}"
                out.add(Problem(topic, partition, expect, "missing", f"position(s) {span} deleted"))
            else:
                out.add(Problem(topic, partition, seq, "repeated position", "appears twice"))
            expect = seq + 1
            prev = stored
            pending = None
        else:
            expect += 1
            if type(payload) is not bytes:
                payload = bytes(payload)
            seqb = pack_seq(seq)
            tail = canonical_bytes(
                epoch, offset, ts_ms, schema_id, op, event_id, source_unit, key, payload
            )
            h = sha256(prev + seqb + tail).digest()
            if pending is not None:
                problem, alt = pending
                pending = None
                if h == stored:
                    problem.detail = (
                        "content altered (its data no longer matches the hash recorded when "
                        "it was archived)"
                    )
                else:
                    h_alt = sha256(alt + seqb + tail).digest()
                    if h_alt == stored:
                        problem.detail = "stored hash altered"
                        h = h_alt
            if h != stored:
                problem = out.add(
                    Problem(
                        topic,
                        partition,
                        seq,
                        "broken link",
                        "does not match its hash (edited, inserted or moved entry)",
                    )
                )
                pending = (problem, h)
                prev = stored
            else:
                prev = h
        if epoch <= last_epoch and (epoch < last_epoch or offset <= last_offset):
            out.add(
                Problem(
                    topic,
                    partition,
                    seq,
                    "out of order",
                    f"offset {epoch}:{offset} after {last_epoch}:{last_offset} (reordered)",
                )
            )
        last_epoch = epoch
        last_offset = offset
        if r_dataset != dataset or r_unit != unit_path:
            out.add(
                Problem(topic, partition, seq, "columns altered", "dataset or unit_path differs")
            )
        if seq in expected:
            assert chain is not None
            checked.add(seq)
            hexed = stored.hex()
            for digest, n in expected[seq]:
                if digest != hexed:
                    out.add(
                        Problem(
                            topic,
                            partition,
                            seq,
                            "differs from checkpoint",
                            f"checkpoint {n} signed another hash for this position (the chain "
                            "was rewritten)",
                        )
                    )
                chain.signed_seq = max(chain.signed_seq, seq)
                chain.checkpoint_n = max(chain.checkpoint_n or 0, n)
        last_stored = stored
        last_ts = ts_ms
        if visitor is not None:
            visitor(row)
    finish()
    report.entries = count
    return seen
