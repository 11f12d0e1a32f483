"""Reading a dataset's current-state store by key.

A key is the dataset's key value as text (one key field), or an object of its key fields.
Each value becomes the key column's type with the sink's own rules (``key_value`` and the
dialect's converter), so a key reads the row its event wrote; a value that cannot be of that
type (``abc`` for a number) names no record. Rows come back as the record the topic carried
(JSON text of nested values parsed, UTC timestamps given their zone), ready for the grant's
masking (``bus.catalog.masking.mask_record``).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from bus.catalog.datasets import get_dataset
from bus.context import Context
from bus.envelope import record_schema_of
from bus.errors import NotFoundError, RetriableError
from bus.lookup.store import registered_store, store_name, store_table
from bus.registry import subject_for
from bus.sync import connector_for
from bus.units import topic_name
from connectors.errors import ConnectorNotFoundError
from connectors.sql.typemap import Converter, column_name, key_value, type_mapper, unwrap
from connectors.sql.upsert import DELETED, VERSION

# keys per SELECT of a batch lookup (well under every driver's parameter limit)
KEYS_PER_QUERY = 500
_JSON_KINDS = ("record", "error", "array", "map")


class StoreNotReadyError(RetriableError):
    """The dataset has no lookup store yet (never synced): try again after a sync."""


@dataclass(frozen=True)
class Found:
    """A record's current state and the change time of the event that wrote it."""

    record: dict[str, Any]
    ts_ms: int | None


class StoreReader:
    """One dataset's store: its table reflected once, its key conversion, its queries."""

    def __init__(self, ctx: Context, dataset: str) -> None:
        info = get_dataset(ctx.settings, dataset)
        name = store_name(info.name)
        try:
            registered_store(ctx, info.name)
        except ConnectorNotFoundError:
            raise StoreNotReadyError(
                f"dataset {info.name} has no lookup store yet: run 'lgsp lookup sync {info.name}'"
            ) from None
        topic = topic_name(ctx.hierarchy, ctx.hierarchy.root.code, info.name)
        try:
            schema = record_schema_of(ctx.registry.latest(subject_for(topic)).schema)
        except NotFoundError:
            schema = info.record_schema
        self.dataset = info.name
        self.fields = {f["name"]: f for f in schema.get("fields", [])}
        self.key_fields = list(info.key_fields or schema.get("primary_key") or [])
        self.connector = connector_for(ctx, name)
        self.engine = self.connector.engine  # type: ignore[attr-defined]
        with self.engine.connect() as conn:
            table = self.connector.reflect(conn, store_table(info.name))  # type: ignore[attr-defined]
            if table is None:
                raise StoreNotReadyError(
                    f"the lookup store of {info.name} has no table yet (nothing reached the "
                    f"city topic, or no sync ran): run 'lgsp lookup sync {info.name}'"
                )
            mapper = type_mapper(conn, schema)
        self.naive_timestamps = mapper.naive_timestamps
        self.columns = {
            n: column_name(f) for n, f in self.fields.items() if column_name(f) in table.c
        }
        self.converters: dict[str, Converter | None] = {
            n: mapper.converter(self.fields[n]) for n in self.key_fields
        }
        keys = [table.c[column_name(self.fields[k])] for k in self.key_fields]
        wanted = [table.c[c] for c in self.columns.values()] + [table.c[VERSION]]
        live = sa.or_(table.c[DELETED].is_(None), table.c[DELETED] == sa.false())
        self._one = sa.select(*wanted).where(
            *[k == sa.bindparam(f"k{i}", type_=k.type) for i, k in enumerate(keys)], live
        )
        self._keys = keys
        self._wanted = wanted
        self._live = live

    def close(self) -> None:
        self.connector.close()

    # ---- keys ---------------------------------------------------------------------------

    def key_values(self, key: str | dict[str, Any]) -> tuple[Any, ...] | None:
        """The key's column values, or None when it cannot name a record of this dataset."""
        if isinstance(key, str) and len(self.key_fields) == 1:
            given: dict[str, Any] = {self.key_fields[0]: key}
        elif isinstance(key, str):
            try:
                parsed = json.loads(key)
            except ValueError:
                return None
            if not isinstance(parsed, dict):
                return None
            given = parsed
        else:
            given = key
        if set(given) != set(self.key_fields):
            return None
        out = []
        for name in self.key_fields:
            value = given[name]
            if not isinstance(value, str | int) or isinstance(value, bool):
                return None
            avro, _ = unwrap(self.fields[name]["type"])
            if not isinstance(value, str) and avro == "string":
                return None  # a number is not a text key (its leading zeros are gone)
            try:
                value = key_value(self.fields[name], value)
                convert = self.converters[name]
                out.append(convert(value) if convert is not None else value)
            except (ValueError, TypeError, ArithmeticError):
                return None
        return tuple(out)

    # ---- reads --------------------------------------------------------------------------

    def get(self, key: str | dict[str, Any]) -> Found | None:
        values = self.key_values(key)
        if values is None:
            return None
        params = {f"k{i}": v for i, v in enumerate(values)}
        row = self._query(lambda conn: conn.execute(self._one, params).first())
        return None if row is None else self._found(row)

    def get_many(self, keys: Sequence[str | dict[str, Any]]) -> list[Found | None]:
        """The current state of each key, in the order given (None: no such record)."""
        values = [self.key_values(k) for k in keys]
        wanted = sorted({v for v in values if v is not None}, key=repr)
        found: dict[tuple[Any, ...], Found] = {}
        target = self._keys[0] if len(self._keys) == 1 else sa.tuple_(*self._keys)
        for start in range(0, len(wanted), KEYS_PER_QUERY):
            chunk = wanted[start : start + KEYS_PER_QUERY]
            params = [v[0] for v in chunk] if len(self._keys) == 1 else chunk
            query = sa.select(*self._keys, *self._wanted).where(target.in_(params), self._live)
            rows = self._query(lambda conn, q=query: conn.execute(q).all())
            for row in rows:
                found[tuple(row[: len(self._keys)])] = self._found(row[len(self._keys) :])
        return [None if v is None else found.get(v) for v in values]

    def _query(self, run: Any) -> Any:
        try:
            with self.engine.connect() as conn:
                return run(conn)
        except SQLAlchemyError as exc:
            raise self.connector.connection_error(exc) from exc  # type: ignore[attr-defined]

    def _found(self, row: Sequence[Any]) -> Found:
        record: dict[str, Any] = {}
        for (name, _), value in zip(self.columns.items(), row, strict=False):
            record[name] = self._value(self.fields[name], value)
        version = row[len(self.columns)]
        return Found(record, int(version) if version is not None else None)

    def _value(self, field: dict[str, Any], value: Any) -> Any:
        if value is None:
            return None
        avro, _ = unwrap(field["type"])
        kind = avro.get("type") if isinstance(avro, dict) else avro
        logical = avro.get("logicalType") if isinstance(avro, dict) else None
        if (isinstance(avro, list) or kind in _JSON_KINDS) and isinstance(value, str):
            return json.loads(value)
        if (
            isinstance(logical, str)
            and logical.startswith("timestamp-")
            and isinstance(value, dt.datetime)
            and value.tzinfo is None
        ):
            return value.replace(tzinfo=dt.UTC)  # stored as its UTC wall time
        return value


class Readers:
    """One ``StoreReader`` per dataset, rebuilt after ``ttl_s`` (a schema that gained
    fields, a store moved) and whenever building one failed. One thread builds at a time:
    requests that find no fresh reader wait for that build instead of each building one."""

    def __init__(self, ctx: Context, ttl_s: float = 60.0) -> None:
        self.ctx = ctx
        self.ttl_s = ttl_s
        self._readers: dict[str, tuple[float, StoreReader]] = {}
        self._lock = threading.Lock()
        self._building = threading.Lock()

    def _fresh(self, dataset: str) -> StoreReader | None:
        with self._lock:
            held = self._readers.get(dataset)
        if held is not None and time.monotonic() - held[0] < self.ttl_s:
            return held[1]
        return None

    def get(self, dataset: str) -> StoreReader:
        reader = self._fresh(dataset)
        if reader is not None:
            return reader
        with self._building:
            reader = self._fresh(dataset)  # built while this thread waited
            if reader is not None:
                return reader
            now = time.monotonic()
            reader = StoreReader(self.ctx, dataset)
            with self._lock:
                old = self._readers.pop(dataset, None)
                self._readers[dataset] = (now, reader)
        if old is not None:
            old[1].close()
        return reader

    def close(self) -> None:
        with self._lock:
            for _, reader in self._readers.values():
                reader.close()
            self._readers.clear()
