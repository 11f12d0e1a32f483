"""Repair through the bus: the source's current rows re-published, extra keys deleted.

For every key missing from the copy or different in it, the source row as it is *now* is
published on the source connector's topic (op ``c`` for a missing key, ``u`` for a different
one; ``d`` when the row has gone from the source meanwhile or is soft-deleted), and for every
key only the copy has, a delete (op ``d``). The events go through ``Publisher`` like any
change, so they are archived, access-logged and routed; a sink run then fixes the copy.

The sink applies an event only when its ``ts_ms`` is not older than the row's stored
``_lgsp_ts_ms``, so each repair event is stamped ``stored + 1`` at least (a copy whose version
ran ahead of the source still gets fixed), and otherwise with the time of the change as far as
the repair knows it: the row's cursor time when the table has a cursor, else the time the repair
observed the row (its own clock). A delete (a key the source lacks, or a row gone meanwhile) has
no cursor time: the row was there at its last version and gone when the repair looked, so the
delete carries the repair's time, never the row's old version + 1, and ``lgsp replay --as-of``
a moment in between still shows the row. A real change of that key stamped before the repair
but committed after it loses against the delete on a sink that keeps tombstones; the next
reconciliation finds the key missing and repairs it. Event ids are stable: the same repair of
the same row and copy state gives the same ids.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bus import broker_guard
from bus.config import Settings
from bus.envelope import envelope_schema, make_event, to_jsonable
from bus.errors import ConfigurationError
from bus.publish import Publisher
from bus.reconcile.canonical import canon
from bus.reconcile.dialects import keys_in, make_engine, read_error
from bus.reconcile.report import Report
from bus.registry import Registry, subject_for

if TYPE_CHECKING:
    from bus.reconcile.core import CanonKey, ConnectorPair

CHUNK = 500


def _version(record: dict[str, Any] | None) -> str:
    if record is None:
        return "absent"
    text = json.dumps(to_jsonable(record), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def repair_ts(cursor_ms: int | None, stored_ms: int | None, observed_ms: int) -> int:
    """A repair event's ``ts_ms``: the row's cursor time, else ``observed_ms`` (when the repair
    saw the row, or saw it gone); and after the copy's stored version, so that the sink
    applies it."""
    base = cursor_ms if cursor_ms is not None else observed_ms
    return base if stored_ms is None else max(base, stored_ms + 1)


def stored_versions(
    pair: ConnectorPair,
    key_names: list[str],
    kinds: list[str],
    keys: list[tuple[tuple[Any, ...], CanonKey]],
) -> dict[CanonKey, int | None]:
    """The copy's ``_lgsp_ts_ms`` of each key it holds (tombstones included), by canonical
    key; empty when the copy has no such column."""
    from connectors.sql.types import split_table
    from connectors.sql.upsert import VERSION

    target = pair.target
    schema, name = split_table(target.table, "table")
    engine = make_engine(target.url, target.connect_args)
    out: dict[CanonKey, int | None] = {}
    try:
        with engine.connect() as conn:
            table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=conn)
            if VERSION not in table.c or not keys:
                return out
            cols = [table.c[k] for k in key_names]
            for cond in keys_in(cols, [native for native, _ in keys], CHUNK):
                for row in conn.execute(sa.select(*cols, table.c[VERSION]).where(cond)):
                    ck = tuple(canon(v, k) for v, k in zip(row[:-1], kinds, strict=True))
                    out[ck] = None if row[-1] is None else int(row[-1])
    except sa.exc.SQLAlchemyError as exc:
        raise read_error(exc, f"repair: versions of target table {target.table}") from exc
    finally:
        engine.dispose()
    return out


def publish_repair(settings: Settings, report: Report, pair: ConnectorPair) -> dict[str, Any]:
    """Publish the repair events of ``report``; returns what was sent where."""
    from bus.registry.compat import quiet_avro
    from bus.sync import connector_for
    from connectors.base import event_id_for, key_json, now_ms
    from connectors.soft_delete import is_deleted
    from connectors.sql.types import split_table, ts_ms

    upserts: list[tuple[str, tuple[Any, ...], CanonKey]] = report._repair_keys.get("upsert", [])
    deletes: list[tuple[tuple[Any, ...], CanonKey]] = report._repair_keys.get("delete", [])
    stored = stored_versions(
        pair,
        list(report.key),
        list(report._repair_keys.get("target_kinds", [])),
        [(native, ck) for _, native, ck in upserts] + deletes,
    )
    connector = connector_for(settings, pair.source_name)
    registry = Registry(settings)
    with connector, quiet_avro():
        stream = connector.discover_stream(pair.table)
        envelope = envelope_schema(stream.record_schema, settings.schemas_dir)
        registry.register(subject_for(pair.topic), envelope)
        schema, name = split_table(stream.name)
        table = sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connector.engine)
        fields = {c.name: c.field for c in stream.columns}
        contract = getattr(stream, "contract", None)
        defaults: dict[str, Any] = {}
        if contract is not None:  # a catalogued dataset: rows converted as the sync does
            convert = {c: conv for _f, c, conv in contract.fields if c is not None}
            defaults = {f: conv(None) for f, c, conv in contract.fields if c is None}
        else:
            convert = {
                c.name: connector.avro_mapping(table.c[c.name].type, key=c.primary_key).convert
                for c in stream.columns
            }
        key_names = list(report.key)
        unknown = [k for k in key_names if k not in fields]
        if unknown:
            raise ConfigurationError(
                f"repair: key column {unknown[0]!r} is not published by connector "
                f"{pair.source_name!r}"
            )
        flag = getattr(stream.config, "deleted_flag", None)
        cursor = getattr(stream.config, "cursor", None)
        selected = [table.c[c.name] for c in stream.columns]
        for extra in (flag, cursor):
            if extra and extra not in fields and all(c.name != extra for c in selected):
                selected.append(table.c[extra])
        cursor_convert = connector.avro_mapping(table.c[cursor].type).convert if cursor else None

        def cursor_ms(raw: Any) -> int | None:
            if raw is None:
                return None
            return ts_ms(raw if cursor_convert is None else cursor_convert(raw))

        def value(column: str, raw: Any) -> Any:
            fn = convert[column]
            if contract is not None:
                return fn(raw)
            return raw if raw is None or fn is None else fn(raw)

        def key_of(values: tuple[Any, ...]) -> dict[str, Any]:
            return {fields[k]: value(k, v) for k, v in zip(key_names, values, strict=True)}

        # the source rows as they are now: record, soft-deleted, cursor time
        current: dict[str, tuple[dict[str, Any], bool, int | None]] = {}
        keys = [k for _, k, _ in upserts]
        cols = [table.c[k] for k in key_names]
        now = now_ms()
        try:
            with connector.engine.connect() as conn:  # its errors hide parameters too
                for cond in keys_in(cols, keys, CHUNK):
                    for row in conn.execute(sa.select(*selected).where(cond)).mappings():
                        record = {fields[c]: value(c, row[c]) for c in fields} | defaults
                        gone = bool(flag) and is_deleted(row[flag])
                        text = key_json({fields[k]: record[fields[k]] for k in key_names})
                        current[text] = (record, gone, cursor_ms(row[cursor]) if cursor else None)
        except sa.exc.SQLAlchemyError as exc:
            raise read_error(exc, f"repair: rows of source table {stream.name}") from exc
        source = connector.source_block(stream)
        prefix = f"{connector.name}\x1f{stream.name}\x1freconcile"
        events: list[dict[str, Any]] = []
        counts = {"c": 0, "u": 0, "d": 0}

        def add(
            op: str, key: dict[str, Any], record: dict[str, Any] | None, ts: int, seen: int | None
        ) -> None:
            text = key_json(key)
            version = f"{_version(record)}@{'-' if seen is None else seen}"
            events.append(
                make_event(
                    op=op,
                    key=key,
                    source=source,
                    ts_ms=ts,
                    before=record if op == "d" else None,
                    after=None if op == "d" else record,
                    event_id=event_id_for(prefix, text, op, version),
                )
            )
            counts[op] += 1

        for status, native, ck in upserts:
            key = key_of(native)
            seen = stored.get(ck)
            found = current.get(key_json(key))
            if found is None:  # gone from the source meanwhile
                add("d", key, None, repair_ts(None, seen, now), seen)
                continue
            record, gone, cursor_time = found
            ts = repair_ts(cursor_time, seen, now)
            if gone:
                add("d", key, record, ts, seen)
            else:
                add("c" if status == "missing" else "u", key, record, ts, seen)
        for native, ck in deletes:
            seen = stored.get(ck)
            add("d", key_of(native), None, repair_ts(None, seen, now), seen)
    with Publisher(settings, registry, origin=broker_guard.REPAIR) as publisher:
        sent = publisher.publish(pair.topic, events, on_invalid="dlq", dataset=pair.dataset)
    return {
        "topic": pair.topic,
        "published": sent.sent,
        "dlq": sent.dlq,
        "ops": counts,
        "sink": pair.sink_name,
        "then": f"lgsp connector run {pair.sink_name}",
    }
