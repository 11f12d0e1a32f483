"""Registering a connector from its file: validate, connect, discover, check schemas, store.

Every check runs before anything is written: the file (every field at once), the name, the
topics (one source per topic), the connection (within its timeout), the tables and columns
(every problem at once), and the derived schemas against the registry (every incompatibility
at once). Only then are the schemas registered and the connector stored, in that order, so an
error at any step leaves no connector behind. ``dry_run`` stops before the writes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bus.config import Settings
from bus.connector_service.catalogue import attach_catalogue
from bus.connectors_db import ConnectorStore
from bus.context import Context
from bus.envelope import envelope_schema, record_schema_of
from bus.errors import IncompatibleSchemaError, LgspError, NotFoundError
from bus.registry import Registry, subject_for
from bus.registry.compat import quiet_avro
from connectors import plugins as connector_types
from connectors.base import Connector, Stream
from connectors.config import ConnectorConfig
from connectors.errors import (
    ConnectorConfigError,
    ConnectorExistsError,
    ConnectorUnavailableError,
    FieldError,
)


@dataclass
class TablePlan:
    """What a registered table will do."""

    table: str
    dataset: str
    topic: str
    mode: str | None = None
    cursor: str | None = None
    deleted_flag: str | None = None
    key: list[str] = field(default_factory=list)
    columns: list[dict[str, Any]] = field(default_factory=list)
    subject: str = ""
    schema: str = ""
    actions: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Registration:
    """The outcome of ``register`` (also of a dry run)."""

    name: str
    type: str
    role: str
    agency: str
    unit: str
    connection: str
    connect_seconds: float
    tables: list[TablePlan]
    stored: bool = False
    replaced: bool = False

    @property
    def warnings(self) -> list[str]:
        return [w for t in self.tables for w in t.warnings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "role": self.role,
            "agency": self.agency,
            "unit": self.unit,
            "connection": self.connection,
            "connect_seconds": round(self.connect_seconds, 3),
            "stored": self.stored,
            "replaced": self.replaced,
            "tables": [t.__dict__ for t in self.tables],
        }


def _connection_display(config: ConnectorConfig) -> str:
    masked = config.masked().get("connection", {})
    return str(masked.get("url", "")) if isinstance(masked, dict) else ""


def register(
    settings: Context | Settings,
    data: dict[str, Any],
    *,
    dry_run: bool = False,
    replace: bool = False,
    base_dir: Path | None = None,
) -> Registration:
    """Check everything about a connector file, then (unless ``dry_run``) store it."""
    with quiet_avro():
        return _register(
            Context.of(settings), data, dry_run=dry_run, replace=replace, base_dir=base_dir
        )


def _register(
    ctx: Context,
    data: dict[str, Any],
    *,
    dry_run: bool,
    replace: bool,
    base_dir: Path | None,
) -> Registration:
    settings, hierarchy = ctx.settings, ctx.hierarchy  # connectors register in the one in force
    if base_dir is not None:
        data = connector_types.normalize(data, base_dir)
    config = connector_types.validate(data, hierarchy=hierarchy)
    store = ctx.connectors
    exists = any(c.name == config.name for c in store.list())
    if exists and not replace:
        raise ConnectorExistsError(
            f"name: connector {config.name!r} is already registered; "
            "use --replace to update it or 'lgsp connector remove' first"
        )
    topics = config.topics(hierarchy)
    if config.role == "source":
        taken = store.publishers_of(list(topics.values()))
        clashes = [
            FieldError(
                f"tables[{i}].dataset",
                f"topic {topics[t.table]} is already published by connector "
                f"{taken[topics[t.table]]!r} (a topic has one publisher)",
            )
            for i, t in enumerate(config.tables)
            if taken.get(topics[t.table], config.name) != config.name
        ]
        if clashes:
            raise ConnectorConfigError(clashes, name=config.name)
    connector = connector_types.build(config, hierarchy=hierarchy, batch_size=settings.batch_size)
    attach_catalogue(connector, settings)
    registry = ctx.registry
    with connector:
        started = time.monotonic()
        connector.check()
        seconds = time.monotonic() - started
        streams = connector.discover()
        if config.role == "source":
            plans, envelopes = _source_plans(settings, registry, streams, topics)
        else:
            plans, envelopes = _sink_plans(registry, connector, streams, topics), {}
    result = Registration(
        config.name,
        config.type,
        config.role,
        config.agency,
        config.unit,
        _connection_display(config),
        seconds,
        plans,
        replaced=exists,
    )
    if dry_run:
        return result
    for plan in plans:
        if plan.table in envelopes:
            unchanged = plan.schema.endswith("(unchanged)")
            version = registry.register(plan.subject, envelopes[plan.table]).version
            plan.schema = f"version {version}" + (" (unchanged)" if unchanged else "")
    store.add(
        name=config.name,
        type=config.type,
        role=config.role,
        agency=config.agency,
        unit=config.unit,
        config=config.stored(),
        topics=topics,
        replace=replace,
    )
    result.stored = True
    _refresh_manifest(ctx)
    return result


def unregister(settings: Settings, name: str, *, keep_slot: bool = False) -> dict[str, Any] | None:
    """Forget connector ``name`` and its positions (its topics and schemas stay); its DAG goes.
    A log-based source's replication slot and publication are dropped first (they would keep
    the server's WAL without bound), unless ``keep_slot``; what was dropped is returned."""
    store = ConnectorStore(settings)
    stored = store.get(name)
    dropped = None
    if not keep_slot and stored.role == "source":
        with connector_types.build(stored.config, batch_size=settings.batch_size) as connector:
            try:
                dropped = connector.drop_log()
            except (LgspError, SQLAlchemyError) as exc:
                reason = str(exc) if isinstance(exc, LgspError) else type(exc).__name__
                raise ConnectorUnavailableError(
                    f"connector {name}: cannot drop its replication slot ({reason}); nothing was "
                    "removed: make the database reachable, or remove with --keep-slot and drop "
                    "the slot and publication by hand"
                ) from exc
    store.remove(name)
    _refresh_manifest(settings)
    return dropped


def _refresh_manifest(settings: Context | Settings) -> None:
    """Rewrite the Airflow manifest: a connector's DAG appears (or goes) with it, whether it
    was registered or removed by the CLI or the API."""
    from bus.orchestration.manifest import write_manifest

    write_manifest(settings)


def _columns(stream: Stream) -> list[dict[str, Any]]:
    return [
        {
            "name": c.name,
            "field": c.field,
            "sql_type": c.sql_type,
            "nullable": c.nullable,
            "primary_key": c.primary_key,
        }
        for c in stream.columns
    ]


def _source_plans(
    settings: Settings, registry: Registry, streams: list[Stream], topics: dict[str, str]
) -> tuple[list[TablePlan], dict[str, dict[str, Any]]]:
    plans = []
    envelopes: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for stream in streams:
        cfg = stream.config
        topic = topics[stream.name]
        subject = subject_for(topic)
        envelope = envelope_schema(stream.record_schema, settings.schemas_dir)
        versions = registry.versions(subject)
        found = [v for v in versions if v.schema == envelope]
        if found:
            status = f"version {found[-1].version} (unchanged)"
        else:
            issues = registry.check(subject, envelope)
            if issues:
                problems.append(f"{stream.name} -> {subject}: " + " | ".join(issues))
            status = f"new version {len(versions) + 1}" if versions else "new subject, version 1"
        envelopes[stream.name] = envelope
        plans.append(
            TablePlan(
                table=stream.name,
                dataset=stream.dataset,
                topic=topic,
                mode=getattr(cfg, "effective_mode", getattr(cfg, "mode", None)),
                cursor=getattr(cfg, "cursor", None),
                deleted_flag=getattr(cfg, "deleted_flag", None),
                key=list(stream.primary_key),
                columns=_columns(stream),
                subject=subject,
                schema=status,
                warnings=list(stream.warnings),
            )
        )
    if problems:
        raise IncompatibleSchemaError(
            "derived schemas are not compatible with the registry: " + "; ".join(problems)
        )
    return plans, envelopes


def _sink_plans(
    registry: Registry, connector: Connector, streams: list[Stream], topics: dict[str, str]
) -> list[TablePlan]:
    plans = []
    problems: list[FieldError] = []
    for i, stream in enumerate(streams):
        topic = topics[stream.name]
        subject = subject_for(topic)
        plan = TablePlan(
            table=stream.name,
            dataset=stream.dataset,
            topic=topic,
            key=list(stream.primary_key),
            columns=_columns(stream),
            subject=subject,
            warnings=list(stream.warnings),
        )
        try:
            latest = registry.latest(subject)
        except NotFoundError:
            plan.schema = "no schema yet"
            plan.warnings.append(
                f"topic {topic} has no schema yet: the target is checked at the first run"
            )
            plans.append(plan)
            continue
        plan.schema = f"version {latest.version}"
        record = record_schema_of(latest.schema)
        if not plan.key:
            plan.key = list(record.get("primary_key", []))
        try:
            plan.actions = connector.plan_sink(stream.name, record)
        except ConnectorConfigError as exc:
            problems.extend(e.within(f"tables[{i}]", stream.name) for e in exc.errors)
        except LgspError as exc:
            problems.append(FieldError(f"tables[{i}]", f"({stream.name}) {exc}"))
        plans.append(plan)
    if problems:
        raise ConnectorConfigError(problems, name=connector.name)
    return plans
