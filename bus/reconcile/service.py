"""Reconciliation by connector names: resolve both tables, compare, store, repair.

``run_reconcile(settings, connector, table, against)`` is what ``lgsp reconcile`` and the
reconciliation DAG call. The source is a registered source connector and one of its tables;
the target is the table of the sink connector ``against`` that receives the same dataset.
The sink's bookkeeping columns (``_lgsp_*``) are left out of the comparison, rows it marked
deleted count as absent, and so do source rows whose ``deleted_flag`` is set. Timestamps are
compared to the microsecond: where the dataset's schema carries milliseconds
(``timestamp-millis``), a source value with microseconds arrives cut, and that row is reported
as different (a precision loss is a difference, never hidden), with a warning naming the
fields.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bus.errors import ConfigurationError, LgspError, NotFoundError
from bus.reconcile.core import Between, ConnectorPair, Endpoint, OneOf, Options, reconcile
from bus.reconcile.report import Report

if TYPE_CHECKING:
    from bus.config import Settings

log = logging.getLogger(__name__)

SINK_DELETED = "_lgsp_deleted"
SINK_UNIT = "_lgsp_unit"  # the publishing unit of each row (the event's source.unit)
SINK_TS = "_lgsp_ts_ms"  # the change time of the event that wrote the row


def _connector(settings: Settings, name: str, role: str, option: str, reading: bool = False) -> Any:
    from bus.context import Context
    from bus.sync import connector_for

    ctx = Context.load(settings)
    stored = ctx.connectors.get(name)
    if stored.role != role:
        raise ConfigurationError(f"{option}: connector {name!r} is a {stored.role}, not a {role}")
    connector = connector_for(ctx, name, reading=reading)
    if not hasattr(connector, "url") or not hasattr(connector, "connect_args"):
        raise ConfigurationError(
            f"{option}: connector {name!r} has type {stored.type!r}; only SQL connectors "
            "(postgresql, mysql, sqlite) can be reconciled"
        )
    return connector


def _unit_path(settings: Settings, unit: str) -> str:
    return _hierarchy(settings).path(unit)


def catalogue_pii(settings: Settings, dataset: str) -> list[str]:
    """The dataset's PII fields from the catalogue (none when it is not catalogued)."""
    try:
        from bus.catalog import get_dataset
    except ImportError:  # pragma: no cover - the catalogue ships with the bus
        return []
    try:
        return list(get_dataset(settings, dataset).pii)
    except NotFoundError:
        return []


def pii_token(settings: Settings) -> Any:
    """``value -> tok_...`` with the bus's PII key (the catalogue's keyed tokens)."""
    try:
        from bus.catalog import load_pii_key, token
    except ImportError:  # pragma: no cover
        return None
    key = load_pii_key(settings)
    return lambda value: token(value, key)


def resolve_pair(
    settings: Settings, connector: str, table: str, against: str, *, through: bool = False
) -> ConnectorPair:
    """Both tables of ``connector``'s ``table`` and its copy in sink ``against``; ``through``:
    the source is an old unit's, the sink a new unit's after a reform (see
    :mod:`bus.reconcile.mapping`)."""
    source = _connector(settings, connector, "source", "CONNECTOR", reading=through)
    try:
        src_cfg = source.table_config(table)
    except ConfigurationError:
        tables = ", ".join(t.table for t in source.config.tables)
        raise NotFoundError(
            f"TABLE: {table!r} is not a table of connector {connector!r}; its tables: {tables}"
        ) from None
    sink = _connector(settings, against, "sink", "--against")
    dataset = src_cfg.dataset
    matches = [t for t in sink.config.tables if t.dataset == dataset]
    if not matches:
        raise NotFoundError(
            f"--against: sink {against!r} has no table for dataset {dataset!r} "
            f"(its datasets: {', '.join(sorted({t.dataset for t in sink.config.tables}))})"
        )
    sink_cfg = matches[0]
    try:
        return _pair(settings, (connector, source, src_cfg), (against, sink, sink_cfg), through)
    finally:
        source.close()
        sink.close()


def _pair(
    settings: Settings,
    source_side: tuple[str, Any, Any],
    sink_side: tuple[str, Any, Any],
    through: bool,
) -> ConnectorPair:
    """The pair of :func:`resolve_pair` from (name, connector, table entry) of both sides."""
    from bus.units.rekey import is_unit_field

    connector, source, src_cfg = source_side
    against, sink, sink_cfg = sink_side
    table, dataset = src_cfg.table, src_cfg.dataset
    warnings: list[str] = []
    origin_unit: str | None = source.config.unit  # the sink gathers many units
    mapped = None
    if through:
        from bus.context import Context
        from bus.reconcile.mapping import through_mapping

        ctx = Context.load(settings)
        stored = ctx.connectors.get(connector)
        mapped = through_mapping(
            settings,
            source.config.unit,
            stored.topics,
            sink.config.unit,
            ctx.connectors.get(against).topics,
            ctx.hierarchy.name,
        )
        warnings.append(mapped.describe())
        topic = stored.topics[table]
    else:
        h = _hierarchy(settings)
        src_path, sink_path = h.path(source.config.unit), h.path(sink.config.unit)
        if sink_path == src_path:
            origin_unit = None  # the sink reads this unit's own topic
        elif not src_path.startswith(sink_path + "."):
            raise ConfigurationError(
                f"--against: sink {against!r} reads unit {sink.config.unit} topics, which do not "
                f"receive unit {source.config.unit}'s data ({dataset})"
            )
        topic = source.config.topics(h)[table]
    pii = catalogue_pii(settings, dataset)
    stream = source.discover_stream(table)
    by_field = {c.field: c.name for c in stream.columns}
    if pii:  # catalogue names are Avro fields; the tables use the column names
        pii = [by_field.get(f, f) for f in pii]
    # nested fields travel as JSON: compared as JSON documents, whatever a database stores
    json_columns = [by_field.get(f, f) for f in _nested_fields(stream.record_schema)]
    src = Endpoint(
        source.url,
        src_cfg.table,
        connector=connector,
        key=_listed(src_cfg, "key"),
        columns=_listed(src_cfg, "columns"),
        deleted_flag=getattr(src_cfg, "deleted_flag", None),
        connect_args=source.connect_args(),
    )
    tgt = Endpoint(
        sink.url,
        sink_cfg.table,
        connector=against,
        key=_listed(sink_cfg, "key"),
        connect_args=sink.connect_args(),
    )
    return ConnectorPair(
        src,
        tgt,
        source_name=connector,
        sink_name=against,
        table=table,
        dataset=dataset,
        topic=topic,
        pii=pii,
        warnings=warnings,
        origin_unit=origin_unit,
        json_columns=json_columns,
        mapped=mapped,
        unit_columns=[c.name for c in stream.columns if is_unit_field(c.field)],
        field_columns=by_field,
    )


def _listed(table_cfg: Any, name: str) -> list[str] | None:
    """A list option of a table entry (``key``, ``columns``), None when not set."""
    value = getattr(table_cfg, name, None)
    return list(value) if value else None


def _nested_fields(record_schema: dict[str, Any]) -> list[str]:
    """Fields whose values are records, arrays or maps (possibly nullable)."""
    out = []
    for item in record_schema.get("fields", []):
        kinds = item["type"] if isinstance(item["type"], list) else [item["type"]]
        for kind in kinds:
            if isinstance(kind, dict) and kind.get("type") in ("record", "array", "map"):
                out.append(item["name"])
                break
    return out


def _hierarchy(settings: Settings) -> Any:
    from bus.context import Context

    return Context.load(settings).hierarchy


def _sink_columns(endpoint: Endpoint) -> set[str]:
    """The target table's column names (empty when it does not exist or cannot be read)."""
    from bus.reconcile.dialects import make_engine
    from connectors.sql.types import split_table

    schema, name = split_table(endpoint.table, "table")
    engine = make_engine(endpoint.url, endpoint.connect_args)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            if not inspector.has_table(name, schema=schema):
                return set()
            return {c["name"] for c in inspector.get_columns(name, schema)}
    except sa.exc.SQLAlchemyError:
        return set()
    finally:
        engine.dispose()


def run_reconcile(
    settings: Settings,
    connector: str,
    table: str,
    against: str,
    repair: bool = False,
    *,
    options: Options | None = None,
    target_where: dict[str, Any] | None = None,
    store: bool = True,
    through_mapping: bool = False,
) -> Report:
    """Reconcile ``connector``'s ``table`` against sink ``against``; store the report; with
    ``repair``, publish the repair events on the source's topic (a sink run then applies them).
    ``through_mapping``: an old unit's table against the new unit's copy after a reform.
    """
    pair = resolve_pair(settings, connector, table, against, through=through_mapping)
    sink_columns = _sink_columns(pair.target)
    if SINK_DELETED in sink_columns:
        pair.target.deleted_flag = SINK_DELETED
    ignored: tuple[str, ...] = ()
    if pair.mapped is not None:
        if repair:
            raise ConfigurationError(
                "--repair: not with --through-mapping (the old unit's topic no longer feeds "
                "the new unit; run 'lgsp route reform' again to re-key what is missing)"
            )
        if SINK_UNIT not in sink_columns:
            raise ConfigurationError(
                f"--through-mapping: sink {pair.sink_name!r} table {pair.target.table} has no "
                f"{SINK_UNIT} column to tell the old unit's rows"
            )
        units = [c for c in pair.unit_columns if c in sink_columns]
        pair.target.where = {
            **dict(target_where or {}),
            SINK_UNIT: pair.mapped.old,
            **dict.fromkeys(units, pair.mapped.new),
        }
        if pair.mapped.same_code:
            pair.target.where[SINK_TS] = Between(below=pair.mapped.effective_ms + 1)
            pair.warnings.append(
                f"unit code {pair.mapped.old} is both the old and the new unit's: only copy "
                f"rows stamped at most at the effective day are compared ({SINK_TS})"
            )
        # the rows whose unit fields held the old code, on both sides
        pair.source.where = {**pair.source.where, **dict.fromkeys(units, pair.mapped.old)}
        if pair.mapped.field:  # a split by a field: the old rows its rule sends to this part
            column = pair.field_columns.get(pair.mapped.field, pair.mapped.field)
            pair.source.where[column] = OneOf(pair.mapped.values, negate=pair.mapped.others)
        ignored = tuple(pair.unit_columns)
    elif target_where:
        pair.target.where = dict(target_where)
    elif pair.origin_unit is not None:
        if SINK_UNIT in sink_columns:  # compare only the rows this source's unit published
            pair.target.where = {SINK_UNIT: pair.origin_unit}
        else:
            pair.warnings.append(
                f"sink {pair.sink_name!r} gathers {pair.dataset} of many units and its table has "
                f"no {SINK_UNIT} column: rows of other units show as extra unless the target "
                "is filtered (target_where)"
            )
    opts = options or Options(time_precision=6)
    opts = replace(
        opts,
        ignore_columns=tuple(dict.fromkeys([*opts.ignore_columns, *ignored])),
        json_columns=tuple(dict.fromkeys([*opts.json_columns, *pair.json_columns])),
        pii=tuple(dict.fromkeys([*opts.pii, *pair.pii])),
        token=opts.token or pii_token(settings),
    )
    report = reconcile(pair.source, pair.target, opts)
    report.warnings.extend(pair.warnings)
    if report.counts["different"] and opts.time_precision == 6:
        report.warnings.extend(_millisecond_fields(settings, pair.topic))
    if repair and (report.differences or report.schema_errors):
        from bus.reconcile.repair import publish_repair

        if report.differences:
            report.repair = publish_repair(settings, report, pair)
        else:
            report.repair = {"published": 0, "note": "schema differences cannot be repaired"}
    if store:
        from bus.reconcile.store import save_report

        save_report(settings, report)
    return report


def _millisecond_fields(settings: Settings, topic: str) -> list[str]:
    """A warning for the dataset's timestamp fields that carry milliseconds only."""
    from bus.context import Context
    from bus.envelope import record_schema_of
    from bus.registry import subject_for

    try:
        registry = Context.load(settings).registry
        record = record_schema_of(registry.latest(subject_for(topic)).schema)
    except (LgspError, KeyError, TypeError):
        return []
    names = []
    for f in record.get("fields", []):
        branches = f["type"] if isinstance(f["type"], list) else [f["type"]]
        if any(
            isinstance(b, dict) and "timestamp-millis" in str(b.get("logicalType"))
            for b in branches
        ):
            names.append(f["name"])
    if not names:
        return []
    return [
        f"field(s) {', '.join(names)} of {topic} carry milliseconds: source values with "
        "microseconds arrive cut, and such rows are reported as different (a repair publishes "
        "the same milliseconds again and cannot fix them)"
    ]


def all_catalogue_pii(settings: Settings) -> list[str]:
    """The PII fields of every catalogued dataset."""
    from bus.catalog import list_datasets

    return sorted({f for info in list_datasets(settings) for f in info.pii})


def _control_database_exists(settings: Settings) -> bool:
    """False only for a SQLite control database whose file is not there (yet)."""
    url = sa.engine.make_url(settings.control_database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return True
    return Path(url.database).exists()


def _catalogue_masking(
    loaded: Future[Settings], warnings: list[str]
) -> tuple[tuple[str, ...], Callable[[Any], str] | None]:
    """The PII fields of every catalogued dataset and the token; none, with a warning, when
    the catalogue cannot be read. A SQLite control database whose file does not exist holds
    no catalogue: it is not made (and migrated) just to find that out."""
    try:
        settings = loaded.result()
        if not _control_database_exists(settings):
            return (), pii_token(settings)
        return tuple(all_catalogue_pii(settings)), pii_token(settings)
    except (LgspError, sa.exc.SQLAlchemyError) as exc:
        warnings.append(
            f"catalogue not readable ({type(exc).__name__}): personal-data columns "
            "recognised by their names only"
        )
        return (), None


def run_urls(
    settings: Settings | Callable[[], Settings] | None,
    source: Endpoint,
    target: Endpoint,
    options: Options | None = None,
    *,
    store: bool = True,
    show_values: bool = False,
) -> Report:
    """Ad-hoc reconciliation of two URLs (no connectors); stored when settings are given.

    No dataset says which columns hold personal data, so unless ``show_values``, the values
    of columns named like a PII field of any catalogued dataset, or like a personal
    identifier (``ho_ten``, ``cccd``, ``so_dien_thoai``...), are masked, as are the
    ``options.pii`` columns always; the stored report is the masked one.

    ``settings`` may be the function that loads them (the CLI's): they are then loaded, and
    the catalogue read, while the databases compute; loading the configuration and opening
    the control database (checking its migrations) are a good part of a short run's time.
    Their errors are raised after the comparison.
    """
    opts = options or Options()
    warnings: list[str] = []
    reader: ThreadPoolExecutor | None = None
    loaded: Future[Settings] | None = None
    if settings is not None:
        # The catalogue's modules import SQLAlchemy's ORM, which registers hooks that every
        # SQL statement consults: imported in that thread while this one reflects the tables,
        # a statement may meet a half-imported module. Imported here first, it is whole.
        import sqlalchemy.orm  # noqa: F401

        reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalogue")
        loaded = reader.submit(settings if callable(settings) else lambda: settings)
    if not show_values:
        opts = replace(opts, pii_guess=True)
        if reader is not None and loaded is not None:
            found = reader.submit(_catalogue_masking, loaded, warnings)
            opts = replace(opts, pii_from=found.result)
    try:
        report = reconcile(source, target, opts)
    finally:
        if reader is not None:
            reader.shutdown(wait=True, cancel_futures=True)
    report.warnings.extend(warnings)
    if loaded is not None:
        ready = loaded.result()  # a configuration error is raised here, stored or not
        if store:
            from bus.reconcile.store import save_report

            save_report(ready, report)
    return report


def pairs_for_manifest(settings: Settings) -> list[dict[str, Any]]:
    """Every (source connector, table, sink) whose sink receives that table's dataset, for
    the reconciliation DAGs (one per pair, daily by default; with repair when the source's
    table says ``reconcile: repair``)."""
    from bus.context import Context

    connectors = Context.load(settings).connectors.list()
    sql_types = {"postgresql", "mysql", "mariadb", "sqlite"}
    out: list[dict[str, Any]] = []
    sinks = [c for c in connectors if c.role == "sink" and c.type in sql_types]
    for src in connectors:
        if src.role != "source" or src.type not in sql_types:
            continue
        try:
            src_path = _unit_path(settings, src.unit)
        except NotFoundError:
            continue
        for table in src.config.get("tables", []):
            for sink in sinks:
                try:
                    sink_path = _unit_path(settings, sink.unit)
                except NotFoundError:
                    continue
                if src_path != sink_path and not src_path.startswith(sink_path + "."):
                    continue
                if any(t.get("dataset") == table.get("dataset") for t in sink.config["tables"]):
                    out.append(
                        {
                            "source": src.name,
                            "table": table["table"],
                            "sink": sink.name,
                            "dataset": table.get("dataset"),
                            "schedule": "@daily",
                            "repair": table.get("reconcile") == "repair",
                        }
                    )
    return out
