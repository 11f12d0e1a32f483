"""An archive filled without a broker, and what a forger with database access does to it.

Entries go through the archiver's append path with synthetic messages (``_synthetic``), are
signed by the archiver's checkpoints, then edited with direct SQL. Each forgery keeps whatever
it can consistent (positions unique, hashes and chain head recomputed) so that only the
protections under test can notice it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Engine, delete, insert, select, update

from bus.archive.archiver import Archiver
from bus.archive.chain import canonical_bytes, chain_hash, genesis
from bus.archive.models import ArchiveChain, ArchiveCheckpoint, ArchiveEntry
from bus.archive.verify import Problem, VerifyReport
from bus.config import Settings
from bus.db import open_engine
from tests.unit.archive._synthetic import TOPIC, messages

E = ArchiveEntry.__table__
C = ArchiveChain.__table__
K = ArchiveCheckpoint.__table__
OTHER = "lgsp.79.760.tthc.dossier"


@dataclass
class Archive:
    settings: Settings
    engine: Engine
    archiver: Archiver


def build(settings: Settings, *, sign_tail: bool) -> Archive:
    """TOPIC p0: 35 entries, signed to 30 (to 35 with ``sign_tail``); OTHER p1: 30 entries,
    signed to 30. Two checkpoints (three with ``sign_tail``)."""
    archiver = Archiver(settings)
    archiver.append(messages(20) + messages(20, topic=OTHER, partition=1))
    assert archiver.checkpoint() is not None
    archiver.append(messages(10, start=20) + messages(10, start=20, topic=OTHER, partition=1))
    assert archiver.checkpoint() is not None
    archiver.append(messages(5, start=30))
    if sign_tail:
        assert archiver.checkpoint() is not None
    return Archive(settings, open_engine(settings), archiver)


def where(seq: int, topic: str = TOPIC, partition: int = 0) -> tuple[ColumnElement[bool], ...]:
    return (E.c.topic == topic, E.c.kafka_partition == partition, E.c.seq == seq)


def chain_of(topic: str = TOPIC, partition: int = 0) -> tuple[ColumnElement[bool], ...]:
    return (E.c.topic == topic, E.c.kafka_partition == partition)


def row(a: Archive, seq: int, topic: str = TOPIC, partition: int = 0) -> dict[str, Any]:
    with a.engine.connect() as conn:
        return dict(conn.execute(select(E).where(*where(seq, topic, partition))).one()._mapping)


def run_sql(a: Archive, *statements: Any) -> None:
    with a.engine.begin() as conn:
        for statement in statements:
            conn.execute(statement)


def failing(report: VerifyReport) -> list[Problem]:
    assert not report.ok, "tampering went unnoticed"
    return report.problems


def positions(problems: list[Problem], kind: str | None = None) -> list[int | None]:
    return [p.seq for p in problems if kind is None or p.kind == kind]


def recompute(a: Archive, topic: str = TOPIC, partition: int = 0) -> None:
    """What a careful forger does: renumber the chain 1, 2, 3..., recompute every hash and the
    head record."""
    with a.engine.begin() as conn:
        rows = conn.execute(select(E).where(*chain_of(topic, partition)).order_by(E.c.seq)).all()
        for i, r in enumerate(rows, 1):  # out of the way first: positions are unique
            conn.execute(update(E).where(*where(r.seq, topic, partition)).values(seq=-i))
        prev = genesis(topic, partition)
        for i, r in enumerate(rows, 1):
            prev = chain_hash(
                prev,
                i,
                canonical_bytes(
                    epoch=r.epoch,
                    offset=r.kafka_offset,
                    ts_ms=r.ts_ms,
                    schema_id=r.schema_id,
                    op=r.op,
                    event_id=r.event_id,
                    source_unit=r.source_unit,
                    key=r.event_key,
                    payload=r.payload,
                ),
            )
            conn.execute(
                update(E).where(*where(-i, topic, partition)).values(seq=i, entry_hash=prev)
            )
        conn.execute(
            update(C)
            .where(C.c.topic == topic, C.c.kafka_partition == partition)
            .values(head_seq=len(rows), head_hash=prev, head_offset=rows[-1].kafka_offset)
        )


# ---- the mutation classes --------------------------------------------------------------------
def edit_payload(a: Archive, seq: int = 5) -> None:
    payload = bytearray(row(a, seq)["payload"])
    payload[-1] ^= 0x01
    run_sql(a, update(E).where(*where(seq)).values(payload=bytes(payload)))


def delete_entry(a: Archive, seq: int = 12) -> None:
    run_sql(a, delete(E).where(*where(seq)))


def insert_entry(a: Archive, seq: int = 11, last: int = 35) -> None:
    forged = row(a, 3) | {"seq": seq, "kafka_offset": 1000, "event_id": "forged"}
    with a.engine.begin() as conn:
        for s in range(last, seq - 1, -1):  # make room, as a forger must (positions are unique)
            conn.execute(update(E).where(*where(s)).values(seq=s + 1))
        conn.execute(insert(E).values(**forged))


def swap_entries(a: Archive, first: int = 4, second: int = 6) -> None:
    with a.engine.begin() as conn:
        conn.execute(update(E).where(*where(first)).values(seq=-first))
        conn.execute(update(E).where(*where(second)).values(seq=first))
        conn.execute(update(E).where(*where(-first)).values(seq=second))


def erase_key_and_rechain(a: Archive, key: str = '{"id":3}') -> int:
    """Erase every entry of one key (of every chain) and recompute the chains: how many."""
    with a.engine.begin() as conn:
        chains = conn.execute(
            select(E.c.topic, E.c.kafka_partition).where(E.c.event_key == key).distinct()
        ).all()
        erased = conn.execute(delete(E).where(E.c.event_key == key)).rowcount
    for topic, partition in chains:
        recompute(a, topic, partition)
    return erased


def delete_checkpoints(a: Archive, *numbers: int) -> None:
    """Delete these checkpoint rows (all when none given) and reset what they signed."""
    condition = K.c.n.in_(numbers) if numbers else K.c.n.is_not(None)
    run_sql(a, delete(K).where(condition))


def truncate_tail(a: Archive, keep: int, topic: str = TOPIC, partition: int = 0) -> None:
    """Delete the entries after position ``keep`` and move the chain head back to it."""
    run_sql(a, delete(E).where(*chain_of(topic, partition), E.c.seq > keep))
    recompute(a, topic, partition)
