"""What the archive holds: its chains (one per topic-partition) with their heads, the latest
signed checkpoint and the signing key's id (``lgsp archive status`` and the auditor API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select

from bus.archive.checkpoint import Checkpoint, latest_checkpoint
from bus.archive.models import ArchiveChain, ArchiveCheckpoint
from bus.archive.signing import load_signing_key
from bus.config import Settings
from bus.db import session_scope
from bus.timeutil import from_epoch_ms


@dataclass(frozen=True)
class ChainHead:
    topic: str
    partition: int
    dataset: str
    epoch: int
    entries: int
    last_offset: int
    signed: int
    updated_ms: int | None


@dataclass
class ArchiveStatus:
    chains: list[ChainHead] = field(default_factory=list)
    checkpoints: int = 0
    latest: Checkpoint | None = None
    key_origin: str | None = None
    key_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        def when(ms: int | None) -> str | None:
            return from_epoch_ms(ms).isoformat(timespec="seconds") if ms is not None else None

        latest = self.latest
        return {
            "chains": [c.__dict__ | {"updated": when(c.updated_ms)} for c in self.chains],
            "checkpoints": self.checkpoints,
            "latest_checkpoint": (
                {
                    "n": latest.n,
                    "created": when(latest.created_ms),
                    "key_id": latest.key_id,
                    "digest": latest.digest,
                    "heads": len(latest.heads),
                }
                if latest is not None
                else None
            ),
            "signing_key": {"origin": self.key_origin, "key_id": self.key_id}
            if self.key_id
            else None,
        }


def archive_status(settings: Settings, dataset: str | None = None) -> ArchiveStatus:
    """The chains (of ``dataset``, or all) and the latest checkpoint; never creates a key."""
    with session_scope(settings) as session:
        query = select(ArchiveChain).order_by(ArchiveChain.topic, ArchiveChain.kafka_partition)
        if dataset:
            query = query.where(ArchiveChain.dataset == dataset)
        chains = [
            ChainHead(
                c.topic,
                c.kafka_partition,
                c.dataset,
                c.epoch,
                c.head_seq,
                c.head_offset,
                c.signed_seq,
                c.updated_ms,
            )
            for c in session.scalars(query)
        ]
        count = session.scalar(select(func.count()).select_from(ArchiveCheckpoint)) or 0
    key = load_signing_key(settings, create=False)
    return ArchiveStatus(
        chains,
        count,
        latest_checkpoint(settings),
        key.origin if key else None,
        key.key_id if key else None,
    )
