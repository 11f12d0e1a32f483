"""Archive tables: entries (hash-chained per topic-partition), chain heads, signed checkpoints
and the replay access log. Created by migration ``0004_archive``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bus.db.engine import Base


class ArchiveEntry(Base):
    """One archived event: position ``seq`` in the chain of its topic-partition."""

    __tablename__ = "archive_entry"
    __table_args__ = (
        UniqueConstraint("topic", "kafka_partition", "epoch", "kafka_offset"),
        Index("ix_archive_entry_dataset_ts", "dataset", "ts_ms"),
    )

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    kafka_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    epoch: Mapped[int] = mapped_column(Integer)
    kafka_offset: Mapped[int] = mapped_column(BigInteger)
    dataset: Mapped[str] = mapped_column(String(100))
    unit_path: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[str] = mapped_column(Text)
    op: Mapped[str] = mapped_column(String(1))
    ts_ms: Mapped[int] = mapped_column(BigInteger)
    event_key: Mapped[str | None] = mapped_column(Text)
    source_unit: Mapped[str] = mapped_column(Text)
    schema_id: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    archived_ms: Mapped[int] = mapped_column(BigInteger)


class ArchiveChain(Base):
    """The head of one chain (a cache the verifier cross-checks) and what is signed of it."""

    __tablename__ = "archive_chain"

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    kafka_partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    unit_path: Mapped[str] = mapped_column(String(200))
    epoch: Mapped[int] = mapped_column(Integer)
    head_seq: Mapped[int] = mapped_column(BigInteger)
    head_offset: Mapped[int] = mapped_column(BigInteger)
    head_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    signed_seq: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class ArchiveCheckpoint(Base):
    """A signed statement of chain heads; checkpoints are chained by the digest of the previous."""

    __tablename__ = "archive_checkpoint"

    n: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text)
    signature: Mapped[bytes] = mapped_column(LargeBinary)


class ArchiveReplayLog(Base):
    """Who replayed which dataset, when, why, over which range, and how many records."""

    __tablename__ = "archive_replay_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    principal: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(100), index=True)
    purpose: Mapped[str] = mapped_column(Text)
    as_of: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    from_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    to_ts: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    unit: Mapped[str | None] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(Text)
    records: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(200))
