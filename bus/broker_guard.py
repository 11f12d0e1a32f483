"""The broker guard: no run goes on against a broker that lost what the bus published.

The control database keeps what the bus last saw of the broker: its cluster id (the embedded
broker gets a new one at every start, as it forgets its topics) and, per topic-partition, the
end offset each holder knows the broker reached: ``publish:<origin>`` (acknowledged sends, per
publishing origin, so that ``lgsp broker restore`` can tell who can publish again what the
archive lacks: see ``ORIGINS``) and ``group:<id>`` (committed offsets of sinks, routes, the
archiver, deliveries). The rule, in ``judge``: the broker lost data when

- its cluster id changed while the bus knows of published records, or
- a topic the bus knows holds records is missing, or
- a partition ends below an offset the bus knows it reached, or
- a partition holds, at the offset of its anchor, another record than the one the bus wrote
  there: the log was replaced by another one that is at least as long (same cluster id, a
  topic deleted and created again, then filled by others).

The anchor of a partition (``broker_anchor``) is a record a ``Publisher`` had acknowledged
there: its offset and the digest of its key and value bytes (``bus.kafka.fetch.record_digest``).
Each publisher moves it forward to the last record of its first acknowledged batch on the
partition (once per publisher, so a long run's batches cost nothing more). The check reads that
one record back; an anchor the broker no longer holds (below the log start after retention)
cannot be checked and is passed over.

Then the run stops with ``BrokerDataLostError`` (a ``FatalError``: retrying does not help)
naming ``lgsp broker restore``. What the bus knows is read before the broker is asked, so a
concurrent publisher can never make an intact broker look short.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from sqlalchemy import BigInteger, DateTime, Integer, String, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from bus.config import Settings
from bus.db import retry_conflicts, session_scope
from bus.db.engine import Base
from bus.errors import BrokerUnavailableError, FatalError
from bus.kafka import clients
from bus.kafka.ends import TopicEnds, topic_ends
from bus.kafka.fetch import record_digest, records_at
from bus.timeutil import utcnow

PUBLISH = "publish"  # a publisher that names no origin (and rows from before origins)
CLI = "publish:cli"
REPAIR = "publish:repair"
REFORM = "publish:reform"
DLQ_REPLAY = "publish:dlq-replay"
RESTORED = "publish:restore"  # records sent back by ``lgsp broker restore`` from the archive
REPUBLISHED = "a rerun publishes them again"


@dataclass(frozen=True)
class Origin:
    """Who publishes under a holder, and what to do when the broker lost what it sent:
    ``republished`` when ``lgsp broker restore`` makes a rerun publish it again."""

    what: str
    remedy: str
    republished: bool = False


ORIGINS: dict[str, Origin] = {
    PUBLISH: Origin("a publisher the bus cannot name", "publish them again from where they came"),
    CLI: Origin("lgsp publish", "re-publish them from their files"),
    REPAIR: Origin("lgsp reconcile --repair", "run the reconcile with --repair again"),
    REFORM: Origin("lgsp route reform", "run the reform again"),
    DLQ_REPLAY: Origin("lgsp dlq replay", "publish the records again from their source"),
    "publish:dlq": Origin(
        "the dead-letter parking of consumer group",
        "the records they held are at the origin offsets the consumer logged",
    ),
    "publish:source": Origin("source connector", REPUBLISHED, True),
    "publish:route": Origin("the route of consumer group", REPUBLISHED, True),
    RESTORED: Origin("lgsp broker restore", "they are in the archive", True),
}
RECOVERY = "run 'lgsp broker restore' (see what it would do with --dry-run)"


class BrokerDataLostError(FatalError):
    """The broker no longer holds records the bus published or read."""


def _data_lost(problem: str) -> BrokerDataLostError:
    return BrokerDataLostError(f"the broker lost data the bus published: {problem}; {RECOVERY}")


class BrokerIdentity(Base):
    """The cluster id of the broker the bus last worked with (one row, ``id`` 1)."""

    __tablename__ = "broker_identity"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    cluster_id: Mapped[str] = mapped_column(String(255))
    recorded_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class BrokerOffset(Base):
    """The end offset ``holder`` knows a topic-partition reached on the broker."""

    __tablename__ = "broker_offset"

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    kafka_partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(255), primary_key=True)
    end_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


def group_holder(group_id: str) -> str:
    return f"group:{group_id}"


def source_origin(connector: str) -> str:
    return f"publish:source:{connector}"


def route_origin(group_id: str) -> str:
    return f"publish:route:{group_id}"


def dlq_origin(group_id: str | None) -> str:
    """Dead letters a consumer (of ``group_id``) parks."""
    return f"publish:dlq:{group_id or '-'}"


def is_publisher(holder: str) -> bool:
    return holder == PUBLISH or holder.startswith(PUBLISH + ":")


def origin_of(holder: str) -> tuple[Origin, str]:
    """The origin of a publishing holder and the name it carries (a connector, a group); a
    holder that is not one of ``ORIGINS`` is a publisher the bus cannot name."""
    kind, _, name = holder.partition(":")[2].partition(":")
    base = f"{PUBLISH}:{kind}" if kind else PUBLISH
    if base not in ORIGINS:
        return ORIGINS[PUBLISH], ""
    return ORIGINS[base], name


def describe_origin(holder: str) -> str:
    origin, name = origin_of(holder)
    return f"{origin.what} {name}".rstrip()


class BrokerAnchor(Base):
    """A record the bus wrote (and had acknowledged) at a topic-partition, moved forward by
    each publisher's first batch there: its offset and the digest of its key and value bytes."""

    __tablename__ = "broker_anchor"

    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    kafka_partition: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    anchor_offset: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


Anchors = dict[tuple[str, int], tuple[int, str]]  # (topic, partition) -> (offset, digest)


@dataclass(frozen=True)
class Known:
    """A snapshot of what the bus knows, taken before the broker is asked."""

    cluster_id: str | None
    published_anything: bool
    ends: TopicEnds = field(default_factory=dict)  # the highest end over every holder
    anchors: Anchors = field(default_factory=dict)


def known(settings: Settings, topics: Iterable[str] | None = None) -> Known:
    """What the bus knows of ``topics`` (all topics with ``None``)."""
    wanted = None if topics is None else sorted(set(topics))
    with session_scope(settings) as s:
        identity = s.get(BrokerIdentity, 1)
        anything = s.scalar(select(func.max(BrokerOffset.end_offset))) or 0
        query = select(
            BrokerOffset.topic, BrokerOffset.kafka_partition, func.max(BrokerOffset.end_offset)
        ).group_by(BrokerOffset.topic, BrokerOffset.kafka_partition)
        if wanted is not None:
            query = query.where(BrokerOffset.topic.in_(wanted))
        ends = {(t, int(p)): int(e) for t, p, e in s.execute(query) if int(e) > 0}
        marks = select(BrokerAnchor)
        if wanted is not None:
            marks = marks.where(BrokerAnchor.topic.in_(wanted))
        anchors = {
            (a.topic, int(a.kafka_partition)): (int(a.anchor_offset), a.digest)
            for a in s.scalars(marks)
        }
    return Known(identity.cluster_id if identity else None, anything > 0, ends, anchors)


def cluster_id_of(client: Any) -> str | None:
    """The cluster id in a kafka-python client's metadata (None if the broker gives none)."""
    cluster = getattr(getattr(client, "_client", None), "cluster", None)
    value = getattr(cluster, "cluster_id", None)
    return str(value) if value else None


def anchored(consumer: Any, seen: Known, ends: TopicEnds) -> dict[tuple[str, int], str]:
    """The digest of the record the broker holds at each of ``seen``'s anchors it reaches
    (``ends``), read with ``consumer``; an anchor below the log start is left out."""
    wanted = {
        TopicPartition(*key): offset
        for key, (offset, _) in seen.anchors.items()
        if ends.get(key, 0) > offset
    }
    return {
        (tp.topic, tp.partition): record_digest(r.key, r.value)
        for tp, r in records_at(consumer, wanted).items()
    }


def judge(
    settings: Settings,
    seen: Known,
    cluster_id: str | None,
    present: set[str],
    ends: TopicEnds | None,
    held: dict[tuple[str, int], str] | None = None,
) -> None:
    """The rule: raise ``BrokerDataLostError`` if the broker (``cluster_id``, the ``present``
    topics, their exact ``ends``, the digests ``held`` at the anchors: ``anchored``) lost
    anything of ``seen``; otherwise record the cluster id when the bus had none (or knew of
    nothing published). ``ends`` None: not probed (the light check judges the cluster id and
    the topics present only)."""
    problems: list[str] = []
    changed = seen.cluster_id is not None and cluster_id is not None
    changed = changed and cluster_id != seen.cluster_id
    if changed and seen.published_anything:
        problems.append(f"the cluster id is {cluster_id}, it was {seen.cluster_id}")
    for (topic, partition), end in sorted(seen.ends.items()):
        if topic not in present:
            problems.append(f"topic {topic} is missing (the bus saw it reach offset {end})")
        elif ends is not None and ends.get((topic, partition), 0) < end:
            problems.append(
                f"{topic}[{partition}] ends at offset {ends.get((topic, partition), 0)}, "
                f"the bus saw it reach {end}"
            )
    for (topic, partition), (offset, digest) in sorted(seen.anchors.items()):
        found = (held or {}).get((topic, partition))
        if topic in present and found is not None and found != digest:
            problems.append(
                f"{topic}[{partition}] holds another record at offset {offset} than the one "
                "the bus wrote there (the log was replaced)"
            )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _data_lost(f"{problems[0]}{more}")
    if cluster_id is not None and cluster_id != seen.cluster_id:
        record_identity(settings, cluster_id)


def probe(
    settings: Settings, topics: Iterable[str], seen: Known | None = None
) -> tuple[str | None, set[str], TopicEnds, dict[tuple[str, int], str]]:
    """The broker's cluster id, which of ``topics`` exist, their exact end offsets and (with
    ``seen``) the digests at ``seen``'s anchors."""
    consumer = clients.consumer(settings, None)
    try:
        ends = topic_ends(consumer, sorted(set(topics)))
        held = anchored(consumer, seen, ends) if seen is not None else {}
        return cluster_id_of(consumer), {t for t, _ in ends}, ends, held
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot check the broker's topics ({type(exc).__name__})"
        ) from exc
    finally:
        consumer.close(autocommit=False)


def check(settings: Settings, topics: Iterable[str] | None = None) -> None:
    """Stop with ``BrokerDataLostError`` if the broker lost what the bus knows of ``topics``
    (every topic it knows of with ``None``); the start of every run calls this."""
    seen = known(settings, topics)
    names = {t for t, _ in seen.ends} | set(topics or [])
    cluster_id, present, ends, held = probe(settings, names, seen)
    judge(settings, seen, cluster_id, present, ends, held)


Listing = Callable[[], tuple[str | None, set[str]]]


def check_listed(settings: Settings, topics: Iterable[str] | None, listing: Listing) -> None:
    """The light check: ``check`` judged on the cluster id and topics that ``listing`` gets
    from the broker (a listing the caller needs anyway), without the fetch per partition for
    the exact ends. What the bus knows is read first, as in ``check``."""
    seen = known(settings, topics)
    cluster_id, present = listing()
    judge(settings, seen, cluster_id, present, None)


class Periodic:
    """``check`` at most every ``every_s`` seconds: for followed runs, on each poll cycle.

    ``now``: the first call checks in full (else the caller checked at its start). A call
    given a ``listing`` that is not due for the full check runs the light one
    (``check_listed``) instead of nothing."""

    def __init__(
        self,
        settings: Settings,
        topics: Iterable[str] | None,
        every_s: float = 30.0,
        *,
        now: bool = False,
    ) -> None:
        self.settings = settings
        self.topics = None if topics is None else list(topics)
        self.every_s = every_s
        self._last = -math.inf if now else time.monotonic()

    def __call__(self, listing: Listing | None = None) -> None:
        if time.monotonic() - self._last >= self.every_s:
            check(self.settings, self.topics)
            self._last = time.monotonic()
        elif listing is not None:
            check_listed(self.settings, self.topics, listing)


# ---- what the bus saw ------------------------------------------------------------------------


def record_identity(settings: Settings, cluster_id: str) -> None:
    def write() -> None:
        with session_scope(settings) as s:
            row = s.get(BrokerIdentity, 1)
            if row is None:
                s.add(BrokerIdentity(id=1, cluster_id=cluster_id, recorded_at=utcnow()))
            else:
                row.cluster_id, row.recorded_at = cluster_id, utcnow()

    retry_conflicts(write, 3)


def _raise_row(s: Any, model: type[Base], key: dict[str, Any], **values: Any) -> None:
    """Set the row of ``key`` to ``values`` unless the column of the first value already
    holds more (it only moves forward), or add the row when there is none."""
    column, target = next(iter(values.items()))
    stored = getattr(model, column)
    moved = s.execute(
        update(model)
        .where(*(getattr(model, k) == v for k, v in key.items()), stored <= target)
        .values(**values, updated_at=utcnow())
    ).rowcount
    if not moved and s.get(model, tuple(key.values())) is None:
        s.add(model(**key, **values, updated_at=utcnow()))
        s.flush()


def _move_anchors(s: Any, anchors: Anchors) -> None:
    """Move each partition's anchor forward to ``anchors`` (never back)."""
    for (topic, partition), (offset, digest) in sorted(anchors.items()):
        key = {"topic": topic, "kafka_partition": partition}
        _raise_row(s, BrokerAnchor, key, anchor_offset=offset, digest=digest)


def forget_anchors(settings: Settings, keys: Iterable[tuple[str, int]]) -> None:
    """Drop the anchors of partitions whose log was replaced on purpose (``lgsp broker
    restore``); the next acknowledged batch anchors them again."""
    with session_scope(settings) as s:
        for topic, partition in sorted(set(keys)):
            s.execute(
                delete(BrokerAnchor).where(
                    BrokerAnchor.topic == topic, BrokerAnchor.kafka_partition == partition
                )
            )


def record_ends(
    settings: Settings, holder: str, ends: TopicEnds, anchors: Anchors | None = None
) -> None:
    """Raise ``holder``'s known end of each topic-partition to ``ends`` (never lower it), and
    move the ``anchors`` forward, in one transaction."""
    if not ends:
        return

    def write() -> None:
        with session_scope(settings) as s:
            if anchors:
                _move_anchors(s, anchors)
            for (topic, partition), end in sorted(ends.items()):
                key = {"topic": topic, "kafka_partition": partition, "holder": holder}
                _raise_row(s, BrokerOffset, key, end_offset=end)

    try:
        retry_conflicts(write, 5)
    except IntegrityError as exc:  # five concurrent first inserts in a row: not plausible
        raise BrokerUnavailableError(
            f"cannot record the broker offsets of {holder} ({type(exc).__name__})"
        ) from None


def acknowledge(
    settings: Settings,
    producer: Any,
    futures: list[Any],
    origin: str,
    what: str = "a record",
    reached: TopicEnds | None = None,
    records: list[tuple[bytes | None, bytes | None]] | None = None,
    anchored: set[tuple[str, int]] | None = None,
) -> TopicEnds:
    """Wait for the broker to acknowledge every send future of ``producer`` and record the ends
    reached under ``origin``: every record the bus produces passes here. Returns the ends.
    ``records``, the ``(key, value)`` of each future as sent: the last one acknowledged per
    partition becomes its anchor, unless the partition is in ``anchored`` (the partitions
    this producer anchored before: updated).

    ``reached``, the ends this producer saw before (updated): a partition acknowledged at or
    below one of them is a new log (its topic was deleted and created again meanwhile), so
    ``BrokerDataLostError`` stops the caller before it records offsets of two logs as one."""
    try:
        producer.flush(timeout=settings.kafka.request_timeout_ms / 1000 * 4)
    except KafkaError as exc:
        raise BrokerUnavailableError(f"flush failed ({type(exc).__name__})") from exc
    acked: TopicEnds = {}
    last: dict[tuple[str, int], int] = {}  # partition -> index of its last record
    for index, future in enumerate(futures):
        try:
            meta = future.get(timeout=settings.kafka.request_timeout_ms / 1000)
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"the broker did not acknowledge {what} ({type(exc).__name__})"
            ) from exc
        tp = (meta.topic, meta.partition)
        if meta.offset >= acked.get(tp, 0):
            acked[tp] = meta.offset + 1
            last[tp] = index
    if reached is not None:
        for (topic, partition), end in sorted(acked.items()):
            if end <= reached.get((topic, partition), 0):
                raise _data_lost(
                    f"{topic}[{partition}] took a record at offset {end - 1} after one at offset "
                    f"{reached[(topic, partition)] - 1} (the topic was created again)"
                )
        reached.update(acked)
    anchors: Anchors = {}
    if records is not None:
        done = anchored if anchored is not None else set()
        anchors = {
            tp: (acked[tp] - 1, record_digest(*records[i]))
            for tp, i in last.items()
            if tp not in done
        }
        done.update(anchors)
    record_ends(settings, origin, acked, anchors)
    return acked


def holder_ends(settings: Settings) -> dict[str, TopicEnds]:
    """``{holder: {(topic, partition): end}}`` of every record."""
    out: dict[str, TopicEnds] = {}
    with session_scope(settings) as s:
        for row in s.scalars(select(BrokerOffset)):
            out.setdefault(row.holder, {})[(row.topic, int(row.kafka_partition))] = int(
                row.end_offset
            )
    return out


def replace_ends(settings: Settings, holders: dict[str, TopicEnds]) -> None:
    """Set the known ends to exactly ``holders`` (after ``lgsp broker restore``)."""
    with session_scope(settings) as s:
        s.execute(delete(BrokerOffset))
        now = utcnow()
        for holder, ends in holders.items():
            for (topic, partition), end in ends.items():
                s.add(
                    BrokerOffset(
                        topic=topic,
                        kafka_partition=partition,
                        holder=holder,
                        end_offset=end,
                        updated_at=now,
                    )
                )


def consumer_lag(settings: Settings) -> dict[str, dict[str, int]]:
    """``{consumer group: {topic: records not yet read}}``: what publishers were acknowledged
    minus what the group committed, per topic, from the offsets the bus recorded (the broker
    is not asked)."""
    ends = holder_ends(settings)
    published: TopicEnds = {}
    for holder, reached in ends.items():
        if is_publisher(holder):
            for key, end in reached.items():
                published[key] = max(published.get(key, 0), end)
    out: dict[str, dict[str, int]] = {}
    for holder, read in ends.items():
        if not holder.startswith("group:"):
            continue
        lag = out.setdefault(holder.removeprefix("group:"), {})
        for (topic, partition), end in published.items():
            if any(t == topic for t, _ in read):
                behind = max(0, end - read.get((topic, partition), 0))
                lag[topic] = lag.get(topic, 0) + behind
    return out
