"""The archiver: appends every event of the dataset topics to the hash-chained archive.

A run lists the dataset topics (``lgsp.<unit path>.<domain>.<name>``, DLQ topics excluded),
decides where each partition continues from the archive itself (the broker's committed offsets
are only a copy, written for lag monitoring), reads up to the end with the group
``lgsp.archiver``, and appends in the same database transaction as the chain head update.
Re-delivered offsets are skipped, so a crash between the archive commit and the broker commit
neither duplicates nor skips an event. Records that do not decode go to ``<topic>.dlq`` by the
bus's policy; ``lgsp dlq replay`` brings them back to the topic, where they are archived. A
record framed with a schema id the registry does not hold for its topic's subject is not
parked: replay could never decode it and another bus's topic on a shared cluster is no business
of this archive. The run stops there (``UnknownSchemaError`` named by topic, partition, offset
and schema id, exit 4): the batches before the one holding it are archived and committed,
nothing from that batch on.

Broker incarnations: the embedded broker forgets its topics on restart and offsets start again
at 0. Before reading, the archiver looks at the broker's record at the archived head offset: the
same bytes mean the same log; another record, a lower offset, or no record at all mean a new
log, which is archived as the next ``epoch`` of the same chain.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy import Connection, select, tuple_
from sqlalchemy.exc import IntegrityError, OperationalError

from bus import broker_guard, longrun
from bus.archive.chain import (
    DatasetTopic,
    canonical_bytes,
    chain_hash,
    genesis,
    is_dataset_topic,
    parse_dataset_topic,
)
from bus.archive.checkpoint import Checkpoint, create_checkpoint
from bus.archive.models import ArchiveChain, ArchiveEntry
from bus.archive.signing import SigningKey, load_signing_key
from bus.config import Settings
from bus.consume import Consumer, ErrorPolicy, Message
from bus.context import Context
from bus.db import open_engine, retry_conflicts
from bus.errors import (
    BrokerUnavailableError,
    DatabaseUnavailableError,
    DataError,
    FatalError,
    RetriableError,
)
from bus.kafka import clients
from bus.kafka.ends import partitions_of
from bus.longrun import Follow, stop_signals, uninterrupted
from bus.registry import Registry, subject_for
from bus.runs import record_run
from bus.serde import UnknownSchemaError

log = logging.getLogger(__name__)

GROUP_ID = "lgsp.archiver"
APPEND_ATTEMPTS = 5
GUARD_FULL_EVERY_S = 30.0  # a followed archiver's full broker guard; the light one between
entry_t = ArchiveEntry.__table__
chain_t = ArchiveChain.__table__


@dataclass(frozen=True)
class Plan:
    """Where a partition continues: ``start`` None means the beginning of the log."""

    topic: str
    partition: int
    epoch: int
    start: int | None
    note: str = ""


@dataclass
class ArchiveReport:
    topics: list[str] = field(default_factory=list)
    read: int = 0
    appended: int = 0
    skipped: int = 0
    dlq: int = 0
    new_epochs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checkpoint: Checkpoint | None = None
    key_generated: str | None = None


def broker_topics(settings: Settings) -> tuple[str | None, list[str]]:
    """The broker's cluster id and every topic on it (one admin client, one listing)."""
    client = clients.admin(settings)
    try:
        names = client.list_topics()
        return broker_guard.cluster_id_of(client), names
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot list topics ({type(exc).__name__})") from exc
    finally:
        client.close()


def list_dataset_topics(
    settings: Settings, pattern: str | None = None, *, names: Iterable[str] | None = None
) -> list[str]:
    """Dataset topics on the broker (or among ``names``), optionally filtered by
    comma-separated glob patterns."""
    if names is None:
        names = broker_topics(settings)[1]
    globs = [p.strip() for p in (pattern or "").split(",") if p.strip()]
    return sorted(
        t
        for t in names
        if is_dataset_topic(t) and (not globs or any(fnmatch.fnmatchcase(t, g) for g in globs))
    )


def envelope_fields(value: dict[str, Any], where: str) -> dict[str, Any]:
    """The archive columns taken from a decoded change envelope."""
    try:
        source = value.get("source") or {}
        return {
            "event_id": str(value["event_id"]),
            "op": str(value["op"]),
            "ts_ms": int(value["ts_ms"]),
            "event_key": value.get("key"),
            "source_unit": str(source.get("unit") or ""),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{where}: not a change envelope ({type(exc).__name__})") from None


def entry_row(
    parsed: DatasetTopic,
    partition: int,
    *,
    seq: int,
    epoch: int,
    offset: int,
    schema_id: int,
    fields: dict[str, Any],
    payload: bytes,
    prev: bytes,
    archived_ms: int,
) -> dict[str, Any]:
    """The archive row of one entry (``fields`` as from ``envelope_fields``), its
    ``entry_hash`` chained on ``prev``, the hash of the entry before it."""
    entry_hash = chain_hash(
        prev,
        seq,
        canonical_bytes(
            epoch=epoch,
            offset=offset,
            ts_ms=fields["ts_ms"],
            schema_id=schema_id,
            op=fields["op"],
            event_id=fields["event_id"],
            source_unit=fields["source_unit"],
            key=fields["event_key"],
            payload=payload,
        ),
    )
    return {
        "topic": parsed.topic,
        "kafka_partition": partition,
        "seq": seq,
        "epoch": epoch,
        "kafka_offset": offset,
        "dataset": parsed.dataset,
        "unit_path": parsed.unit_path,
        "schema_id": schema_id,
        "payload": payload,
        "entry_hash": entry_hash,
        "archived_ms": archived_ms,
        **fields,
    }


def write_head(
    conn: Connection,
    parsed: DatasetTopic,
    partition: int,
    *,
    new: bool,
    epoch: int,
    head_seq: int,
    head_offset: int,
    head_hash: bytes,
    updated_ms: int,
) -> None:
    """Insert (``new``) or move the chain head record of a topic-partition."""
    head = {
        "epoch": epoch,
        "head_seq": head_seq,
        "head_offset": head_offset,
        "head_hash": head_hash,
        "updated_ms": updated_ms,
    }
    if new:
        conn.execute(
            chain_t.insert().values(
                topic=parsed.topic,
                kafka_partition=partition,
                dataset=parsed.dataset,
                unit_path=parsed.unit_path,
                signed_seq=0,
                **head,
            )
        )
    else:
        conn.execute(
            chain_t.update()
            .where(chain_t.c.topic == parsed.topic, chain_t.c.kafka_partition == partition)
            .values(**head)
        )


@dataclass(frozen=True)
class Head:
    """The last archived entry of a chain: where the broker's log is compared."""

    epoch: int
    offset: int
    payload: bytes


def archived_heads(settings: Settings, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Head]:
    """The last entry of each chain in ``keys`` that has one (from the chain head records)."""
    heads: dict[tuple[str, int], Head] = {}
    if not keys:
        return heads
    with open_engine(settings).connect() as conn:
        chains = conn.execute(
            select(chain_t).where(tuple_(chain_t.c.topic, chain_t.c.kafka_partition).in_(keys))
        ).all()
        for chain in chains:
            if int(chain.head_seq) == 0:
                continue
            payload = conn.scalar(
                select(entry_t.c.payload).where(
                    entry_t.c.topic == chain.topic,
                    entry_t.c.kafka_partition == chain.kafka_partition,
                    entry_t.c.seq == chain.head_seq,
                )
            )
            heads[(chain.topic, int(chain.kafka_partition))] = Head(
                int(chain.epoch), int(chain.head_offset), bytes(payload or b"")
            )
    return heads


def plan_positions(
    settings: Settings,
    consumer: Any,
    tps: list[TopicPartition],
    *,
    heads: dict[tuple[str, int], Head] | None = None,
    polls: int = 6,
) -> dict[tuple[str, int], Plan]:
    """Decide epoch and start offset of every partition from the archive's chain heads.

    ``heads`` defaults to the chain head records; a caller that read the archive in one
    snapshot passes the heads it saw. ``consumer`` is a kafka-python consumer; it is assigned
    the partitions it probes and left positioned anywhere.
    """
    plans: dict[tuple[str, int], Plan] = {}
    if not tps:
        return plans
    keys = [(tp.topic, tp.partition) for tp in tps]
    if heads is None:
        heads = archived_heads(settings, keys)
    probe = [tp for tp in tps if (tp.topic, tp.partition) in heads]
    found: dict[tuple[str, int], Any] = {}
    if probe:
        consumer.assign(probe)
        for tp in probe:
            consumer.seek(tp, heads[(tp.topic, tp.partition)].offset)
        idle = 0
        for _ in range(polls):
            polled = consumer.poll(timeout_ms=300)
            for tp, items in polled.items():
                key = (tp.topic, tp.partition)
                if items and key not in found:
                    found[key] = items[0]
                    consumer.pause(tp)
            idle = 0 if polled else idle + 1
            if len(found) == len(probe) or idle >= 2:
                break
    for tp in tps:
        key = (tp.topic, tp.partition)
        head = heads.get(key)
        if head is None:
            plans[key] = Plan(tp.topic, tp.partition, 0, None, "new chain")
            continue
        record = found.get(key)
        if record is None or record.offset < head.offset:
            plans[key] = Plan(tp.topic, tp.partition, head.epoch + 1, None, "new broker log")
        elif record.offset == head.offset:
            if bytes(record.value or b"") == head.payload:
                plans[key] = Plan(tp.topic, tp.partition, head.epoch, head.offset + 1)
            else:
                plans[key] = Plan(tp.topic, tp.partition, head.epoch + 1, None, "new broker log")
        else:
            plans[key] = Plan(
                tp.topic,
                tp.partition,
                head.epoch,
                head.offset + 1,
                f"offsets {head.offset + 1}..{record.offset - 1} are no longer on the broker",
            )
    return plans


def stop_on_unknown_schema(park: ErrorPolicy) -> ErrorPolicy:
    """The archiver's error policy: a record of an unknown schema stops the run (``FatalError``
    naming where it is); any other record that does not decode is parked by ``park``."""

    def policy(exc: Exception, record: Any, logger: logging.Logger) -> bool:
        if not isinstance(exc, UnknownSchemaError):
            return park(exc, record, logger)
        subject = subject_for(record.topic)
        if exc.schema_id is None:
            what = f"is not framed and this bus's registry holds no schema for {subject}"
        else:
            what = (
                f"has schema id {exc.schema_id}, which this bus's registry does not hold for "
                f"{subject}"
            )
        raise FatalError(
            f"archive: {record.topic}[{record.partition}]@{record.offset} {what}: the archive "
            "could not decode it, so nothing from that offset on was archived. Register "
            "the schema "
            f"('lgsp schema register {subject} FILE.avsc') or, if the topic belongs to another "
            "bus, leave it out ('lgsp archive run --topics PATTERN'), then rerun"
        )

    return policy


class Archiver:
    """Appends decoded messages to the archive; one instance per run or per process."""

    def __init__(self, settings: Context | Settings, *, registry: Registry | None = None) -> None:
        ctx = Context.of(settings)
        self.settings = ctx.settings
        self.registry = registry or ctx.registry
        self.plans: dict[tuple[str, int], Plan] = {}
        self._key: SigningKey | None = None
        self.key_generated: str | None = None

    # ---- signing -----------------------------------------------------------------------
    def signing_key(self) -> SigningKey:
        if self._key is None:
            key = load_signing_key(self.settings, create=True)
            assert key is not None
            if key.generated:
                self.key_generated = str(key.path)
            self._key = key
        return self._key

    def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Sign the archive's state now (a second stop signal waits until it is written)."""
        with uninterrupted():
            return create_checkpoint(self.settings, self.signing_key(), force=force)

    # ---- appending ---------------------------------------------------------------------
    def append(self, messages: Iterable[Message]) -> tuple[int, int]:
        """Append in order per topic-partition; (appended, skipped as already archived)."""
        groups: dict[tuple[str, int], list[Message]] = {}
        for message in messages:
            groups.setdefault((message.topic, message.partition), []).append(message)
        if not groups:
            return 0, 0
        engine = open_engine(self.settings)

        def append() -> tuple[int, int]:
            with engine.begin() as conn:
                return self._append_groups(conn, groups)

        try:
            return retry_conflicts(append, APPEND_ATTEMPTS)  # a concurrent archiver went first
        except (IntegrityError, OperationalError) as exc:
            failed = type(exc).__name__
        # Raised outside the handler, without the cause: the database error's text holds the
        # statement's parameters (payloads, event keys such as citizen IDs).
        chains = ", ".join(f"{t}[{p}]" for t, p in sorted(groups))
        if failed == "IntegrityError":
            raise FatalError(
                f"archive: appending to {chains} failed {APPEND_ATTEMPTS} times on a uniqueness "
                "conflict (IntegrityError): the archive rows no longer match the chain heads; "
                "run 'lgsp audit verify'"
            )
        raise DatabaseUnavailableError(
            f"archive: appending to {chains} failed {APPEND_ATTEMPTS} times: the control "
            f"database did not take the write ({failed})"
        )

    def _append_groups(
        self, conn: Connection, groups: dict[tuple[str, int], list[Message]]
    ) -> tuple[int, int]:
        appended = skipped = 0
        now_ms = int(time.time() * 1000)
        for (topic, partition), items in groups.items():
            query = select(chain_t).where(
                chain_t.c.topic == topic, chain_t.c.kafka_partition == partition
            )
            if conn.dialect.name != "sqlite":
                query = query.with_for_update()
            chain = conn.execute(query).first()
            plan = self.plans.get((topic, partition))
            parsed = parse_dataset_topic(topic)
            if chain is None:
                epoch = plan.epoch if plan else 0
                seq, head_offset, prev = 0, -1, genesis(topic, partition)
            else:
                epoch = int(chain.epoch)
                seq, head_offset, prev = (
                    int(chain.head_seq),
                    int(chain.head_offset),
                    bytes(chain.head_hash),
                )
                if plan is not None and plan.epoch > epoch:
                    epoch, head_offset = plan.epoch, -1
            rows = []
            for message in items:
                if message.offset <= head_offset:
                    skipped += 1
                    continue
                fields = envelope_fields(message.value, f"{topic}[{partition}]@{message.offset}")
                seq += 1
                row = entry_row(
                    parsed,
                    partition,
                    seq=seq,
                    epoch=epoch,
                    offset=message.offset,
                    schema_id=message.schema_id,
                    fields=fields,
                    payload=bytes(message.raw),
                    prev=prev,
                    archived_ms=now_ms,
                )
                prev = row["entry_hash"]
                head_offset = message.offset
                rows.append(row)
            if not rows:
                continue
            conn.execute(entry_t.insert(), rows)
            write_head(
                conn,
                parsed,
                partition,
                new=chain is None,
                epoch=epoch,
                head_seq=seq,
                head_offset=head_offset,
                head_hash=prev,
                updated_ms=now_ms,
            )
            appended += len(rows)
        return appended, skipped

    # ---- runs --------------------------------------------------------------------------
    def prepare(self, topics: list[str]) -> list[str]:
        """Plan every partition and write the start offsets as the group's committed offsets."""
        notes: list[str] = []
        probe = clients.consumer(self.settings, GROUP_ID)
        try:
            tps = partitions_of(probe, topics)
            self.plans = plan_positions(self.settings, probe, tps)
            if not tps:
                return notes
            begins = probe.beginning_offsets(tps)
            offsets = {}
            for tp in tps:
                plan = self.plans[(tp.topic, tp.partition)]
                start = begins[tp] if plan.start is None else plan.start
                offsets[tp] = OffsetAndMetadata(start, "", -1)
                if plan.note and plan.note != "new chain":
                    notes.append(f"{tp.topic}[{tp.partition}]: {plan.note} (epoch {plan.epoch})")
            probe.commit(offsets)
        except KafkaError as exc:
            raise BrokerUnavailableError(
                f"cannot position the archiver ({type(exc).__name__})"
            ) from exc
        finally:
            probe.close(autocommit=False)
        return notes

    def run_once(
        self,
        pattern: str | None = None,
        *,
        sign: bool = True,
        record_idle: bool = True,
        guard: broker_guard.Periodic | None = None,
    ) -> ArchiveReport:
        """One bounded run: archive every dataset topic (matching ``pattern``) up to its end.

        The run goes to the run history (``run`` table, kind ``archive``); with
        ``record_idle=False`` only when it archived, signed or noted something. Before
        planning, the broker guard checks every topic the bus knows of: in full (exact end
        offsets, a fetch per partition), or with ``guard`` (a followed archiver's) in full
        when it is due and else lightly, on the cluster id and topic list this run reads
        anyway. The read itself judges the exact ends of the topics it archives.
        """
        listed: dict[str, list[str]] = {}

        def listing() -> tuple[str | None, set[str]]:
            cluster_id, listed["names"] = broker_topics(self.settings)
            return cluster_id, set(listed["names"])

        if guard is None:
            broker_guard.check(self.settings)
        else:
            guard(listing)  # the light check lists the topics this run reads anyway
        names = listed["names"] if "names" in listed else broker_topics(self.settings)[1]
        report = ArchiveReport(topics=list_dataset_topics(self.settings, pattern, names=names))
        started = dt.datetime.now(dt.UTC)
        if report.topics:
            report.notes = self.prepare(report.topics)
            report.new_epochs = [
                f"{p.topic}[{p.partition}]"
                for p in self.plans.values()
                if p.note == "new broker log"
            ]

            def handle(batch: list[Message]) -> None:
                added, skipped = self.append(batch)
                report.appended += added
                report.skipped += skipped

            with Consumer(self.settings, GROUP_ID, registry=self.registry) as consumer:
                consumer.on_error = stop_on_unknown_schema(consumer.dlq_policy)
                consumed = consumer.run_bounded(report.topics, handle)
            report.read = consumed.read
            report.dlq = consumed.dlq
        if sign:
            report.checkpoint = self.checkpoint()
        report.key_generated = self.key_generated
        if record_idle or report.appended or report.checkpoint or report.notes or report.dlq:
            self._record_run(report, pattern, started)
        return report

    def follow(
        self,
        pattern: str | None = None,
        *,
        interval_s: float = 2.0,
        checkpoint_every_s: float = 60.0,
        should_stop: Callable[[], bool] | None = None,
        on_report: Callable[[ArchiveReport], None] | None = None,
    ) -> ArchiveReport:
        """Bounded runs one after another until stopped (``should_stop``, or else the first
        SIGINT/SIGTERM: see ``bus.longrun``).

        A broker or database that does not answer is waited for (backing off up to 30 s);
        a signed checkpoint is written every ``checkpoint_every_s`` and when stopping. A
        second signal aborts the run in hand (its transaction rolls back; the next run skips
        what was archived) but never a checkpoint: each is written ``uninterrupted()``, and
        the last one is written on the way out, stopped or aborted, before the signal
        handlers are given back.
        """
        total = ArchiveReport()
        last_sign = time.monotonic()
        # the full guard (exact ends of every topic the bus knows of) at the start and every
        # GUARD_FULL_EVERY_S; the light one (cluster id, topics present, from the run's own
        # listing) on the runs between, whose reads judge the archived topics' ends anyway
        guard = broker_guard.Periodic(self.settings, None, GUARD_FULL_EVERY_S, now=True)

        def one_run() -> bool:
            nonlocal last_sign
            due = time.monotonic() - last_sign >= checkpoint_every_s
            report = self.run_once(pattern, sign=due, record_idle=False, guard=guard)
            if due:
                last_sign = time.monotonic()
            total.topics = report.topics
            total.read += report.read
            total.appended += report.appended
            total.skipped += report.skipped
            total.dlq += report.dlq
            total.notes += report.notes
            total.checkpoint = report.checkpoint or total.checkpoint
            if on_report is not None:
                on_report(report)
            return False  # every run reads to the end: the next waits interval_s

        with stop_signals() if should_stop is None else nullcontext(should_stop) as stop:
            try:
                policy = Follow(should_stop=stop, poll_s=interval_s)
                longrun.follow(one_run, policy, retry=(RetriableError,), what="archive run")
            finally:
                total.checkpoint = self.checkpoint() or total.checkpoint
                total.key_generated = self.key_generated
        return total

    def _record_run(self, report: ArchiveReport, pattern: str | None, started: dt.datetime) -> None:
        record_run(
            self.settings,
            kind="archive",
            name=pattern or "*",
            started_at=started,
            status="ok",
            rows_in=report.read,
            rows_out=report.appended,
            dlq=report.dlq,
            detail={
                "topics": len(report.topics),
                "skipped": report.skipped,
                "checkpoint": report.checkpoint.n if report.checkpoint else None,
                "notes": report.notes,
            },
        )
