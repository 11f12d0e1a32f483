"""One sync run of a registered connector: source -> topics, or topics -> sink.

Source run, per table: discover, derive the record schema and register it (an incompatible
change stops that table, the others go on), read from the committed position, publish each
batch and wait for the broker's acknowledgement, and only then commit the position. A crash
between the two replays at most that one batch, which the sinks' versioned upserts absorb. A
table whose dataset is in the catalogue publishes the catalogue's schema; its rows that do not
fit it are parked in ``<topic>.dlq`` (stage ``source``) before the position moves past them.

Sink run, per table: read the table's topic with the connector's consumer group (bounded to
the end seen at start), write each batch (idempotent), and commit the offsets after the
write; rows the database refuses for their values go to ``<topic>.dlq``. A refusal that is
not about a row (permission, a dropped column), or a batch whose every row is refused, stops
the table with no offset moved, so a broken target never empties a topic into the DLQ.

Each run is recorded in the core ``run`` table (kind ``sync``) with its figures. One run of a
connector at a time: ``run`` holds the connector's lock (``connector_lock``) throughout and a
second run meanwhile raises ``ConnectorBusyError`` (retriable). The same function serves
``lgsp connector run`` and the Airflow tasks.
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bus import broker_guard
from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.connectors_db.store import lock_owner
from bus.consume import Consumer, Message
from bus.db import session_scope
from bus.db.models import Run
from bus.dlq import dlq_topic, safe_message
from bus.envelope import envelope_schema, record_schema_of
from bus.errors import ConfigurationError, FatalError, LgspError, NotFoundError
from bus.kafka.topics import ensure_topics
from bus.publish import Publisher
from bus.registry import Registry, subject_for
from bus.units import load_hierarchy
from connectors import plugins as connector_types
from connectors.base import Batch, Connector, Invalid, WriteReport
from connectors.contract import attach_catalogue
from connectors.errors import ConnectorBusyError, TableStoppedError
from connectors.registration import quiet_avro

log = logging.getLogger(__name__)

RUN_KIND = "sync"
# a run's lock lives this long unless the run extends it (after each batch, every third of it)
LOCK_TTL_S = 15 * 60.0


@dataclass
class TableReport:
    """Figures of one table in one run."""

    table: str
    topic: str
    rows: int = 0
    batches: int = 0
    dlq: int = 0
    deleted: int = 0
    status: str = "ok"
    error: str | None = None
    schema_version: int | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class SyncReport:
    """Figures of one run (summed over its tables)."""

    connector: str
    role: str
    run_id: int
    tables: list[TableReport]
    seconds: float = 0.0
    status: str = "ok"

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def batches(self) -> int:
        return sum(t.batches for t in self.tables)

    @property
    def dlq(self) -> int:
        return sum(t.dlq for t in self.tables)

    def table(self, name: str, topic: str) -> TableReport:
        """The figures of table ``name`` (added on first use; a followed source's passes
        add up in them)."""
        for tr in self.tables:
            if tr.table == name:
                return tr
        tr = TableReport(name, topic)
        self.tables.append(tr)
        return tr

    @property
    def stopped(self) -> list[TableReport]:
        return [t for t in self.tables if t.status != "ok"]

    def raise_if_stopped(self) -> None:
        """``FatalError`` naming every stopped table and why (a run that went on around them
        still counts as failed for whoever asked for it)."""
        if self.stopped:
            reasons = "; ".join(f"{t.table}: {t.error}" for t in self.stopped)
            raise FatalError(
                f"connector {self.connector}: {len(self.stopped)} table(s) stopped: {reasons}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "role": self.role,
            "run_id": self.run_id,
            "status": self.status,
            "rows": self.rows,
            "batches": self.batches,
            "dlq": self.dlq,
            "seconds": round(self.seconds, 3),
            "tables": [asdict(t) for t in self.tables],
        }


Progress = Callable[[TableReport], None]


@dataclass
class Follow:
    """Keep a run going (``lgsp connector run --follow``): a sink consumes continuously, a
    source reads again every ``poll_s`` once it has caught up. The run ends when
    ``should_stop()`` says so (a signal, a row count) or after ``idle_exit_s`` seconds without
    a row; what was written is committed as it goes, as in a bounded run."""

    should_stop: Callable[[], bool] = lambda: False
    idle_exit_s: float | None = None
    poll_s: float = 5.0
    _last_row: float = field(default_factory=time.monotonic)

    def saw_rows(self) -> None:
        self._last_row = time.monotonic()

    def done(self) -> bool:
        if self.should_stop():
            return True
        idle = time.monotonic() - self._last_row
        return self.idle_exit_s is not None and idle > self.idle_exit_s


# errors that stop one table while the others go on; anything else stops the run
TABLE_ERRORS = (ConfigurationError, FatalError)


def connector_for(settings: Settings, name: str) -> Connector:
    """The connector object of a registered connector (its stored file re-validated)."""
    stored = ConnectorStore(settings).get(name)
    connector = connector_types.build(
        stored.config,
        hierarchy=load_hierarchy(settings.hierarchy),
        batch_size=settings.batch_size,
    )
    return attach_catalogue(connector, settings)


class _HeldLock:
    """This run's hold on the connector's run lock, extended as batches go by."""

    def __init__(self, store: ConnectorStore, name: str, ttl_s: float) -> None:
        self.store = store
        self.name = name
        self.ttl_s = ttl_s
        self.owner = lock_owner()
        taken = store.acquire_lock(name, self.owner, ttl_s)
        if taken.took_over is not None:
            log.warning(
                "%s: took over the run lock of a crashed run (%s, since %s UTC): its process "
                "is gone",
                name,
                taken.took_over.owner,
                f"{taken.took_over.acquired_at:%Y-%m-%d %H:%M:%S}",
            )
        self._refreshed = time.monotonic()

    def refresh(self) -> None:
        """Extend the lock (at most every third of its time to live). A run whose lock is gone
        (taken over once expired, or removed by ``lgsp connector unlock``) stops before it
        moves another position: another run may have moved it further meanwhile."""
        if time.monotonic() - self._refreshed < self.ttl_s / 3:
            return
        if not self.store.refresh_lock(self.name, self.owner, self.ttl_s):
            raise ConnectorBusyError(
                f"connector {self.name!r}: this run lost its lock (it expired after a batch that "
                f"took longer than {self.ttl_s:g} s and was taken over, or it was unlocked); "
                "this run stops"
            )
        self._refreshed = time.monotonic()

    def release(self) -> None:
        try:
            self.store.release_lock(self.name, self.owner)
        except LgspError as exc:  # the run's own outcome matters more; the lock expires
            log.warning("%s: cannot release the run lock: %s", self.name, safe_message(exc))


def run(
    settings: Settings,
    name: str,
    *,
    tables: list[str] | None = None,
    progress: Progress | None = None,
    lock_ttl_s: float = LOCK_TTL_S,
    follow: Follow | None = None,
) -> SyncReport:
    """One sync run of connector ``name`` (all its tables, or ``tables``); with ``follow``, a
    run that goes on until ``follow`` ends it (see ``Follow``).

    The connector's run lock is taken first: while another run of it holds the lock (the
    connector's own DAG and a pipeline DAG may schedule it at once), this raises
    ``ConnectorBusyError``, a ``RetriableError``, so Airflow tries again later. The lock is
    extended after every batch and released at the end; a crashed run's lock expires after
    ``lock_ttl_s`` seconds (or ``lgsp connector unlock``).
    """
    store = ConnectorStore(settings)
    stored = store.get(name)
    lock = _HeldLock(store, name, lock_ttl_s)
    try:
        with _fewer_gc_passes():
            return _run_locked(settings, store, stored.role, name, tables, lock, progress, follow)
    finally:
        lock.release()


@contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """A run allocates a few short-lived dicts per row and almost never a reference cycle:
    the cycle collector's default (a pass every 700 allocations, walking every live object of
    the process in its older generations) costs about a tenth of a run's CPU. During the run
    the objects alive at its start are frozen out of collection and passes are rarer; memory
    still does not grow with the table (reference counting frees rows as they go)."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _run_locked(
    settings: Settings,
    store: ConnectorStore,
    role: str,
    name: str,
    tables: list[str] | None,
    lock: _HeldLock,
    progress: Progress | None,
    follow: Follow | None = None,
) -> SyncReport:
    def step(tr: TableReport) -> None:  # a sink batch: before its offsets are committed
        lock.refresh()
        if progress is not None:
            progress(tr)

    if follow is not None:  # an idle follow keeps its lock too (and stops if it lost it)
        asked_to_stop = follow.should_stop

        def should_stop() -> bool:
            lock.refresh()
            return asked_to_stop()

        follow = replace(follow, should_stop=should_stop)
    started = time.monotonic()
    run_id = _start_run(settings, name)
    report = SyncReport(name, role, run_id, [])
    try:
        connector = connector_for(settings, name)
        with connector, quiet_avro():
            wanted = [t.table for t in connector.config.tables]
            if tables:
                unknown = [t for t in tables if t not in wanted]
                if unknown:
                    raise NotFoundError(
                        f"--table: {unknown[0]!r} is not a table of connector {name!r}; "
                        f"its tables: {', '.join(wanted)}"
                    )
                wanted = [t for t in wanted if t in tables]
            connector.check()
            topics = connector.config.topics(load_hierarchy(settings.hierarchy))
            broker_guard.check(settings, [topics[t] for t in wanted])
            if role == "source" and follow is None:
                _run_source(settings, store, connector, wanted, report, progress, lock.refresh)
            elif role == "source":
                _follow_source(settings, store, connector, wanted, report, progress, lock, follow)
            else:
                _run_sink(settings, store, connector, wanted, report, step, follow)
    except BaseException as exc:
        report.seconds = time.monotonic() - started
        report.status = "failed"
        _finish_run(settings, report, error=_describe(exc))
        raise
    report.seconds = time.monotonic() - started
    report.status = "partial" if report.stopped else "ok"
    _finish_run(settings, report)
    return report


def _describe(exc: BaseException) -> str:
    return safe_message(exc) if isinstance(exc, Exception) else type(exc).__name__


# ---- source ---------------------------------------------------------------------------------


def _run_source(
    settings: Settings,
    store: ConnectorStore,
    connector: Connector,
    tables: list[str],
    report: SyncReport,
    progress: Progress | None,
    before_commit: Callable[[], None],
) -> None:
    with Publisher(settings, Registry(settings)) as publisher:
        publisher.guarded.update(
            connector.config.topics(load_hierarchy(settings.hierarchy)).values()
        )
        _source_pass(settings, store, connector, tables, report, progress, before_commit, publisher)


def _source_pass(
    settings: Settings,
    store: ConnectorStore,
    connector: Connector,
    tables: list[str],
    report: SyncReport,
    progress: Progress | None,
    before_commit: Callable[[], None],
    publisher: Publisher,
) -> None:
    """Each table read from its committed position, published and acknowledged batch by
    batch, the position moving after each."""
    topics = connector.config.topics(load_hierarchy(settings.hierarchy))
    registry = publisher.registry
    positions = store.positions(connector.name)
    for table in tables:
        cfg = connector.table_config(table)
        tr = report.table(table, topics[table])
        try:
            stream = connector.discover_stream(table)
            tr.warnings = list(stream.warnings)
            envelope = envelope_schema(stream.record_schema, settings.schemas_dir)
            try:
                tr.schema_version = registry.register(subject_for(tr.topic), envelope).version
            except ConfigurationError as exc:
                raise TableStoppedError(table, str(exc)) from exc
            held = positions.get(table)
            position = held.position if held is not None else None
            for batch in connector.read_stream(stream, position):
                ends: dict[int, int] = {}
                if batch.events:
                    sent = publisher.publish(
                        tr.topic, batch.events, on_invalid="dlq", dataset=cfg.dataset
                    )
                    ends = sent.ends
                    tr.dlq += sent.dlq
                    tr.rows += len(batch.events)
                    tr.deleted += sum(1 for e in batch.events if e["op"] == "d")
                if batch.invalid:
                    tr.dlq += _park_invalid(publisher, tr.topic, cfg.dataset, batch.invalid)
                    tr.rows += len(batch.invalid)
                # the broker acknowledged the batch: now the position may move (if this
                # run still holds the connector's lock)
                before_commit()
                store.save_position(
                    connector.name,
                    table,
                    batch.state,
                    rows=len(batch.events),
                    topic=tr.topic,
                    ends=ends,
                )
                tr.batches += 1
                if progress is not None:
                    progress(tr)
        except TABLE_ERRORS as exc:
            _stop(store, connector.name, tr, exc, progress)


def _follow_source(
    settings: Settings,
    store: ConnectorStore,
    connector: Connector,
    tables: list[str],
    report: SyncReport,
    progress: Progress | None,
    lock: _HeldLock,
    follow: Follow,
) -> None:
    """Source passes one after another, summed into ``report``; a pass that found nothing
    waits ``follow.poll_s``. A stopped table is left out of later passes, and so is a table in
    snapshot mode once read (a snapshot has no "new rows since": it would be read again and
    again)."""
    snapshots = {
        t for t in tables if getattr(connector.table_config(t), "effective_mode", "") == "snapshot"
    }
    read: set[str] = set()
    topics = connector.config.topics(load_hierarchy(settings.hierarchy))
    guard = broker_guard.Periodic(settings, [topics[t] for t in tables])
    with Publisher(settings, Registry(settings)) as publisher:  # one producer for all passes
        publisher.guarded.update(guard.topics)  # checked at the run's start, then by guard()
        while True:
            guard()
            status = {tr.table: tr.status for tr in report.tables}
            wanted = [
                t
                for t in tables
                if status.get(t, "ok") == "ok" and not (t in snapshots and t in read)
            ]
            if not wanted:
                break
            before = report.rows
            _source_pass(
                settings, store, connector, wanted, report, progress, lock.refresh, publisher
            )
            read.update(wanted)
            found = report.rows > before
            if found:
                follow.saw_rows()
            deadline = time.monotonic() + (0 if found else follow.poll_s)
            while not follow.done() and time.monotonic() < deadline:
                time.sleep(min(0.2, follow.poll_s))
            if follow.done():
                break


def _park_invalid(publisher: Publisher, topic: str, dataset: str, invalid: list[Invalid]) -> int:
    """Park the rows a source could not convert in ``<topic>.dlq`` (acknowledged on return)."""
    publisher.ensure_topic(topic, dataset)
    for item in invalid:
        log.warning("%s: a row does not fit the dataset: %s", topic, safe_message(item.error))
        publisher.park_event(topic, item.event, item.error, "source")
    publisher.flush()
    return len(invalid)


def _stop(
    store: ConnectorStore, name: str, tr: TableReport, exc: LgspError, progress: Progress | None
) -> None:
    """Mark a table stopped with the reason alone: the run's outcome says "stopped" once,
    naming the table (``SyncReport.raise_if_stopped``), so the log line is only for --debug;
    ``progress`` is told at once (a followed run may go on for hours around the table)."""
    tr.status = "stopped"
    tr.error = exc.reason[:500] if isinstance(exc, TableStoppedError) else safe_message(exc)
    log.info("%s: table %s stopped: %s", name, tr.table, tr.error)
    store.set_status(name, tr.table, "stopped", tr.error)
    if progress is not None:
        progress(tr)


# ---- sink -----------------------------------------------------------------------------------


def sink_group(name: str) -> str:
    """The consumer group of a sink connector."""
    return f"lgsp.sink.{name}"


def _run_sink(
    settings: Settings,
    store: ConnectorStore,
    connector: Connector,
    tables: list[str],
    report: SyncReport,
    progress: Progress | None,
    follow: Follow | None = None,
) -> None:
    hierarchy = load_hierarchy(settings.hierarchy)
    topics = connector.config.topics(hierarchy)
    registry = Registry(settings)
    writer = _SinkWriter(settings, connector, registry)
    positions = store.positions(connector.name)
    followed: dict[str, list[TableReport]] = {}
    try:
        for table in tables:
            tr = report.table(table, topics[table])
            try:
                subject = subject_for(tr.topic)
                if not registry.versions(subject):
                    note = "followed runs do not wait for it" if follow is not None else ""
                    tr.warnings.append(
                        f"topic {tr.topic} has no schema yet: nothing to read"
                        + (f" ({note})" if note else "")
                    )
                    continue
                latest = registry.latest(subject)
                tr.schema_version = latest.version
                held = positions.get(table)
                connector.prepare(
                    table,
                    record_schema_of(latest.schema),
                    existing=held is not None and held.position is not None,
                )
                if follow is not None:
                    followed.setdefault(tr.topic, []).append(tr)
                    continue
                with Consumer(settings, sink_group(connector.name), registry=registry) as consumer:
                    result = consumer.run_bounded(
                        [tr.topic], lambda messages, tr=tr: writer.handle(tr, messages, progress)
                    )
                tr.dlq += result.dlq
                store.save_position(connector.name, table, {"lag": result.lag}, rows=tr.rows)
            except TABLE_ERRORS as exc:
                _stop(store, connector.name, tr, exc, progress)
        if followed and follow is not None:
            _follow_sink(settings, store, connector, registry, writer, followed, progress, follow)
    finally:
        writer.close()


def _follow_sink(
    settings: Settings,
    store: ConnectorStore,
    connector: Connector,
    registry: Registry,
    writer: _SinkWriter,
    followed: dict[str, list[TableReport]],
    progress: Progress | None,
    follow: Follow,
) -> None:
    """One consumer over every table's topic, until ``follow`` ends it; offsets committed
    after each written batch, as in a bounded run. A table that stops is left behind (its
    offsets no longer move) while the others go on; the follow ends when none is left."""
    stopped: set[str] = set()

    def handle(messages: list[Message]) -> set[str]:
        by_topic: dict[str, list[Message]] = {}
        for message in messages:
            by_topic.setdefault(message.topic, []).append(message)
        for topic, items in by_topic.items():
            if topic in stopped:
                continue
            for tr in followed[topic]:
                try:
                    writer.handle(tr, items, progress)
                except TABLE_ERRORS as exc:
                    _stop(store, connector.name, tr, exc, progress)
                    stopped.add(topic)  # a topic read by two tables stops for both
                    break
        follow.saw_rows()
        return stopped

    def should_stop() -> bool:
        return follow.done() or stopped >= set(followed)

    with Consumer(settings, sink_group(connector.name), registry=registry) as consumer:
        result = consumer.run_forever(list(followed), handle, should_stop=should_stop, poll_ms=500)
    dlq = result.dlq
    for tables in followed.values():
        for tr in tables:
            tr.dlq += dlq  # undecodable records are counted per consumer, not per table
            dlq = 0
            if tr.status == "ok":
                store.save_position(connector.name, tr.table, {"follow": True}, rows=tr.rows)


def _refuse_all_rejected(table: str, result: WriteReport) -> None:
    """A sink that refused every row of a batch (two or more) has a problem that is not about
    the rows (a changed target, a wrong type): stop the table rather than park the topic.
    Values the target's database can never store (``Rejected.certain``) do not count."""
    doubtful = [r for r in result.rejected if not r.certain]
    if len(doubtful) < 2 or result.applied or result.deleted:
        return
    reasons: list[str] = []
    for rejected in doubtful:
        reason = safe_message(rejected.error)
        if reason not in reasons:
            reasons.append(reason)
    shown = "; ".join(reasons[:3]) + ("; ..." if len(reasons) > 3 else "")
    raise TableStoppedError(
        table,
        f"the sink refused every row of a batch of {len(doubtful)} ({shown}); nothing "
        "was parked and the offsets did not move: check the target against the dataset",
    )


class _SinkWriter:
    """Turns consumed messages into sink batches; rows the sink refuses go to the DLQ."""

    def __init__(self, settings: Settings, connector: Connector, registry: Registry) -> None:
        self.settings = settings
        self.connector = connector
        self.registry = registry
        self._publisher: Publisher | None = None
        self._dlq_ready: set[str] = set()

    def close(self) -> None:
        if self._publisher is not None:
            self._publisher.close()

    def handle(self, tr: TableReport, messages: list[Message], progress: Progress | None) -> None:
        groups: list[tuple[int, list[Message]]] = []
        for message in messages:
            if groups and groups[-1][0] == message.schema_id:
                groups[-1][1].append(message)
            else:
                groups.append((message.schema_id, [message]))
        parked = 0
        for schema_id, items in groups:
            schema = record_schema_of(self.registry.schema_by_id(schema_id))
            result = self.connector.write(Batch(tr.table, [m.value for m in items], schema=schema))
            _refuse_all_rejected(tr.table, result)
            tr.rows += len(items) - len(result.rejected)
            tr.deleted += result.deleted
            for rejected in result.rejected:
                self._park(items[rejected.index], rejected.error)
                parked += 1
        if parked:
            assert self._publisher is not None
            self._publisher.flush()  # parked records acknowledged before the offsets move
            tr.dlq += parked
        tr.batches += 1
        if progress is not None:
            progress(tr)

    def _park(self, message: Message, exc: Exception) -> None:
        if self._publisher is None:
            self._publisher = Publisher(self.settings, self.registry)
        if message.topic not in self._dlq_ready:
            ensure_topics(self.settings, {dlq_topic(message.topic): None})
            self._dlq_ready.add(message.topic)
        log.warning(
            "%s[%s]@%s refused by the sink: %s",
            message.topic,
            message.partition,
            message.offset,
            safe_message(exc),
        )
        self._publisher.park(message, exc, "sink")


# ---- run history ----------------------------------------------------------------------------


def _start_run(settings: Settings, name: str) -> int:
    with session_scope(settings) as s:
        row = Run(
            kind=RUN_KIND,
            name=name,
            started_at=dt.datetime.now(dt.UTC),
            status="running",
            rows_in=0,
            rows_out=0,
            dlq=0,
        )
        s.add(row)
        s.flush()
        return int(row.id)


def _finish_run(settings: Settings, report: SyncReport, error: str | None = None) -> None:
    with session_scope(settings) as s:
        row = s.get(Run, report.run_id)
        if row is None:  # pragma: no cover - the row was written at the start
            return
        row.finished_at = dt.datetime.now(dt.UTC)
        row.status = report.status
        row.rows_in = report.rows + report.dlq
        row.rows_out = report.rows
        row.dlq = report.dlq
        detail = report.to_dict()
        if error:
            detail["error"] = error
        row.detail = detail
