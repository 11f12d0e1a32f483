"""Signed checkpoints of chain heads.

A checkpoint is the canonical JSON (sorted keys, no spaces, UTF-8) of::

    {"v": 1, "n": N, "prev": hex SHA-256 of checkpoint N-1's message (64 zeros for N=1),
     "created_ms": ..., "key_id": ..., "heads": [[topic, partition, seq, hex hash], ...]}

signed with Ed25519. ``heads`` lists the chains whose head moved since the previous
checkpoint, so every chain's signed heads are spread over the checkpoint sequence; the
``prev`` link makes a removed or altered checkpoint visible.

Every checkpoint is also appended, after its transaction committed, to the export file
(``settings.checkpoint_export_file``, default ``archive-checkpoints.jsonl`` in the state folder;
format in ``bus.archive.checkpoint_file``). Appending catches up on whatever the file lacks, so a
failed append is repaired by the next checkpoint; a file whose last checkpoint the database no
longer holds unchanged stops the archiver (the archive or the file was altered).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from bus.archive.chain import canonical_json
from bus.archive.checkpoint_file import CheckpointRecord, ExportedFile
from bus.archive.models import ArchiveChain, ArchiveCheckpoint
from bus.archive.signing import SigningKey
from bus.config import Settings
from bus.db import open_engine
from bus.errors import FatalError
from bus.state import home

VERSION = 1
ZERO_DIGEST = "0" * 64
EXPORT_NAME = "archive-checkpoints.jsonl"

chain_t = ArchiveChain.__table__
checkpoint_t = ArchiveCheckpoint.__table__


def message_digest(message: str) -> str:
    return hashlib.sha256(message.encode()).hexdigest()


@dataclass(frozen=True)
class Checkpoint:
    n: int
    created_ms: int
    key_id: str
    heads: list[tuple[str, int, int, str]]
    digest: str


def _last(conn: Connection) -> tuple[int, str]:
    row = conn.execute(
        select(checkpoint_t.c.n, checkpoint_t.c.message).order_by(checkpoint_t.c.n.desc()).limit(1)
    ).first()
    if row is None:
        return 0, ZERO_DIGEST
    return int(row.n), message_digest(row.message)


def create_checkpoint(
    settings: Settings, key: SigningKey, *, force: bool = False
) -> Checkpoint | None:
    """Sign the heads that moved since the last checkpoint (None when nothing moved), then
    bring the export file up to date.

    ``force`` signs every chain head even when none moved (a fresh statement for auditors).
    """
    checkpoint = _sign_heads(settings, key, force=force)
    export_checkpoints(settings)
    return checkpoint


def _sign_heads(settings: Settings, key: SigningKey, *, force: bool) -> Checkpoint | None:
    engine = open_engine(settings)
    for attempt in range(3):
        try:
            with engine.begin() as conn:
                query = select(
                    chain_t.c.topic,
                    chain_t.c.kafka_partition,
                    chain_t.c.head_seq,
                    chain_t.c.head_hash,
                ).where(chain_t.c.head_seq > 0)
                if not force:
                    query = query.where(chain_t.c.head_seq > chain_t.c.signed_seq)
                rows = conn.execute(
                    query.order_by(chain_t.c.topic, chain_t.c.kafka_partition)
                ).all()
                if not rows:
                    return None
                n, prev = _last(conn)
                created_ms = int(time.time() * 1000)
                heads = [
                    (r.topic, int(r.kafka_partition), int(r.head_seq), bytes(r.head_hash).hex())
                    for r in rows
                ]
                message = canonical_json(
                    {
                        "v": VERSION,
                        "n": n + 1,
                        "prev": prev,
                        "created_ms": created_ms,
                        "key_id": key.key_id,
                        "heads": [list(h) for h in heads],
                    }
                )
                conn.execute(
                    checkpoint_t.insert().values(
                        n=n + 1,
                        created_ms=created_ms,
                        key_id=key.key_id,
                        message=message,
                        signature=key.sign(message.encode()),
                    )
                )
                for topic, partition, seq, _ in heads:
                    conn.execute(
                        update(chain_t)
                        .where(chain_t.c.topic == topic, chain_t.c.kafka_partition == partition)
                        .where(chain_t.c.signed_seq < seq)
                        .values(signed_seq=seq)
                    )
                return Checkpoint(n + 1, created_ms, key.key_id, heads, message_digest(message))
        except IntegrityError:  # another archiver wrote checkpoint n+1 first
            if attempt == 2:
                raise
    return None


def latest_checkpoint(settings: Settings) -> Checkpoint | None:
    with open_engine(settings).connect() as conn:
        row = conn.execute(select(checkpoint_t).order_by(checkpoint_t.c.n.desc()).limit(1)).first()
    if row is None:
        return None
    data = json.loads(row.message)
    heads = [(str(t), int(p), int(s), str(h)) for t, p, s, h in data.get("heads", [])]
    return Checkpoint(
        int(row.n), int(row.created_ms), row.key_id, heads, message_digest(row.message)
    )


def export_path(settings: Settings) -> Path:
    """Where the archiver appends its checkpoints."""
    if settings.checkpoint_export_file is not None:
        return settings.checkpoint_export_file.expanduser()
    return home(settings) / EXPORT_NAME


def checkpoint_records(
    conn: Connection, after: int = 0, limit: int | None = None
) -> list[CheckpointRecord]:
    """The database's checkpoints numbered above ``after``, in order (at most ``limit``)."""
    query = select(checkpoint_t).where(checkpoint_t.c.n > after).order_by(checkpoint_t.c.n)
    if limit is not None:
        query = query.limit(limit)
    return [
        CheckpointRecord(int(r.n), str(r.key_id), str(r.message), bytes(r.signature))
        for r in conn.execute(query)
    ]


def export_checkpoints(settings: Settings, path: Path | None = None) -> int:
    """Append to ``path`` (default ``export_path``) every checkpoint of the database that the
    file lacks; how many were appended.

    The file's last checkpoint must be in the database unchanged: otherwise the database lost
    or rewrote an exported checkpoint (or the file was edited), nothing is appended, and
    ``FatalError`` says so.
    """
    target = path or export_path(settings)
    with ExportedFile(target) as exported:
        try:
            last = exported.last()
        except (ValueError, UnicodeDecodeError) as exc:
            raise FatalError(
                f"checkpoint export {target}: its last line is not a checkpoint ({exc}); the "
                "file was cut or edited: nothing appended"
            ) from None
        after = 0 if last is None else last.n
        with open_engine(settings).connect() as conn:
            if last is not None:
                found = checkpoint_records(conn, after - 1, limit=1)
                if found != [last]:
                    how = "changed" if found and found[0].n == last.n else "missing"
                    raise FatalError(
                        f"checkpoint export {target}: checkpoint {last.n} is {how} in the "
                        "database: the archive was altered; nothing appended. Run 'lgsp audit "
                        f"verify --checkpoints {target}'"
                    )
            missing = checkpoint_records(conn, after)
        return exported.append(missing)
