"""Signed checkpoints of chain heads.

A checkpoint is the canonical JSON (sorted keys, no spaces, UTF-8) of::

    {"v": 1, "n": N, "prev": hex SHA-256 of checkpoint N-1's message (64 zeros for N=1),
     "created_ms": ..., "key_id": ..., "heads": [[topic, partition, seq, hex hash], ...]}

signed with Ed25519. ``heads`` lists the chains whose head moved since the previous
checkpoint, so every chain's signed heads are spread over the checkpoint sequence; the
``prev`` link makes a removed or altered checkpoint visible.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError

from bus.archive.models import ArchiveChain, ArchiveCheckpoint
from bus.archive.signing import SigningKey
from bus.config import Settings
from bus.db import open_engine

VERSION = 1
ZERO_DIGEST = "0" * 64

chain_t = ArchiveChain.__table__
checkpoint_t = ArchiveCheckpoint.__table__


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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
    """Sign the heads that moved since the last checkpoint; None when nothing moved.

    ``force`` signs every chain head even when none moved (a fresh statement for auditors).
    """
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
