"""Repair through the bus: the source's current rows re-published, extra keys deleted.

For every key missing from the copy or different in it, the source row as it is *now* is
published on the source connector's topic (op ``c`` for a missing key, ``u`` for a different
one; ``d`` when the row has gone from the source meanwhile or is soft-deleted), and for every
key only the copy has, a delete (op ``d``). The events go through ``Publisher`` like any
change, so they are archived, access-logged and routed; a sink run then fixes the copy.
Event ids are stable: the same repair of the same row state gives the same ids.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bus.config import Settings
from bus.envelope import envelope_schema, make_event, to_jsonable
from bus.errors import ConfigurationError
from bus.publish import Publisher
from bus.reconcile.report import Report
from bus.registry import Registry, subject_for

if TYPE_CHECKING:
    from bus.reconcile.service import ConnectorPair

CHUNK = 500


def _version(record: dict[str, Any] | None) -> str:
    if record is None:
        return "absent"
    text = json.dumps(to_jsonable(record), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def publish_repair(settings: Settings, report: Report, pair: ConnectorPair) -> dict[str, Any]:
    """Publish the repair events of ``report``; returns what was sent where."""
    from bus.sync import connector_for
    from connectors.base import event_id_for, key_json, now_ms
    from connectors.registration import quiet_avro
    from connectors.sql.connector import is_deleted, split_table

    upserts: list[tuple[str, tuple[Any, ...]]] = report._repair_keys.get("upsert", [])
    deletes: list[tuple[Any, ...]] = report._repair_keys.get("delete", [])
    connector = connector_for(settings, pair.source_name)
    registry = Registry(settings)
    with connector, quiet_avro():
        stream = connector.discover_stream(pair.table)
        envelope = envelope_schema(stream.record_schema, settings.schemas_dir)
        registry.register(subject_for(pair.topic), envelope)
        schema, name = split_table(stream.name)
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connector.engine)
        fields = {c.name: c.field for c in stream.columns}
        convert = {
            c.name: connector.avro_mapping(table.c[c.name].type).convert for c in stream.columns
        }
        key_names = list(report.key)
        unknown = [k for k in key_names if k not in fields]
        if unknown:
            raise ConfigurationError(
                f"repair: key column {unknown[0]!r} is not published by connector "
                f"{pair.source_name!r}"
            )
        flag = getattr(stream.config, "deleted_flag", None)
        selected = [table.c[c.name] for c in stream.columns]
        if flag and flag not in fields:
            selected.append(table.c[flag])

        def value(column: str, raw: Any) -> Any:
            fn = convert[column]
            return raw if raw is None or fn is None else fn(raw)

        def key_of(values: tuple[Any, ...]) -> dict[str, Any]:
            return {fields[k]: value(k, v) for k, v in zip(key_names, values, strict=True)}

        current: dict[str, tuple[dict[str, Any], bool]] = {}
        keys = [k for _, k in upserts]
        cols = [table.c[k] for k in key_names]
        with connector.engine.connect() as conn:
            for start in range(0, len(keys), CHUNK):
                part = keys[start : start + CHUNK]
                if len(cols) == 1:
                    cond = cols[0].in_([k[0] for k in part])
                else:
                    cond = sa.tuple_(*cols).in_([tuple(k) for k in part])
                for row in conn.execute(sa.select(*selected).where(cond)).mappings():
                    record = {fields[c]: value(c, row[c]) for c in fields}
                    gone = bool(flag) and is_deleted(row[flag])
                    current[key_json({fields[k]: record[fields[k]] for k in key_names})] = (
                        record,
                        gone,
                    )
        source = connector.source_block(stream)
        prefix = f"{connector.name}\x1f{stream.name}\x1freconcile"
        ts = now_ms()
        events: list[dict[str, Any]] = []
        counts = {"c": 0, "u": 0, "d": 0}

        def add(op: str, key: dict[str, Any], record: dict[str, Any] | None) -> None:
            text = key_json(key)
            events.append(
                make_event(
                    op=op,
                    key=key,
                    source=source,
                    ts_ms=ts,
                    before=record if op == "d" else None,
                    after=None if op == "d" else record,
                    event_id=event_id_for(prefix, text, op, _version(record)),
                )
            )
            counts[op] += 1

        for status, native in upserts:
            key = key_of(native)
            found = current.get(key_json(key))
            if found is None or found[1]:
                add("d", key, found[0] if found else None)
            else:
                add("c" if status == "missing" else "u", key, found[0])
        for native in deletes:
            add("d", key_of(native), None)
    with Publisher(settings, registry) as publisher:
        sent = publisher.publish(pair.topic, events, on_invalid="dlq", dataset=pair.dataset)
    return {
        "topic": pair.topic,
        "published": sent.sent,
        "dlq": sent.dlq,
        "ops": counts,
        "sink": pair.sink_name,
        "then": f"lgsp connector run {pair.sink_name}",
    }
