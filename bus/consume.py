"""Consuming change events: bounded batch runs and continuous runs, with error-policy hooks.

A bounded run reads every assigned partition from the group's committed offset (or from
start offsets the caller chose, with no group at all) up to the end it saw at start, hands
decoded batches to the handler, commits after each handled batch unless told not to, and
returns. It uses ``assign()``, not group rebalancing. A read that hears nothing for
``IDLE_GIVE_UP_S`` with records below that end unread gives up: it raises
``ReadEndedShortError`` after handling (and committing) what it read, unless its caller said
why a short read is acceptable (``short_ok``: then ``ConsumeReport.short`` names what was left).
The end of each partition is found exactly at start (``bus.kafka.ends.probe_ends``): the
embedded broker reports a partition's end as the base offset of its last batch, so that batch
is read forward until the broker has nothing more; Apache Kafka's answer is exact and the
probe costs one quiet poll. Records appended after the start are left for the next run.

Error policy: ``(exc, record, logger) -> bool``; True means "handled, go on". The default
parks the record in ``<topic>.dlq``; ``SkipCount`` skips and counts it (a reader that must not
write); ``raise_policy`` stops the run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kafka import TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from bus import broker_guard
from bus.config import Settings
from bus.dlq import send_dead_letter
from bus.errors import BrokerUnavailableError, ConfigurationError, DataError, safe_message
from bus.kafka import clients
from bus.kafka.ends import partitions_of, probe_ends
from bus.kafka.topics import ensure_topics
from bus.registry import Registry, subject_for
from bus.serde import AvroCodec, UnknownSchemaError
from bus.serde.framing import framed_schema_id

log = logging.getLogger(__name__)
IDLE_GIVE_UP_S = 30.0


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: dict[str, Any]
    schema_id: int
    timestamp_ms: int
    raw: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class ConsumeReport:
    read: int = 0
    dlq: int = 0
    batches: int = 0
    lag: dict[str, int] = field(default_factory=dict)  # "topic[partition]" -> records left
    # the partitions a read gave up on (no records for IDLE_GIVE_UP_S) -> records left unread
    # below the end seen at its start; empty when it reached that end (or ``max_records``)
    short: dict[str, int] = field(default_factory=dict)


class ReadEndedShortError(BrokerUnavailableError):
    """A bounded read gave up before the end it set out to reach (the broker answered no fetch
    for ``IDLE_GIVE_UP_S``); what it read was handled, and committed if the read commits.
    ``report`` is the read's report (``report.short``: what was left)."""

    def __init__(self, message: str, report: ConsumeReport) -> None:
        super().__init__(message)
        self.report = report


# A handler may return topics whose records of this batch must not be committed (a sink
# table that stopped): their offsets stay where they were, for the next run.
Handler = Callable[[list[Message]], Iterable[str] | None]
ErrorPolicy = Callable[[Exception, Any, logging.Logger], bool]


def raise_policy(exc: Exception, record: Any, logger: logging.Logger) -> bool:
    logger.error("%s[%s]@%s: %s", record.topic, record.partition, record.offset, safe_message(exc))
    return False


class SkipCount:
    """Error policy: skip and count undecodable records (position only in the log, no content)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exc: Exception, record: Any, logger: logging.Logger) -> bool:
        where = f"{record.topic}[{record.partition}]@{record.offset}"
        logger.warning("%s skipped: cannot decode (%s)", where, type(exc).__name__)
        self.count += 1
        return True


def _framed_id(value: bytes | None) -> int | None:
    try:
        return framed_schema_id(value)
    except DataError:
        return None


class Consumer:
    """Reads topics for a group id (None: commits nothing), decodes values with the registry
    (the process context's, ``Context.registry``; without one, a registry of its own)."""

    def __init__(
        self,
        settings: Settings,
        group_id: str | None,
        *,
        registry: Registry | None = None,
        on_error: ErrorPolicy | None = None,
        decode: bool = True,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.registry = registry or Registry(settings)
        self.codec = AvroCodec(self.registry)
        self.decode_values = decode
        self._consumer = clients.consumer(settings, group_id)
        self._dlq_producer: Any = None
        self._dlq_pending: list[Any] = []
        self._allowed: dict[str, set[int]] = {}
        self.on_error: ErrorPolicy = on_error or self.dlq_policy
        self._dlq_ready: set[str] = set()
        self.dlq_count = 0

    # ---- error policies ----------------------------------------------------------------
    def dlq_policy(self, exc: Exception, record: Any, logger: logging.Logger) -> bool:
        """Park the record in ``<topic>.dlq`` with headers naming origin, reason and group."""
        if self._dlq_producer is None:
            self._dlq_producer = clients.producer(self.settings)
        target = f"{record.topic}.dlq"
        if target not in self._dlq_ready:
            ensure_topics(self.settings, {target: None})
            self._dlq_ready.add(target)
        self._dlq_pending.append(
            send_dead_letter(
                self._dlq_producer,
                topic=record.topic,
                key=record.key,
                value=record.value,
                exc=exc,
                partition=record.partition,
                offset=record.offset,
                group=self.group_id,
            )
        )
        logger.warning(
            "%s[%s]@%s parked in DLQ: %s",
            record.topic,
            record.partition,
            record.offset,
            safe_message(exc),
        )
        self.dlq_count += 1
        return True

    def _flush_dlq(self) -> None:
        if self._dlq_producer is None or not self._dlq_pending:
            return
        broker_guard.acknowledge(
            self.settings,
            self._dlq_producer,
            self._dlq_pending,
            broker_guard.dlq_origin(self.group_id),
            "a dead letter",
        )
        self._dlq_pending.clear()

    # ---- plumbing ----------------------------------------------------------------------
    def close(self) -> None:
        try:
            self._flush_dlq()
        finally:
            if self._dlq_producer is not None:
                self._dlq_producer.close(timeout=5)
            self._consumer.close(autocommit=False)

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def partitions(self, topics: list[str]) -> list[TopicPartition]:
        tps = partitions_of(self._consumer, topics)
        for topic in sorted(set(topics) - {tp.topic for tp in tps}):
            log.info("topic %s does not exist yet: nothing to read", topic)
        return tps

    def _allowed_ids(self, topic: str) -> set[int]:
        ids = self._allowed.get(topic)
        if ids is None:
            ids = self.registry.subject_ids(subject_for(topic))
            self._allowed[topic] = ids
        return ids

    def _decode(self, record: Any) -> Message:
        if self.decode_values:
            allowed = self._allowed_ids(record.topic)
            if not allowed:
                raise UnknownSchemaError(
                    f"topic {record.topic} has no registered schema", _framed_id(record.value)
                )
            schema_id, value = self.codec.decode(record.value, allowed_ids=allowed)
        else:
            schema_id, value = -1, {}
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return Message(
            record.topic,
            record.partition,
            record.offset,
            key,
            value,
            schema_id,
            record.timestamp,
            record.value,
            list(record.headers or []),
        )

    @property
    def client(self) -> Any:
        """The kafka-python consumer, for probes before a run (which reassigns it)."""
        return self._consumer

    def _anchored(
        self, seen: broker_guard.Known, exact: broker_guard.TopicEnds
    ) -> dict[tuple[str, int], str]:
        """The guard's read at the anchors, with a consumer of its own: seeking this reader's
        consumer to the anchors left some of its partitions with no fetch answer afterwards
        (30 s idle, then the read stopped short; found by the log-capture kill -9 test)."""
        if not seen.anchors:
            return {}
        other = clients.consumer(self.settings, None)
        try:
            return broker_guard.anchored(other, seen, exact)
        finally:
            other.close(autocommit=False)

    def _position_at_start(
        self,
        tps: list[TopicPartition],
        from_beginning: bool,
        starts: Mapping[TopicPartition, int | None] | None = None,
    ) -> None:
        if self._consumer.assignment():  # a probe's or the guard's reads: their fetch state
            self._consumer.unsubscribe()  # (paused, buffered partitions) must not carry over
        self._consumer.assign(tps)
        for tp in tps:
            start = (starts or {}).get(tp)
            if starts is None and self.group_id and not from_beginning:
                start = self._consumer.committed(tp)
            if start is None:
                self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, start)

    def _handle(
        self, records: dict[TopicPartition, list[Any]], handler: Handler, report: ConsumeReport
    ) -> dict[TopicPartition, int]:
        batch: list[Message] = []
        next_offsets: dict[TopicPartition, int] = {}
        for tp, items in records.items():
            for record in items:
                report.read += 1
                try:
                    batch.append(self._decode(record))
                except DataError as exc:
                    if not self.on_error(exc, record, log):
                        raise
                next_offsets[tp] = record.offset + 1
        if batch:
            keep_back = handler(batch)
            if keep_back:
                held = set(keep_back)
                next_offsets = {tp: o for tp, o in next_offsets.items() if tp.topic not in held}
        self._flush_dlq()
        report.batches += 1
        return next_offsets

    def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets or self.group_id is None:
            return
        try:
            self._consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in offsets.items()})
        except KafkaError as exc:
            raise BrokerUnavailableError(f"commit failed ({type(exc).__name__})") from exc
        broker_guard.record_ends(
            self.settings,
            broker_guard.group_holder(self.group_id),
            {(tp.topic, tp.partition): o for tp, o in offsets.items()},
        )

    # ---- runs --------------------------------------------------------------------------
    def run_bounded(
        self,
        topics: list[str],
        handler: Handler,
        *,
        max_records: int | None = None,
        from_beginning: bool = False,
        starts: Mapping[TopicPartition, int | None] | None = None,
        commit: bool = True,
        poll_ms: int = 300,
        unguarded: str | None = None,
        short_ok: str | None = None,
    ) -> ConsumeReport:
        """Read up to the end seen at start (or ``max_records``), commit, return.

        Each partition starts at the group's committed offset, or at its beginning (no group,
        none committed, or ``from_beginning``); with ``starts``, at the offset chosen there
        (its beginning if None or absent). The broker guard judges the ends first, unless
        ``unguarded`` says why this read must go on where the guard would stop it (logged).
        A read that gives up short of those ends raises ``ReadEndedShortError`` (after
        committing what it handled), unless ``short_ok`` says why its caller accepts that
        (logged; ``report.short`` names what was left).
        """
        report = ConsumeReport()
        if unguarded:
            log.debug("broker guard off for %s: %s", ", ".join(topics), unguarded)
        seen = None if unguarded else broker_guard.known(self.settings, topics)  # before asking
        tps = self.partitions(topics)
        ends = probe_ends(self._consumer, tps)
        if seen is not None:
            exact = {(tp.topic, tp.partition): end for tp, end in ends.items()}
            broker_guard.judge(
                self.settings,
                seen,
                broker_guard.cluster_id_of(self._consumer),
                {tp.topic for tp in tps},
                exact,
                self._anchored(seen, exact),
            )
        if not tps:
            return report
        self._position_at_start(tps, from_beginning, starts)
        active = {tp for tp in tps if self._consumer.position(tp) < ends[tp]}
        for tp in set(tps) - active:
            self._consumer.pause(tp)
        batch_size = self.settings.batch_size
        idle_since = time.monotonic()
        gave_up: set[TopicPartition] = set()  # not a read stopped by max_records
        while active:
            limit = batch_size
            if max_records is not None:
                limit = min(batch_size, max_records - report.read)
                if limit <= 0:
                    break
            polled = self._consumer.poll(timeout_ms=poll_ms, max_records=limit)
            taken: dict[TopicPartition, list[Any]] = {}
            for tp, items in polled.items():
                keep = [r for r in items if r.offset < ends[tp]]
                if keep:
                    taken[tp] = keep
                if len(keep) < len(items):  # appended after the start: the next run's
                    self._consumer.seek(tp, ends[tp])
            if taken:
                idle_since = time.monotonic()
                offsets = self._handle(taken, handler, report)
                if commit:
                    self._commit(offsets)
            for tp in list(active):
                if self._consumer.position(tp) >= ends[tp]:
                    self._consumer.pause(tp)
                    active.discard(tp)
            if active and time.monotonic() - idle_since > IDLE_GIVE_UP_S:
                gave_up = set(active)
                break
        for tp in tps:
            position = self._consumer.position(tp)
            left = max(0, ends[tp] - position)
            report.lag[f"{tp.topic}[{tp.partition}]"] = left
            if tp in gave_up and left:
                report.short[f"{tp.topic}[{tp.partition}]"] = left
        report.dlq = self.dlq_count
        if report.short:
            self._ended_short(report, committed=commit and self.group_id is not None, ok=short_ok)
        return report

    @staticmethod
    def _ended_short(report: ConsumeReport, *, committed: bool, ok: str | None) -> None:
        """Raise ``ReadEndedShortError`` for a read that gave up short (only logged if ``ok``
        says why its caller accepts that)."""
        where = ", ".join(sorted(report.short))
        problem = (
            f"no records for {IDLE_GIVE_UP_S:.0f} s from {where}: "
            f"{sum(report.short.values())} record(s) below the end seen at the start of the "
            "read were not read"
        )
        if ok:
            log.warning("%s (%s)", problem, ok)
            return
        kept = "what it read is committed; the next run reads the rest"
        raise ReadEndedShortError(
            f"{problem}: the read stopped ({kept if committed else 'nothing committed'})", report
        )

    def tail(
        self,
        topics: list[str],
        emit: Callable[[Message], None],
        *,
        from_beginning: bool = False,
        max_records: int | None = None,
        idle_s: float | None = None,
        poll_ms: int = 500,
    ) -> int:
        """Follow ``topics`` without committing (from the end, or the beginning); return how
        many records were emitted. Undecodable records go to ``on_error`` as usual."""
        tps = self.partitions(topics)
        if not tps:
            raise ConfigurationError(f"topic {', '.join(topics)} does not exist")
        self._consumer.assign(tps)
        if from_beginning:
            self._consumer.seek_to_beginning()
        else:
            self._consumer.seek_to_end()
        emitted = 0
        last = time.monotonic()
        while max_records is None or emitted < max_records:
            limit = 500 if max_records is None else max_records - emitted
            polled = self._consumer.poll(timeout_ms=poll_ms, max_records=limit)
            if not polled:
                if idle_s is not None and time.monotonic() - last > idle_s:
                    break
                continue
            last = time.monotonic()
            for items in polled.values():
                for record in items:
                    try:
                        message = self._decode(record)
                    except DataError as exc:
                        self.on_error(exc, record, log)
                        continue
                    emit(message)
                    emitted += 1
        return emitted

    def run_forever(
        self,
        topics: list[str],
        handler: Handler,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        poll_ms: int = 1000,
        refresh_s: float = 30.0,
    ) -> ConsumeReport:
        """Read continuously until ``should_stop()``; new partitions picked up every refresh."""
        report = ConsumeReport()
        tps: list[TopicPartition] = []
        refreshed = 0.0
        broker_guard.check(self.settings, topics)
        guard = broker_guard.Periodic(self.settings, topics, refresh_s)
        while not should_stop():
            guard()
            # a topic that does not exist yet is looked for again every second
            missing = len({tp.topic for tp in tps}) < len(set(topics))
            if time.monotonic() - refreshed > (min(refresh_s, 1.0) if missing else refresh_s):
                current = self.partitions(topics)
                if set(current) != set(tps):
                    tps = current
                    self._position_at_start(tps, from_beginning=False)
                refreshed = time.monotonic()
            if not tps:
                time.sleep(poll_ms / 1000)
                continue
            polled = self._consumer.poll(timeout_ms=poll_ms, max_records=self.settings.batch_size)
            if polled:
                self._commit(self._handle(polled, handler, report))
        report.dlq = self.dlq_count
        return report
