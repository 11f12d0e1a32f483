"""Replay of a dataset from the archive (and the broker for what is not archived yet).

``replay_as_of`` rebuilds the dataset as it stood at a moment: for every key the latest event
by event time (the envelope's ``ts_ms``; ties broken by archive order) with ``ts_ms <= as_of``;
a delete removes the key. The result goes into a fresh table whose columns come from the
dataset's record schema (newest registered version; older events are read with Avro schema
resolution), plus ``_lgsp_key``, ``_lgsp_unit``, ``_lgsp_ts_ms`` and ``_lgsp_event_id``.

``replay_events`` returns the events with ``from <= ts_ms < to``, in event-time order.

Both first verify the chains they read (a failed verification stops the replay; entries not yet
covered by a signed checkpoint are accepted and reported as such in the notes, as the replay
also reads the broker's not yet archived events), read events
of every topic of the dataset (ward, district and city topics carry the same rolled-up event
under one ``event_id``, so each event counts once), and write an access-log record.

Content hash of a rebuilt table: SHA-256 over the rows sorted by key (code point order of the
canonical key JSON), each row contributing the UTF-8 of ``canonical_json([key, record]) + "\\n"``
where ``canonical_json`` sorts object keys, uses no spaces and keeps non-ASCII text, and the
record is rendered as by ``bus.envelope.to_jsonable`` (timestamps in UTC ISO 8601, decimals as
plain strings, bytes in base64, text NFC).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from kafka import TopicPartition
from kafka.errors import KafkaError
from sqlalchemy import select
from sqlalchemy.exc import (
    ArgumentError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from bus.archive.access import record_access
from bus.archive.archiver import Head, envelope_fields, list_dataset_topics, plan_positions
from bus.archive.chain import parse_dataset_topic, unit_within
from bus.archive.models import ArchiveChain, ArchiveEntry
from bus.archive.verify import VerifyReport, verify
from bus.config import Settings, mask_url
from bus.consume import end_offsets
from bus.db import open_engine
from bus.envelope import record_schema_of, to_jsonable
from bus.errors import (
    BrokerUnavailableError,
    ConfigurationError,
    DatabaseUnavailableError,
    DataError,
    FatalError,
    LgspError,
    NotFoundError,
    UnknownUnitError,
)
from bus.kafka import clients
from bus.registry import RegisteredSchema, Registry, subject_for
from bus.serde import AvroCodec
from bus.serde.jsoncodec import named_types
from bus.timeutil import as_utc, from_epoch_ms, to_epoch_ms
from bus.units.hierarchy import load_hierarchy
from bus.units.topics import validate_dataset_name

TIME_EXAMPLE = "2026-03-01T00:00:00+07:00"
META_COLUMNS = ("_lgsp_key", "_lgsp_unit", "_lgsp_ts_ms", "_lgsp_event_id")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

log = logging.getLogger(__name__)
entry_t = ArchiveEntry.__table__
chain_t = ArchiveChain.__table__


# ---- inputs ------------------------------------------------------------------------------
def normalise_unit(settings: Settings, unit: str | None) -> str | None:
    """A unit path (``79.760``); a single code is expanded with the configured hierarchy."""
    if unit is None or unit == "":
        return None
    unit = unit.strip()
    if not re.fullmatch(r"\d+(\.\d+)*", unit):
        raise ConfigurationError(
            f"--unit: expected a unit path of codes such as 79.760, got {unit!r}"
        )
    if "." not in unit:
        try:
            return load_hierarchy(settings.hierarchy).path(unit)
        except UnknownUnitError:
            return unit
    return unit


def table_name(dataset: str, name: str | None) -> tuple[str | None, str]:
    """(schema, table) of ``--table``; default ``replay_<domain>_<name>``."""
    if name is None:
        return None, "replay_" + dataset.replace(".", "_")
    parts = name.split(".")
    if len(parts) > 2 or not all(_IDENT.fullmatch(p) for p in parts):
        raise ConfigurationError(
            "--table: expected NAME or SCHEMA.NAME of letters, digits and '_' (starting with a "
            "letter or '_', at most 63 characters each)"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


# ---- selection ---------------------------------------------------------------------------
@dataclass
class Candidate:
    ts_ms: int
    order: int
    op: str
    key: str | None
    source_unit: str
    event_id: str
    schema_id: int
    payload: bytes
    origin: str


@dataclass
class ChainUsed:
    topic: str
    partition: int
    head_seq: int
    head_hash: str
    signed_seq: int
    checkpoint_n: int | None


@dataclass
class ReplayReport:
    dataset: str
    mode: str
    as_of: str | None = None
    from_ts: str | None = None
    to_ts: str | None = None
    unit: str | None = None
    topics: list[str] = field(default_factory=list)
    events_archive: int = 0
    events_broker: int = 0
    duplicates: int = 0
    outside_unit: int = 0
    undecodable: int = 0
    selected: int = 0
    keys: int = 0
    deleted_keys: int = 0
    first_event: str | None = None
    content_hash: str | None = None
    target: str | None = None
    table: str | None = None
    chains: list[ChainUsed] = field(default_factory=list)
    checkpoint: int | None = None
    checkpoint_digest: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["chains"] = [c.__dict__ for c in self.chains]
        return data


class _Selector:
    """Counts and keeps the events a replay needs; each event_id counts once."""

    def __init__(
        self,
        settings: Settings,
        report: ReplayReport,
        *,
        unit: str | None,
        as_of_ms: int | None = None,
        from_ms: int | None = None,
        to_ms: int | None = None,
    ) -> None:
        self.report = report
        self.unit = unit
        self.as_of_ms = as_of_ms
        self.from_ms = from_ms
        self.to_ms = to_ms
        self.latest: dict[str | None, Candidate] = {}
        self.events: list[Candidate] = []
        self.seen: set[str] = set()
        self.order = 0
        self.first_ms: int | None = None
        self._hierarchy: Any = None
        self._settings = settings
        self._unit_paths: dict[str, str | None] = {}

    def _source_within(self, source_unit: str) -> bool:
        assert self.unit is not None
        path = self._unit_paths.get(source_unit, "?")
        if path == "?":
            if self._hierarchy is None:
                self._hierarchy = load_hierarchy(self._settings.hierarchy)
            try:
                path = self._hierarchy.path(source_unit)
            except UnknownUnitError:
                path = None
            self._unit_paths[source_unit] = path
        return path is not None and unit_within(path, self.unit)

    def offer(self, topic_unit: str, candidate: Candidate) -> None:
        if candidate.origin == "archive":
            self.report.events_archive += 1
        else:
            self.report.events_broker += 1
        if candidate.event_id in self.seen:
            self.report.duplicates += 1
            return
        self.seen.add(candidate.event_id)
        if (
            self.unit is not None
            and not unit_within(topic_unit, self.unit)
            and not self._source_within(candidate.source_unit)
        ):
            self.report.outside_unit += 1
            return
        if self.first_ms is None or candidate.ts_ms < self.first_ms:
            self.first_ms = candidate.ts_ms
        self.order += 1
        candidate.order = self.order
        if self.as_of_ms is not None:
            if candidate.ts_ms > self.as_of_ms:
                return
            self.report.selected += 1
            best = self.latest.get(candidate.key)
            if best is None or (candidate.ts_ms, candidate.order) > (best.ts_ms, best.order):
                self.latest[candidate.key] = candidate
            return
        if self.from_ms is not None and candidate.ts_ms < self.from_ms:
            return
        if self.to_ms is not None and candidate.ts_ms >= self.to_ms:
            return
        self.report.selected += 1
        self.events.append(candidate)


def _archive_topics(settings: Settings, dataset: str) -> set[str]:
    with open_engine(settings).connect() as conn:
        found = set(conn.scalars(select(chain_t.c.topic).where(chain_t.c.dataset == dataset)))
        found |= set(
            conn.scalars(select(entry_t.c.topic).where(entry_t.c.dataset == dataset).distinct())
        )
    return found


def _unit_relevant(topic: str, unit: str | None) -> bool:
    """A topic whose unit is within ``unit`` (all its events) or above it (some of them)."""
    if unit is None:
        return True
    path = parse_dataset_topic(topic).unit_path
    return unit_within(path, unit) or unit_within(unit, path)


def _topics(
    settings: Settings, dataset: str, unit: str | None, report: ReplayReport
) -> tuple[set[str], set[str]]:
    """(topics in the archive, topics on the broker) of the dataset, filtered by unit."""
    archived = {t for t in _archive_topics(settings, dataset) if _unit_relevant(t, unit)}
    on_broker: set[str] = set()
    try:
        on_broker = {
            t
            for t in list_dataset_topics(settings)
            if parse_dataset_topic(t).dataset == dataset and _unit_relevant(t, unit)
        }
    except BrokerUnavailableError:
        report.notes.append(
            "the broker does not answer: replayed from the archive only (events published "
            "after the last archive run are not included)"
        )
    if not archived and not on_broker:
        where = f" within unit {unit}" if unit else ""
        raise NotFoundError(
            f"dataset {dataset!r}: no archive entries and no topic "
            f"lgsp.<unit path>.{dataset}{where} on the broker"
        )
    return archived, on_broker


def _read_archive(
    settings: Settings,
    topics: set[str],
    selector: _Selector,
    report: ReplayReport,
    public_keys: Any,
    heads: dict[tuple[str, int], Head],
) -> VerifyReport:
    """Verify the chains of ``topics`` and offer their entries; ``heads`` gets each chain's
    last entry as seen in this one snapshot (where the broker read continues)."""

    def visit(row: tuple[Any, ...]) -> None:
        (
            topic,
            partition,
            _seq,
            epoch,
            offset,
            _dataset,
            unit_path,
            event_id,
            op,
            ts_ms,
            key,
            unit,
            sid,
            payload,
            _hash,
        ) = row
        payload = bytes(payload)
        heads[(topic, partition)] = Head(epoch, offset, payload)
        selector.offer(
            unit_path,
            Candidate(ts_ms, 0, op, key, unit, event_id, sid, payload, "archive"),
        )

    checked = verify(
        settings, topics=topics, public_keys=public_keys, visitor=visit, allow_unsigned_tail=True
    )
    if not checked.ok:
        shown = "; ".join(str(p) for p in checked.problems[:3])
        raise FatalError(
            f"the archive of {report.dataset} failed verification ({len(checked.problems)} "
            f"problem(s), e.g. {shown}); nothing was replayed. Run 'lgsp audit verify "
            f"--dataset {report.dataset}' for the full list"
        )
    report.chains = [
        ChainUsed(c.topic, c.partition, c.head_seq, c.head_hash, c.signed_seq, c.checkpoint_n)
        for c in checked.chains
    ]
    report.checkpoint = checked.latest_checkpoint
    report.checkpoint_digest = checked.latest_digest
    for warning in checked.warnings:
        report.notes.append(warning)
    return checked


def _read_broker(
    settings: Settings,
    topics: set[str],
    selector: _Selector,
    report: ReplayReport,
    registry: Registry,
    heads: dict[tuple[str, int], Head],
) -> None:
    """Events of ``topics`` that the archive does not hold yet, read without committing."""
    if not topics:
        return
    codec = AvroCodec(registry)
    consumer = clients.consumer(settings, None)
    try:
        tps = [
            TopicPartition(t, p)
            for t in sorted(topics)
            for p in sorted(consumer.partitions_for_topic(t) or [])
        ]
        if not tps:
            return
        plans = plan_positions(settings, consumer, tps, heads=heads)
        ends = end_offsets(settings, sorted(topics))
        begins = consumer.beginning_offsets(tps)
        consumer.assign(tps)
        consumer.resume(*tps)
        active: dict[TopicPartition, int] = {}
        for tp in tps:
            plan = plans[(tp.topic, tp.partition)]
            start = begins[tp] if plan.start is None else plan.start
            end = ends.get((tp.topic, tp.partition), 0)
            if plan.note == "new broker log":
                report.notes.append(
                    f"{tp.topic}[{tp.partition}]: the broker holds a new log not archived yet "
                    "(read from the broker)"
                )
            if start < end:
                consumer.seek(tp, start)
                active[tp] = end
        allowed = {t: registry.subject_ids(subject_for(t)) for t in topics}
        idle = 0
        while active and idle < 10:
            polled = consumer.poll(timeout_ms=300, max_records=settings.batch_size)
            idle = 0 if polled else idle + 1
            for tp, records in polled.items():
                end = active.get(tp)
                if end is None:
                    continue
                unit_path = parse_dataset_topic(tp.topic).unit_path
                for record in records:
                    if record.offset >= end:
                        break
                    where = f"{tp.topic}[{tp.partition}]@{record.offset}"
                    try:
                        schema_id, value = codec.decode(record.value, allowed_ids=allowed[tp.topic])
                        fields = envelope_fields(value, where)
                    except DataError:
                        report.undecodable += 1
                        continue
                    selector.offer(
                        unit_path,
                        Candidate(
                            fields["ts_ms"],
                            0,
                            fields["op"],
                            fields["event_key"],
                            fields["source_unit"],
                            fields["event_id"],
                            schema_id,
                            bytes(record.value),
                            "broker",
                        ),
                    )
                if consumer.position(tp) >= end:
                    active.pop(tp, None)
                    consumer.pause(tp)
        if active:
            report.notes.append(
                f"the broker stopped answering before the end of {len(active)} partition(s)"
            )
    except KafkaError as exc:
        raise BrokerUnavailableError(f"cannot read the broker ({type(exc).__name__})") from exc
    finally:
        consumer.close(autocommit=False)


def _collect(
    settings: Settings,
    dataset: str,
    unit: str | None,
    report: ReplayReport,
    selector: _Selector,
    registry: Registry,
    public_keys: Any,
) -> set[str]:
    archived, on_broker = _topics(settings, dataset, unit, report)
    report.topics = sorted(archived | on_broker)
    heads: dict[tuple[str, int], Head] = {}
    _read_archive(settings, archived, selector, report, public_keys, heads)
    _read_broker(settings, on_broker, selector, report, registry, heads)
    if selector.first_ms is not None:
        report.first_event = from_epoch_ms(selector.first_ms).isoformat(timespec="milliseconds")
    return archived | on_broker


def _reader_schema(registry: Registry, topics: set[str], dataset: str) -> RegisteredSchema:
    """The newest registered envelope schema among the dataset's topics."""
    best: RegisteredSchema | None = None
    for topic in sorted(topics):
        try:
            found = registry.latest(subject_for(topic))
        except NotFoundError:
            continue
        if best is None or found.id > best.id:
            best = found
    if best is None:
        raise NotFoundError(f"dataset {dataset!r}: no schema registered for any of its topics")
    return best


# ---- the target table --------------------------------------------------------------------
@dataclass(frozen=True)
class _Column:
    name: str
    type: Any
    nullable: bool
    kind: str  # how values are adapted: plain, json, timestamp, decimal_text, uuid


def _sql_type(schema: Any, named: dict[str, Any], dialect: str) -> tuple[Any, str]:
    if isinstance(schema, str) and schema in named:
        schema = named[schema]
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        if len(branches) == 1:
            return _sql_type(branches[0], named, dialect)
        return sa.JSON(), "json"
    if isinstance(schema, dict):
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if isinstance(kind, dict | list):
            return _sql_type(kind, named, dialect)
        if logical == "decimal" and kind in ("bytes", "fixed"):
            if dialect == "sqlite":
                return sa.Text(), "decimal_text"
            return sa.Numeric(
                int(schema.get("precision", 38)), int(schema.get("scale", 0))
            ), "plain"
        if logical == "date":
            return sa.Date(), "plain"
        if logical in ("time-millis", "time-micros"):
            return sa.Time(), "plain"
        if logical in ("timestamp-millis", "timestamp-micros"):
            return sa.DateTime(timezone=True), "timestamp"
        if logical in ("local-timestamp-millis", "local-timestamp-micros"):
            return sa.DateTime(), "plain"
        if logical == "uuid":
            return sa.String(36), "uuid"
        if kind == "enum":
            return sa.String(max((len(s) for s in schema.get("symbols", [])), default=1)), "plain"
        if kind == "fixed":
            return sa.LargeBinary(), "plain"
        if kind in ("record", "array", "map"):
            return sa.JSON(), "json"
        return _sql_type(kind, named, dialect)
    primitive = {
        "boolean": sa.Boolean(),
        "int": sa.Integer(),
        "long": sa.BigInteger(),
        "float": sa.Float(),
        "double": sa.Double(),
        "bytes": sa.LargeBinary(),
        "string": sa.Text(),
    }
    if schema in primitive:
        return primitive[schema], "plain"
    raise ConfigurationError(f"record schema: type {schema!r} has no SQL column type")


def _columns(record_schema: dict[str, Any], dialect: str) -> list[_Column]:
    named: dict[str, Any] = {}
    named_types(record_schema, named)
    columns = []
    for item in record_schema.get("fields", []):
        name = str(item["name"])
        if name in META_COLUMNS:
            raise ConfigurationError(f"record field {name!r} clashes with a replay column")
        ftype = item["type"]
        nullable = isinstance(ftype, list) and "null" in ftype
        sql_type, kind = _sql_type(ftype, named, dialect)
        columns.append(_Column(name, sql_type, nullable, kind))
    return columns


def _adapt(value: Any, kind: str, dialect: str) -> Any:
    if value is None:
        return None
    if kind == "json":
        return to_jsonable(value)
    if kind == "decimal_text":
        return format(value, "f")
    if kind == "uuid":
        return str(value)
    if kind == "timestamp" and isinstance(value, dt.datetime):
        value = as_utc(value)
        if dialect != "postgresql":
            return value.replace(tzinfo=None)
        return value
    return value


def content_hash(rows: list[tuple[str | None, dict[str, Any]]]) -> str:
    """SHA-256 over ``canonical_json([key, record]) + "\\n"`` of the rows sorted by key."""
    digest = hashlib.sha256()
    for key, record in sorted(rows, key=lambda r: r[0] or ""):
        line = json.dumps(
            [key, to_jsonable(record)], sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )
        digest.update(line.encode() + b"\n")
    return digest.hexdigest()


def _target_engine(url: str) -> sa.Engine:
    try:
        engine = sa.create_engine(url, hide_parameters=True)  # errors never quote row values
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as exc:
        raise ConfigurationError(
            f"--into: not a usable SQLAlchemy URL ({type(exc).__name__}); expected e.g. "
            "sqlite:///audit.db or postgresql+psycopg://user@host/db"
        ) from exc
    if engine.dialect.name == "sqlite" and engine.dialect.driver == "pysqlite":
        # pysqlite commits DDL on its own; let SQLAlchemy's BEGIN cover it (the documented
        # recipe), so that creating, filling and swapping the table are transactional
        sa.event.listen(engine, "connect", _sqlite_manual_transactions)
        sa.event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return engine


def _sqlite_manual_transactions(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None


def check_target(url: str, schema_name: str | None, name: str, replace: bool) -> bool:
    """Whether the table exists; refused unless ``replace``. Checked before any reading."""
    engine = _target_engine(url)
    shown = f"{schema_name}.{name}" if schema_name else name
    try:
        exists = sa.inspect(engine).has_table(name, schema=schema_name)
    except OperationalError as exc:
        raise DatabaseUnavailableError(
            f"--into: the target database {mask_url(url)} does not answer"
        ) from exc
    finally:
        engine.dispose()
    if exists and not replace:
        raise ConfigurationError(
            f"--into: table {shown} already exists in the target database; pass --replace "
            "to drop and rebuild it, or choose another --table"
        )
    return exists


def _target_table(name: str, schema_name: str | None, columns: list[_Column]) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("_lgsp_key", sa.Text, nullable=True),
        sa.Column("_lgsp_unit", sa.String(64), nullable=False),
        sa.Column("_lgsp_ts_ms", sa.BigInteger, nullable=False),
        sa.Column("_lgsp_event_id", sa.String(200), nullable=False),
        *[sa.Column(c.name, c.type, nullable=c.nullable) for c in columns],
        schema=schema_name,
    )


def _side_name(name: str, role: str) -> str:
    """A unique name beside ``name`` (at most 62 characters) for a table being swapped."""
    return f"{name[:44]}_lgsp_{role}_{secrets.token_hex(4)}"


def _write_error(exc: SQLAlchemyError, shown: str, kept: str) -> LgspError:
    """The bus error of a failed write (the driver's text may quote values: only its class)."""
    what = f"--into: writing table {shown} failed in the target database ({type(exc).__name__})"
    if isinstance(exc, OperationalError | InterfaceError) or getattr(
        exc, "connection_invalidated", False
    ):
        return DatabaseUnavailableError(f"{what}; {kept}")
    return FatalError(f"{what}; {kept}")


def _swap(engine: sa.Engine, schema_name: str | None, staging: str, name: str) -> None:
    """Put the filled ``staging`` table in the place of ``name`` (dropping the old one, if
    any) at once: one ``RENAME TABLE`` on MySQL/MariaDB, one transaction elsewhere."""
    prep = engine.dialect.identifier_preparer

    def qualified(table: str) -> str:
        prefix = prep.quote_schema(schema_name) + "." if schema_name else ""
        return prefix + prep.quote(table)

    exists = sa.inspect(engine).has_table(name, schema=schema_name)
    if engine.dialect.name == "mysql":  # DDL commits at once there: one atomic statement
        old = _side_name(name, "old")
        with engine.begin() as conn:
            if exists:
                conn.exec_driver_sql(
                    f"RENAME TABLE {qualified(name)} TO {qualified(old)}, "
                    f"{qualified(staging)} TO {qualified(name)}"
                )
            else:
                conn.exec_driver_sql(f"RENAME TABLE {qualified(staging)} TO {qualified(name)}")
        if exists:
            try:
                with engine.begin() as conn:
                    conn.exec_driver_sql(f"DROP TABLE {qualified(old)}")
            except SQLAlchemyError as exc:
                log.warning(
                    "replay: the replaced table is left as %s (%s)", old, type(exc).__name__
                )
        return
    with engine.begin() as conn:  # transactional DDL: both or neither
        if exists:
            conn.exec_driver_sql(f"DROP TABLE {qualified(name)}")
        conn.exec_driver_sql(f"ALTER TABLE {qualified(staging)} RENAME TO {prep.quote(name)}")


def _write_table(
    url: str,
    schema_name: str | None,
    name: str,
    record_schema: dict[str, Any],
    rows: list[Candidate],
    records: list[dict[str, Any]],
    replace: bool,
) -> None:
    """Write the rows into a new table under a temporary name, then swap it in: a failed
    write leaves the existing table as it was, on every dialect."""
    engine = _target_engine(url)
    shown = f"{schema_name}.{name}" if schema_name else name
    try:
        dialect = engine.dialect.name
        columns = _columns(record_schema, dialect)
        exists = check_target(url, schema_name, name, replace)
        kept = "the existing table is unchanged" if exists else "nothing was kept"
        staging = _target_table(_side_name(name, "new"), schema_name, columns)
        values = []
        for candidate, record in zip(rows, records, strict=True):
            item = {
                "_lgsp_key": candidate.key,
                "_lgsp_unit": candidate.source_unit,
                "_lgsp_ts_ms": candidate.ts_ms,
                "_lgsp_event_id": candidate.event_id,
            }
            for column in columns:
                item[column.name] = _adapt(record.get(column.name), column.kind, dialect)
            values.append(item)
        try:
            with engine.begin() as conn:
                staging.create(conn)
                for start in range(0, len(values), 5000):
                    conn.execute(staging.insert(), values[start : start + 5000])
            _swap(engine, schema_name, staging.name, name)
        except SQLAlchemyError as exc:
            try:  # MySQL/MariaDB keep a created table whatever happens after
                with engine.begin() as conn:
                    staging.drop(conn, checkfirst=True)
            except SQLAlchemyError:
                log.warning("replay: could not drop the unfinished table %s", staging.name)
            raise _write_error(exc, shown, kept) from exc
    finally:
        engine.dispose()


@dataclass
class _Access:
    records: int = 0


@contextmanager
def _access_logged(
    settings: Settings, *, dataset: str, purpose: str, action: str, **fields: Any
) -> Iterator[_Access]:
    """Access-log the replay run in the block: ``ok`` with the block's ``records`` count, or
    ``failed: <error class>`` with 0. When the replay failed and the log cannot be written
    either, the replay's error is raised (the log's failure is logged)."""
    access = _Access()
    try:
        yield access
    except BaseException as exc:
        try:
            record_access(
                settings,
                principal=settings.principal,
                dataset=dataset,
                purpose=purpose,
                records=0,
                action=action,
                outcome=f"failed: {type(exc).__name__}",
                **fields,
            )
        except Exception as log_exc:
            log.error("the failed replay was not access-logged (%s)", type(log_exc).__name__)
        raise
    record_access(
        settings,
        principal=settings.principal,
        dataset=dataset,
        purpose=purpose,
        records=access.records,
        action=action,
        outcome="ok",
        **fields,
    )


# ---- the two replays ---------------------------------------------------------------------
def replay_as_of(
    settings: Settings,
    dataset: str,
    as_of: dt.datetime,
    *,
    into: str,
    purpose: str,
    table: str | None = None,
    unit: str | None = None,
    replace: bool = False,
    public_keys: Any = None,
) -> ReplayReport:
    """Rebuild ``dataset`` as it stood at ``as_of`` into a fresh table of ``into``."""
    validate_dataset_name(dataset)
    _require_purpose(purpose)
    if as_of.tzinfo is None:
        raise ConfigurationError(f"--as-of: a time zone is required, e.g. {TIME_EXAMPLE}")
    unit_path = normalise_unit(settings, unit)
    schema_name, name = table_name(dataset, table)
    check_target(into, schema_name, name, replace)
    report = ReplayReport(dataset, "as-of", as_of=as_of.isoformat(), unit=unit_path)
    report.table = f"{schema_name}.{name}" if schema_name else name
    report.target = mask_url(into)
    with _access_logged(
        settings,
        dataset=dataset,
        purpose=purpose,
        action="replay-as-of",
        as_of=as_of,
        unit=unit_path,
        target=f"{report.target} {report.table}",
    ) as access:
        registry = Registry(settings)
        selector = _Selector(settings, report, unit=unit_path, as_of_ms=to_epoch_ms(as_of))
        topics = _collect(settings, dataset, unit_path, report, selector, registry, public_keys)
        reader = _reader_schema(registry, topics, dataset)
        record_schema = record_schema_of(reader.schema)
        codec = AvroCodec(registry)
        parsed_reader = registry.parsed_by_id(reader.id)
        kept: list[Candidate] = []
        records: list[dict[str, Any]] = []
        for candidate in sorted(selector.latest.values(), key=lambda c: c.key or ""):
            if candidate.op == "d":
                report.deleted_keys += 1
                continue
            resolve = None if candidate.schema_id == reader.id else parsed_reader
            _sid, value = codec.decode(candidate.payload, reader=resolve)
            record = value.get("after")
            if record is None:
                report.deleted_keys += 1
                continue
            kept.append(candidate)
            records.append(record)
        report.keys = len(kept)
        report.content_hash = content_hash([(c.key, r) for c, r in zip(kept, records, strict=True)])
        if report.selected == 0:
            first = f" (the first event is at {report.first_event})" if report.first_event else ""
            report.notes.append(
                f"no event at or before {report.as_of}{first}: the dataset was empty then; "
                "the table is created empty"
            )
        _write_table(into, schema_name, name, record_schema, kept, records, replace)
        access.records = report.keys
    return report


def replay_events(
    settings: Settings,
    dataset: str,
    *,
    purpose: str,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    unit: str | None = None,
    public_keys: Any = None,
) -> tuple[ReplayReport, Iterator[dict[str, Any]]]:
    """The decoded events with ``start <= ts_ms < end`` in event-time order.

    The access is logged before the events are handed out (the count is known by then).
    """
    validate_dataset_name(dataset)
    _require_purpose(purpose)
    for flag, moment in (("--from", start), ("--to", end)):
        if moment is not None and moment.tzinfo is None:
            raise ConfigurationError(f"{flag}: a time zone is required, e.g. {TIME_EXAMPLE}")
    if start is not None and end is not None and end <= start:
        raise ConfigurationError("--to: must be later than --from")
    unit_path = normalise_unit(settings, unit)
    report = ReplayReport(
        dataset,
        "events",
        from_ts=start.isoformat() if start else None,
        to_ts=end.isoformat() if end else None,
        unit=unit_path,
    )
    with _access_logged(
        settings,
        dataset=dataset,
        purpose=purpose,
        action="replay-events",
        from_ts=start,
        to_ts=end,
        unit=unit_path,
    ) as access:
        registry = Registry(settings)
        selector = _Selector(
            settings,
            report,
            unit=unit_path,
            from_ms=to_epoch_ms(start) if start else None,
            to_ms=to_epoch_ms(end) if end else None,
        )
        _collect(settings, dataset, unit_path, report, selector, registry, public_keys)
        chosen = sorted(selector.events, key=lambda c: (c.ts_ms, c.order))
        if not chosen:
            report.notes.append("no event in the range")
        access.records = report.selected
    codec = AvroCodec(registry)

    def events() -> Iterator[dict[str, Any]]:
        for candidate in chosen:
            yield codec.decode(candidate.payload)[1]

    return report, events()


def _require_purpose(purpose: str | None) -> None:
    if purpose is None or not purpose.strip():
        raise ConfigurationError(
            "--purpose: required; say why the history is read (it goes to the access log)"
        )
