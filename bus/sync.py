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

import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from bus import broker_guard, longrun
from bus.config import Settings
from bus.connector_service.catalogue import attach_catalogue
from bus.consume import Consumer, Message
from bus.context import Context
from bus.dlq import dlq_topic
from bus.envelope import envelope_schema, record_schema_of
from bus.errors import ConfigurationError, FatalError, LgspError, NotFoundError, safe_message
from bus.kafka.topics import ensure_topics
from bus.longrun import Follow
from bus.publish import Publisher
from bus.registry import Registry, subject_for
from bus.registry.compat import quiet_avro
from bus.run_lock import HeldLock
from bus.runs import record_run, start_run
from bus.units import topic_name
from bus.units.rekey import rekey_record
from bus.units.timeline import EventUnits, event_units, hierarchy_of_topics, refuse_replaced_unit
from connectors import plugins as connector_types
from connectors.base import Batch, Connector, Invalid, WriteReport
from connectors.errors import TableStoppedError

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
    # events published to the topic of the unit that continues the source's (by their time)
    moved: dict[str, int] = field(default_factory=dict)


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


# errors that stop one table while the others go on; anything else stops the run
TABLE_ERRORS = (ConfigurationError, FatalError)
# a sink's bounded read that gives up short leaves the table 'behind' (the run partial)
SHORT_SINK_READ = "the table is reported behind, the run partial"


def connector_for(settings: Context | Settings, name: str, *, reading: bool = False) -> Connector:
    """The connector object of a registered connector (its stored file re-validated).

    A source of a unit that a recorded cut-over ended is refused, naming what replaced it.
    A sink, or a source built only to read its tables (``reading``: a reconciliation through
    a reform's mapping), runs in its own era: it is built in the hierarchy its stored topics
    belong to (a district's sink still drains the district topic of the old hierarchy)."""
    ctx = Context.of(settings)
    stored = ctx.connectors.get(name)
    hierarchy = ctx.hierarchy
    if reading or stored.role != "source":
        hierarchy = hierarchy_of_topics(ctx.hierarchy.name, stored.topics or {})
    else:
        refuse_replaced_unit(ctx.settings, stored.unit, stored.topics)
    connector = connector_types.build(
        stored.config, hierarchy=hierarchy, batch_size=ctx.settings.batch_size
    )
    return attach_catalogue(connector, ctx.settings)


def run(
    settings: Context | Settings,
    name: str,
    *,
    tables: list[str] | None = None,
    progress: Progress | None = None,
    lock_ttl_s: float = LOCK_TTL_S,
    follow: Follow | None = None,
) -> SyncReport:
    """One sync run of connector ``name`` (all its tables, or ``tables``); with ``follow``, a
    run that goes on until ``follow`` ends it (see ``bus.longrun.Follow``).

    The connector's run lock is taken first: while another run of it holds the lock (the
    connector's own DAG and a pipeline DAG may schedule it at once), this raises
    ``ConnectorBusyError``, a ``RetriableError``, so Airflow tries again later. The lock is
    extended after every batch and released at the end; a crashed run's lock expires after
    ``lock_ttl_s`` seconds (or ``lgsp connector unlock``).
    """
    ctx = Context.of(settings)
    stored = ctx.connectors.get(name)
    lock = HeldLock(ctx.connectors, name, lock_ttl_s)
    try:
        with _fewer_gc_passes():
            return SyncRun(ctx, name, stored.role, lock, progress, follow).execute(tables)
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


def _describe(exc: BaseException) -> str:
    return safe_message(exc) if isinstance(exc, Exception) else type(exc).__name__


class SyncRun:
    """The state of one run of one connector, held while it goes: the process context, the
    connector (open during ``execute``), its topics, the report, the run lock, who is told of
    progress and, for a followed run, the ``Follow`` that ends it."""

    connector: Connector
    topics: dict[str, str]
    units: EventUnits | None = None  # a source's: the unit each event is published for

    def __init__(
        self,
        ctx: Context,
        name: str,
        role: str,
        lock: HeldLock,
        progress: Progress | None = None,
        follow: Follow | None = None,
    ) -> None:
        self.ctx = ctx
        self.store = ctx.connectors
        self.name = name
        self.lock = lock
        self.progress = progress
        if follow is not None:  # an idle follow keeps its lock too (and stops if it lost it)
            asked_to_stop = follow.should_stop

            def should_stop() -> bool:
                lock.refresh()
                return asked_to_stop()

            follow = replace(follow, should_stop=should_stop)
        self.follow = follow
        self.report = SyncReport(name, role, 0, [])

    def execute(self, tables: list[str] | None) -> SyncReport:
        """The run, recorded in the ``run`` table whatever its outcome."""
        report, settings = self.report, self.ctx.settings
        started = time.monotonic()
        report.run_id = start_run(settings, kind=RUN_KIND, name=self.name)
        try:
            self.connector = connector_for(self.ctx, self.name)
            with self.connector, quiet_avro():
                wanted = self._wanted(tables)
                self.connector.check()
                era = hierarchy_of_topics(  # a sink of an ended unit drains its own era
                    self.ctx.hierarchy.name, self.ctx.connectors.get(self.name).topics or {}
                )
                self.topics = self.connector.config.topics(era)
                if report.role == "source":
                    broker_guard.check(settings, [self.topics[t] for t in wanted])
                    self.units = event_units(settings, self.connector.config.unit, era)
                if report.role == "source" and self.follow is None:
                    self._run_source(wanted)
                elif report.role == "source":
                    self._follow_source(wanted, self.follow)
                else:  # the consumer judges the broker with the ends it reads up to
                    self._run_sink(wanted)
        except BaseException as exc:
            report.seconds = time.monotonic() - started
            report.status = "failed"
            self._record(error=_describe(exc))
            raise
        report.seconds = time.monotonic() - started
        report.status = "partial" if report.stopped else "ok"
        self._record()
        return report

    def _wanted(self, tables: list[str] | None) -> list[str]:
        wanted = [t.table for t in self.connector.config.tables]
        if not tables:
            return wanted
        unknown = [t for t in tables if t not in wanted]
        if unknown:
            raise NotFoundError(
                f"--table: {unknown[0]!r} is not a table of connector {self.name!r}; "
                f"its tables: {', '.join(wanted)}"
            )
        return [t for t in wanted if t in tables]

    def _record(self, error: str | None = None) -> None:
        report = self.report
        detail = report.to_dict()
        if error:
            detail["error"] = error
        record_run(
            self.ctx.settings,
            kind=RUN_KIND,
            name=self.name,
            status=report.status,
            rows_in=report.rows + report.dlq,
            rows_out=report.rows,
            dlq=report.dlq,
            detail=detail,
            run_id=report.run_id,
        )

    def _told(self, tr: TableReport) -> None:
        if self.progress is not None:
            self.progress(tr)

    def _sink_step(self, tr: TableReport) -> None:
        """A sink batch written: before its offsets are committed."""
        self.lock.refresh()
        self._told(tr)

    def _stop(self, tr: TableReport, exc: LgspError, told: Progress) -> None:
        """Mark a table stopped with the reason alone: the run's outcome says "stopped" once,
        naming the table (``SyncReport.raise_if_stopped``), so the log line is only for
        --debug; ``told`` at once (a followed run may go on for hours around the table)."""
        tr.status = "stopped"
        tr.error = exc.reason[:500] if isinstance(exc, TableStoppedError) else safe_message(exc)
        log.info("%s: table %s stopped: %s", self.name, tr.table, tr.error)
        self.store.set_status(self.name, tr.table, "stopped", tr.error)
        told(tr)

    # ---- source -----------------------------------------------------------------------------

    def _publisher(self, topics: Iterable[str]) -> Publisher:
        publisher = Publisher(
            self.ctx.settings, self.ctx.registry, origin=broker_guard.source_origin(self.name)
        )
        publisher.guarded.update(topics)  # checked at the run's start (then by a Periodic)
        return publisher

    def _run_source(self, tables: list[str]) -> None:
        with self._publisher(self.topics.values()) as publisher:
            self._source_pass(tables, publisher)

    def _source_pass(self, tables: list[str], publisher: Publisher) -> None:
        """Each table read from its committed position, published and acknowledged batch by
        batch, the position moving after each; the ``mode: log`` tables read together from
        the connector's log (one slot per connector)."""
        connector, store = self.connector, self.store
        positions = store.positions(self.name)
        logged = [t for t in tables if _mode(connector, t) == "log"]
        for table in tables:
            if table in logged:
                continue
            cfg = connector.table_config(table)
            tr = self.report.table(table, self.topics[table])
            try:
                stream = self._source_stream(table, tr, publisher)
                held = positions.get(table)
                position = held.position if held is not None else None
                for batch in connector.read_stream(stream, position):
                    self._publish_batch(tr, cfg.dataset, batch, publisher)
            except TABLE_ERRORS as exc:
                self._stop(tr, exc, self._told)
        if logged:
            self._log_pass(logged, publisher)

    def _log_pass(self, tables: list[str], publisher: Publisher) -> None:
        """The log tables' changes in commit order, each batch to its table's topic. One
        slot serves them all: a table that cannot go on stops them all, at that position."""
        connector = self.connector
        positions = self.store.positions(self.name)
        reports = {t: self.report.table(t, self.topics[t]) for t in tables}
        try:
            streams = [self._source_stream(t, reports[t], publisher) for t in tables]
            self._guard_log(tables, reports)
            held = {t: (p.position if (p := positions.get(t)) else None) for t in tables}
            for batch in connector.read_log(streams, held):  # type: ignore[attr-defined]
                cfg = connector.table_config(batch.stream)
                self._publish_batch(reports[batch.stream], cfg.dataset, batch, publisher)
        except TABLE_ERRORS as exc:
            for tr in reports.values():
                self._stop(tr, exc, self._told)

    def _guard_log(self, tables: list[str], reports: dict[str, TableReport]) -> None:
        """The connector file's ``log:`` limits, before each read of the log
        (``bus.connector_service.log_guard``): warnings go with the tables; past the hard
        limit the slot is gone and the tables stop."""
        if getattr(self.connector.config, "log", None) is None:
            return
        from bus.connector_service.log_guard import guard

        guarded = guard(self.store, self.connector)
        for tr in reports.values():
            tr.warnings.extend(guarded.warnings)
        if guarded.stopped is not None:
            raise TableStoppedError(", ".join(tables), guarded.stopped)

    def _source_stream(self, table: str, tr: TableReport, publisher: Publisher) -> Any:
        """The table's stream, its envelope schema registered (an incompatible change stops
        the table)."""
        stream = self.connector.discover_stream(table)
        tr.warnings = list(stream.warnings)
        envelope = envelope_schema(stream.record_schema, self.ctx.settings.schemas_dir)
        try:
            tr.schema_version = publisher.registry.register(subject_for(tr.topic), envelope).version
        except ConfigurationError as exc:
            raise TableStoppedError(table, str(exc)) from exc
        return stream

    def _publish_batch(
        self, tr: TableReport, dataset: str, batch: Batch, publisher: Publisher
    ) -> None:
        """Publish a batch, wait for the broker's acknowledgement, then move the position."""
        ends: dict[int, int] = {}
        if batch.events:
            for topic, events in self._by_unit(tr, dataset, batch.events, publisher).items():
                sent = publisher.publish(topic, events, on_invalid="dlq", dataset=dataset)
                if topic == tr.topic:
                    ends = sent.ends
                else:
                    tr.moved[topic] = tr.moved.get(topic, 0) + len(events)
                tr.dlq += sent.dlq
            tr.rows += len(batch.events)
            tr.deleted += sum(1 for e in batch.events if e["op"] == "d")
        if batch.invalid:
            tr.dlq += _park_invalid(publisher, tr.topic, dataset, batch.invalid)
            tr.rows += len(batch.invalid)
        # the broker acknowledged the batch: now the position may move (if this run still
        # holds the connector's lock)
        self.lock.refresh()
        self.store.save_position(
            self.name,
            tr.table,
            batch.state,
            rows=len(batch.events),
            topic=tr.topic,
            ends=ends,  # the table's own topic (a broker restore rewinds by it)
        )
        tr.batches += 1
        self._told(tr)

    def _by_unit(
        self, tr: TableReport, dataset: str, events: list[dict[str, Any]], publisher: Publisher
    ) -> dict[str, list[dict[str, Any]]]:
        """The batch's events by topic: the table's own, and for an event dated on or after a
        change that ended the source's unit, the topic of the unit that continues it
        (:class:`bus.units.timeline.EventUnits`), the record's unit fields re-keyed as the
        re-keying route does, the ``source`` block (old unit, position) and event id kept.
        The first event for a topic registers the table's schema on it."""
        units = self.units
        if units is None or units.since_ms is None:
            return {tr.topic: events}
        out: dict[str, list[dict[str, Any]]] = {}
        for event in events:
            to = units.of(event)
            if to is None:
                out.setdefault(tr.topic, []).append(event)
                continue
            topic = topic_name(units.timeline.hierarchy(to.hierarchy), to.unit.code, dataset)
            if topic not in out and topic not in tr.moved:
                schema = publisher.registry.latest(subject_for(tr.topic)).schema
                try:
                    publisher.registry.register(subject_for(topic), schema)
                except ConfigurationError as exc:
                    raise TableStoppedError(tr.table, f"{topic}: {exc}") from exc
            old, new = units.code, to.unit.code
            out.setdefault(topic, []).append(
                {
                    **event,
                    "before": rekey_record(event["before"], old, new) if event["before"] else None,
                    "after": rekey_record(event["after"], old, new) if event["after"] else None,
                }
            )
        return out

    def _follow_source(self, tables: list[str], follow: Follow) -> None:
        """Source passes one after another, summed into the report; a pass that found nothing
        waits ``follow.poll_s``. A stopped table is left out of later passes, and so is a
        table in snapshot mode once read (a snapshot has no "new rows since": it would be
        read again and again)."""
        snapshots = {
            t
            for t in tables
            if getattr(self.connector.table_config(t), "effective_mode", "") == "snapshot"
        }
        read: set[str] = set()
        guard = broker_guard.Periodic(self.ctx.settings, [self.topics[t] for t in tables])
        report = self.report
        with self._publisher(guard.topics) as publisher:  # one producer for all passes

            def one_pass() -> bool | None:
                guard()
                status = {tr.table: tr.status for tr in report.tables}
                wanted = [
                    t
                    for t in tables
                    if status.get(t, "ok") == "ok" and not (t in snapshots and t in read)
                ]
                if not wanted:
                    return None
                before = report.rows
                self._source_pass(wanted, publisher)
                read.update(wanted)
                return report.rows > before

            longrun.follow(one_pass, follow)

    # ---- sink -------------------------------------------------------------------------------

    def _run_sink(self, tables: list[str]) -> None:
        registry, store, follow = self.ctx.registry, self.store, self.follow
        writer = _SinkWriter(self.ctx.settings, self.connector, registry)
        positions = store.positions(self.name)
        followed: dict[str, list[TableReport]] = {}
        try:
            for table in tables:
                tr = self.report.table(table, self.topics[table])
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
                    self.connector.prepare(
                        table,
                        record_schema_of(latest.schema),
                        existing=held is not None and held.position is not None,
                    )
                    if follow is not None:
                        followed.setdefault(tr.topic, []).append(tr)
                        continue
                    with self._consumer() as consumer:
                        result = consumer.run_bounded(
                            [tr.topic],
                            lambda messages, tr=tr: writer.handle(tr, messages, self._sink_step),
                            short_ok=SHORT_SINK_READ,
                        )
                    tr.dlq += result.dlq
                    store.save_position(self.name, table, {"lag": result.lag}, rows=tr.rows)
                    if result.short:
                        tr.status = "behind"
                        tr.error = (
                            f"{sum(result.short.values())} record(s) of "
                            f"{', '.join(sorted(result.short))} below the end seen at the start "
                            "were not read (no answer from the broker for them); the next run "
                            "reads them"
                        )
                        store.set_status(self.name, table, tr.status, tr.error)  # as shown
                except broker_guard.BrokerDataLostError:
                    raise  # the broker, not this table: the run stops
                except TABLE_ERRORS as exc:
                    self._stop(tr, exc, self._sink_step)
            if followed and follow is not None:
                self._follow_sink(writer, followed, follow)
        finally:
            writer.close()

    def _consumer(self) -> Consumer:
        return Consumer(self.ctx.settings, sink_group(self.name), registry=self.ctx.registry)

    def _follow_sink(
        self, writer: _SinkWriter, followed: dict[str, list[TableReport]], follow: Follow
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
                        writer.handle(tr, items, self._sink_step)
                    except TABLE_ERRORS as exc:
                        self._stop(tr, exc, self._sink_step)
                        stopped.add(topic)  # a topic read by two tables stops for both
                        break
            follow.saw_rows()
            return stopped

        def should_stop() -> bool:
            return follow.done() or stopped >= set(followed)

        with self._consumer() as consumer:
            result = consumer.run_forever(
                list(followed), handle, should_stop=should_stop, poll_ms=500
            )
        dlq = result.dlq
        for tables in followed.values():
            for tr in tables:
                tr.dlq += dlq  # undecodable records are counted per consumer, not per table
                dlq = 0
                if tr.status == "ok":
                    self.store.save_position(self.name, tr.table, {"follow": True}, rows=tr.rows)


def _mode(connector: Connector, table: str) -> str:
    return str(getattr(connector.table_config(table), "effective_mode", ""))


def _park_invalid(publisher: Publisher, topic: str, dataset: str, invalid: list[Invalid]) -> int:
    """Park the rows a source could not convert in ``<topic>.dlq`` (acknowledged on return)."""
    publisher.ensure_topic(topic, dataset)
    for item in invalid:
        log.warning("%s: a row does not fit the dataset: %s", topic, safe_message(item.error))
        publisher.park_event(topic, item.event, item.error, "source")
    publisher.flush()
    return len(invalid)


# ---- sink -----------------------------------------------------------------------------------


def sink_group(name: str) -> str:
    """The consumer group of a sink connector."""
    return f"lgsp.sink.{name}"


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
            self._publisher = Publisher(
                self.settings,
                self.registry,
                origin=broker_guard.dlq_origin(sink_group(self.connector.name)),
            )
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
