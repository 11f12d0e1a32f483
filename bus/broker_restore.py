"""``lgsp broker restore``: bring a broker that lost its topics back to what the archive holds.

Per archived topic-partition (the chain's latest epoch, in chain order):

- *intact*: the broker still ends at or after everything the bus saw, with the archived head
  record at its offset: nothing is sent;
- *lost*: the broker holds a prefix of the archived records (nothing, after a restart; part of
  them, after an interrupted restore): the rest is sent with the original key and value bytes
  to the same partition, so offsets line up with the archive's where the archived offsets were
  contiguous from 0 (``lined_up``);
- anything else (other records where the archived ones should be) is a *conflict*: nothing at
  all is done and the partitions are named.

Then every source table's position moves back to its newest mark (``connector_position_mark``)
the archive (or the intact broker) covers, so a rerun of the source publishes again what never
reached the archive; the committed offsets of every consumer group (sinks, routes, archiver,
deliveries) on a lost partition move to what they had read, or to the restored end if that is
lower (to 0 where offsets do not line up: sinks apply events idempotently). Last, the known
ends and the cluster id are recorded, so the broker guard lets runs go again. Running it twice
sends nothing the second time. Topics that are not archived (DLQ topics) cannot be restored:
their loss is reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import func, select

from bus import broker_guard
from bus.archive.models import ArchiveChain, ArchiveEntry
from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.connectors_db.models import OperationLock
from bus.db import open_engine
from bus.dlq import dlq_topic
from bus.errors import BrokerUnavailableError, FatalError
from bus.kafka import clients
from bus.kafka.fetch import records_at
from bus.kafka.topics import ensure_topics
from bus.run_lock import HeldLock

SEND_CHUNK = 5000
LOCK = "broker-restore"
# the restore lock lives this long unless extended (every third of it, while the restore runs);
# a crashed restore of this host is taken over at once, one elsewhere once this has passed
LOCK_TTL_S = 120.0
log = logging.getLogger(__name__)
TP = tuple[str, int]


@dataclass
class PartitionPlan:
    topic: str
    partition: int
    dataset: str
    epoch: int
    archived: int  # entries of the latest epoch
    head_offset: int
    on_broker: int  # the broker's end before the restore
    state: str = "intact"  # intact | lost | conflict
    contiguous: bool = True  # archived offsets are 0..archived-1
    send_from: int = 0  # index of the first entry to send
    sent: int = 0

    @property
    def key(self) -> TP:
        return (self.topic, self.partition)

    @property
    def lined_up(self) -> bool:
        """Whether each restored record sits at its archived offset. A lost partition holds
        archived entry ``i`` at offset ``i`` (``_classify`` checks the prefix, ``_acknowledged``
        each send), so this is a property of the archive, whatever this run sent."""
        return self.contiguous


@dataclass
class RestoreReport:
    cluster_id: str | None
    dry_run: bool
    partitions: list[PartitionPlan] = field(default_factory=list)
    positions: list[str] = field(default_factory=list)  # "connector/table: old -> new"
    groups: dict[str, int] = field(default_factory=dict)  # group -> partitions moved
    unrestorable: list[str] = field(default_factory=list)

    @property
    def events(self) -> int:
        return sum(p.sent if not self.dry_run else p.archived - p.send_from for p in self.lost)

    @property
    def lost(self) -> list[PartitionPlan]:
        return [p for p in self.partitions if p.state == "lost"]

    @property
    def topics(self) -> list[str]:
        return sorted({p.topic for p in self.lost})


def _entries(settings: Settings, plan: PartitionPlan, start: int) -> Iterator[Any]:
    """The archived entries of ``plan``'s latest epoch from index ``start``, in chain order."""
    with open_engine(settings).connect() as conn:
        rows = conn.execution_options(yield_per=SEND_CHUNK).execute(
            select(ArchiveEntry.kafka_offset, ArchiveEntry.event_key, ArchiveEntry.payload)
            .where(
                ArchiveEntry.topic == plan.topic,
                ArchiveEntry.kafka_partition == plan.partition,
                ArchiveEntry.epoch == plan.epoch,
            )
            .order_by(ArchiveEntry.seq)
            .offset(start)
        )
        yield from rows


def _chains(settings: Settings) -> list[PartitionPlan]:
    out = []
    with open_engine(settings).connect() as conn:
        for chain in conn.execute(select(ArchiveChain).where(ArchiveChain.head_seq > 0)):
            count, first = conn.execute(
                select(func.count(), func.min(ArchiveEntry.kafka_offset)).where(
                    ArchiveEntry.topic == chain.topic,
                    ArchiveEntry.kafka_partition == chain.kafka_partition,
                    ArchiveEntry.epoch == chain.epoch,
                )
            ).one()
            plan = PartitionPlan(
                chain.topic,
                int(chain.kafka_partition),
                chain.dataset,
                int(chain.epoch),
                int(count),
                int(chain.head_offset),
                0,
            )
            plan.contiguous = first == 0 and plan.head_offset == plan.archived - 1
            out.append(plan)
    return out


def _value_at(consumer: Any, topic: str, partition: int, offset: int) -> bytes:
    tp = TopicPartition(topic, partition)
    record = records_at(consumer, {tp: offset}).get(tp)
    return b"" if record is None else bytes(record.value or b"")


def _archived_value(settings: Settings, plan: PartitionPlan, index: int) -> bytes:
    for row in _entries(settings, plan, index):
        return bytes(row.payload)
    return b""


def _classify(
    settings: Settings, plans: list[PartitionPlan], present: set[str], known: dict[TP, int]
) -> None:
    consumer = clients.consumer(settings, None)
    try:
        for plan in plans:
            end = plan.on_broker if plan.topic in present else 0
            wanted = max(plan.head_offset + 1, known.get(plan.key, 0))
            if end >= wanted and end > plan.head_offset:
                head = _value_at(consumer, plan.topic, plan.partition, plan.head_offset)
                if head == _archived_value(settings, plan, plan.archived - 1):
                    continue  # intact
            if end <= plan.archived and (
                end == 0
                or _value_at(consumer, plan.topic, plan.partition, end - 1)
                == _archived_value(settings, plan, end - 1)
            ):
                plan.state, plan.send_from = "lost", end
            else:
                plan.state = "conflict"
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read the broker ({type(exc).__name__})") from exc
    finally:
        consumer.close(autocommit=False)


def _send(settings: Settings, plans: list[PartitionPlan], step: Callable[[], None]) -> None:
    lost = [p for p in plans if p.state == "lost"]
    if not lost:
        return
    ensure_topics(
        settings,
        {**{p.topic: p.dataset for p in lost}, **{dlq_topic(p.topic): None for p in lost}},
    )
    producer = clients.producer(settings)
    try:
        for plan in lost:
            count = len(producer.partitions_for(plan.topic) or [])
            if plan.partition >= count:
                raise FatalError(
                    f"topic {plan.topic} has {count} partition(s) on the broker, the archive "
                    f"holds partition {plan.partition}: raise topics.partitions and rerun"
                )
            pending: list[tuple[int, Any]] = []
            index = plan.send_from
            for row in _entries(settings, plan, plan.send_from):
                key = row.event_key.encode() if row.event_key else None
                pending.append(
                    (
                        index,
                        producer.send(
                            plan.topic, key=key, value=bytes(row.payload), partition=plan.partition
                        ),
                    )
                )
                index += 1
                if len(pending) >= SEND_CHUNK:
                    _acknowledged(settings, producer, plan, pending)
                    step()
            _acknowledged(settings, producer, plan, pending)
            step()
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"the broker did not take the restored records ({type(exc).__name__}); "
            "rerun 'lgsp broker restore': it goes on where it stopped"
        ) from exc
    finally:
        producer.close(timeout=10)


def _acknowledged(
    settings: Settings, producer: Any, plan: PartitionPlan, pending: list[tuple[int, Any]]
) -> None:
    producer.flush(timeout=settings.kafka.request_timeout_ms / 1000 * 4)
    for index, future in pending:
        meta = future.get(timeout=settings.kafka.request_timeout_ms / 1000)
        if meta.offset != index:
            raise FatalError(
                f"broker restore: {plan.topic}[{plan.partition}] took archived entry {index} at "
                f"offset {meta.offset}: something else writes to it; stop it and rerun"
            )
        plan.sent += 1
    pending.clear()


def _move_positions(
    settings: Settings, report: RestoreReport, available: dict[TP, int], lost: set[str]
) -> None:
    """Each source table back to its newest mark within ``available`` (ends per partition)."""
    store = ConnectorStore(settings)
    for connector in store.list():
        if connector.role != "source":
            continue
        current = store.positions(connector.name)
        for table, topic in connector.topics.items():
            marks = store.marks(connector.name, table)
            if not marks and topic not in lost:
                continue
            chosen = next(
                (
                    m
                    for m in marks
                    if m.topic == topic
                    and all(end <= available.get((topic, p), 0) for p, end in m.ends.items())
                ),
                None,
            )
            if marks and chosen is marks[0]:
                continue  # the newest position stands on what the broker holds
            held = current.get(table)
            new = chosen.position if chosen is not None else None
            report.positions.append(
                f"{connector.name}/{table}: "
                f"{'start' if held is None or held.position is None else 'saved position'}"
                f" -> {'start' if new is None else 'archived position'}"
            )
            if not report.dry_run:
                store.rewind(connector.name, table, topic, new)


def _sources(settings: Settings) -> dict[str, set[str]]:
    """``{source connector: its topics}``: what a rewind of their positions publishes again."""
    return {
        c.name: set(c.topics.values())
        for c in ConnectorStore(settings).list()
        if c.role == "source"
    }


def _gaps(
    report: RestoreReport,
    holders: dict[str, broker_guard.TopicEnds],
    covered: dict[TP, int],
    sources: dict[str, set[str]],
) -> set[str]:
    """Per lost partition (``covered``: up to which offset the archive or the broker still
    holds it), every publishing origin that was acknowledged past it: a source connector (its
    position moves back) or a route (its group reads again from the start, returned) publishes
    it again on a rerun; any other origin's events are reported lost for good."""
    rewound: set[str] = set()
    known: dict[TP, int] = {}  # the highest end any holder saw, for a loss no publisher names
    for reached in holders.values():
        for key, end in reached.items():
            known[key] = max(known.get(key, 0), end)
    for holder, reached in sorted(holders.items()):
        if not broker_guard.is_publisher(holder):
            continue
        origin, name = broker_guard.origin_of(holder)
        for key, end in sorted(reached.items()):
            if key not in covered or end <= covered[key]:
                continue
            known.pop(key, None)
            if holder.startswith("publish:route:"):
                rewound.add(name)
                continue
            if origin.republished and key[0] in sources.get(name, ()):
                continue
            report.unrestorable.append(
                f"{key[0]}[{key[1]}]: events up to offset {end} published by "
                f"{broker_guard.describe_origin(holder)} after the last archive run are lost; "
                f"{origin.remedy}"
            )
    for key, end in sorted(known.items()):
        if key in covered and end > covered[key]:
            report.unrestorable.append(
                f"{key[0]}[{key[1]}]: records up to offset {end} that no publisher recorded "
                "are not in the archive and are lost"
            )
    return rewound


def _published_after(
    holders: dict[str, broker_guard.TopicEnds], lost: dict[TP, int], after: broker_guard.TopicEnds
) -> dict[str, broker_guard.TopicEnds]:
    """The publishing holders once restored: unchanged on partitions that were not lost; on
    lost ones at most the broker's new end, which ``RESTORED`` holds (what was lost past it is
    reported, or is published again by a rerun that records it again)."""
    out: dict[str, broker_guard.TopicEnds] = {broker_guard.RESTORED: {}}
    for holder, reached in holders.items():
        if broker_guard.is_publisher(holder):
            out.setdefault(holder, {}).update(
                {k: min(e, after.get(k, 0)) if k in lost else e for k, e in reached.items()}
            )
    out[broker_guard.RESTORED].update({k: after[k] for k in lost if after.get(k, 0) > 0})
    return {h: {k: e for k, e in ends.items() if e > 0} for h, ends in out.items()}


def _reset_groups(
    settings: Settings,
    report: RestoreReport,
    holders: dict[str, broker_guard.TopicEnds],
    lost: dict[TP, int],
    lined_up: dict[TP, bool],
    rewound: set[str],
) -> dict[str, broker_guard.TopicEnds]:
    """The committed offsets of every group on a lost partition: what it had read, at most the
    restored end (0 where offsets do not line up); those of a ``rewound`` group (a route that
    must publish again what was lost of its output) on every partition: 0. Returns every
    group's offsets after."""
    after: dict[str, broker_guard.TopicEnds] = {}
    for holder, ends in holders.items():
        if not holder.startswith("group:"):
            continue
        group = holder.removeprefix("group:")
        moved: dict[TopicPartition, OffsetAndMetadata] = {}
        kept = dict(ends)
        for key, committed in ends.items():
            if key not in lost and group not in rewound:
                continue
            target = min(committed, lost[key]) if lined_up.get(key, False) else 0
            target = 0 if group in rewound else target
            kept[key] = target
            moved[TopicPartition(*key)] = OffsetAndMetadata(target, "", -1)
        after[holder] = kept
        if not moved:
            continue
        report.groups[group] = len(moved)
        if report.dry_run:
            continue
        consumer = clients.consumer(settings, group)
        try:
            consumer.assign(list(moved))
            consumer.commit(moved)
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"cannot move the offsets of group {group} ({type(exc).__name__}); rerun "
                "'lgsp broker restore'"
            ) from exc
        finally:
            consumer.close(autocommit=False)
    return after


def restore(settings: Settings, *, dry_run: bool = False) -> RestoreReport:
    """Restore the broker from the archive (see the module's text); ``dry_run`` changes
    nothing and reports what would be done. One restore at a time: two would both send. The
    restore's lock is short-lived and extended while this process lives (a crashed restore's
    lock frees itself within ``LOCK_TTL_S``); a restore that lost it stops before its next
    write."""
    if dry_run:
        return _restore(settings, dry_run=True, step=lambda: None)
    lock = HeldLock(ConnectorStore(settings), LOCK, LOCK_TTL_S, OperationLock)
    with lock, lock.keep_alive():
        return _restore(settings, dry_run=False, step=lock.refresh)


def _restore(settings: Settings, *, dry_run: bool, step: Callable[[], None]) -> RestoreReport:
    """The restore; ``step()`` before each write (the lock still held)."""
    seen = broker_guard.known(settings)
    plans = _chains(settings)
    names = {p.topic for p in plans} | {t for t, _ in seen.ends}
    cluster_id, present, ends, _ = broker_guard.probe(settings, names)
    for plan in plans:
        plan.on_broker = ends.get(plan.key, 0)
    _classify(settings, plans, present, seen.ends)
    conflicts = [p for p in plans if p.state == "conflict"]
    if conflicts:
        shown = ", ".join(
            f"{p.topic}[{p.partition}] (broker ends at {p.on_broker}, archive holds {p.archived})"
            for p in conflicts[:3]
        )
        raise FatalError(
            f"broker restore: {len(conflicts)} partition(s) hold records that are not the "
            f"archived ones: {shown}; nothing was changed. Move those topics away (or delete "
            "them) and rerun"
        )
    report = RestoreReport(cluster_id, dry_run, plans)
    archived = {p.key: p for p in plans}
    lost_ends: dict[TP, int] = {}  # lost partition -> its end after the restore
    available: dict[TP, int] = {}  # what a source mark may stand on, in the archive's offsets
    for key, end in ends.items():
        available[key] = end
    for plan in plans:
        if plan.state == "lost":
            lost_ends[plan.key] = plan.archived
            available[plan.key] = plan.head_offset + 1
    for key, end in seen.ends.items():
        if key in archived:
            continue
        on_broker = ends.get(key, 0) if key[0] in present else 0
        if on_broker < end:
            lost_ends[key] = on_broker
            available[key] = 0
    holders = broker_guard.holder_ends(settings)
    sources = _sources(settings)
    covered = {k: available[k] if k in archived else e for k, e in lost_ends.items()}
    rewound = _gaps(report, holders, covered, sources)
    if not dry_run:
        _send(settings, plans, step)
    lined_up = {p.key: p.lined_up for p in plans}
    step()
    _move_positions(settings, report, available, {t for t, _ in lost_ends})
    step()
    groups = _reset_groups(settings, report, holders, lost_ends, lined_up, rewound)
    if not dry_run:
        _, present, after, _ = broker_guard.probe(settings, names)
        step()
        published = _published_after(holders, lost_ends, after)
        broker_guard.replace_ends(settings, {**published, **groups})
        broker_guard.forget_anchors(settings, lost_ends)  # their logs are new ones
        if cluster_id is not None:
            broker_guard.record_identity(settings, cluster_id)
    return report
