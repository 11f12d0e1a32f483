"""The connector SPI: one class per connector type with a small surface.

A source implements ``check``, ``discover`` and ``read_stream`` (``read(state)`` loops over
the streams); a sink implements ``check``, ``discover`` and ``write(batch)``, which must be
idempotent. What a type can do is declared as class flags; its configuration is one pydantic
model (``config_model``), validated when the object is built, every error at once.
"""

from __future__ import annotations

import abc
import hashlib
import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from bus.envelope import canonical_key, make_event
from bus.errors import DataError
from bus.units import Hierarchy
from connectors.config import ConnectorConfig, TableConfig, validate_model
from connectors.contract import DatasetLookup
from connectors.errors import ConnectorConfigError, FieldError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Column:
    """A discovered column: its database name, Avro field name and types."""

    name: str
    field: str
    sql_type: str
    avro_type: Any
    nullable: bool
    primary_key: bool = False


@dataclass
class Stream:
    """A discovered table (or endpoint): columns, key and the Avro record schema."""

    name: str
    dataset: str
    columns: list[Column]
    primary_key: list[str]
    record_schema: dict[str, Any]
    config: TableConfig
    warnings: list[str] = field(default_factory=list)
    exists: bool = True
    # how the table feeds its catalogued dataset (None: the schema is derived from the source)
    contract: Any = None

    @property
    def key_fields(self) -> list[str]:
        by_name = {c.name: c.field for c in self.columns}
        return [by_name.get(k, k) for k in self.primary_key]


@dataclass
class Invalid:
    """A source row that does not fit its dataset's record schema: the event as read (the
    record holding the published columns' values as they are) and a reason naming the column
    and field, never the value. The caller parks it in the topic's DLQ."""

    event: dict[str, Any]
    error: DataError


@dataclass
class Batch:
    """Events of one stream: read from a source with the position after them, or to write.

    ``invalid`` holds the rows of a source batch that could not be converted; the position
    after the batch covers them too, so they must be parked before it is committed.
    """

    stream: str
    events: list[dict[str, Any]]
    state: dict[str, Any] | None = None
    schema: dict[str, Any] | None = None
    invalid: list[Invalid] = field(default_factory=list)


@dataclass
class Rejected:
    """One event a sink refused, with a message naming the table and the reason class.
    ``certain``: the value itself cannot be stored by the target's database whatever the
    table's definition (a NaN in MariaDB), so such refusals never count as a broken target."""

    index: int
    error: Exception
    certain: bool = False


@dataclass
class WriteReport:
    applied: int = 0
    deleted: int = 0
    superseded: int = 0
    rejected: list[Rejected] = field(default_factory=list)


class Connector(abc.ABC):
    """Base of every connector type; subclasses declare flags and implement a few methods."""

    type_name: ClassVar[str] = ""
    config_model: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    # capabilities
    can_source: ClassVar[bool] = True
    can_sink: ClassVar[bool] = False
    supports_incremental: ClassVar[bool] = False
    supports_soft_delete: ClassVar[bool] = False
    supports_upsert: ClassVar[bool] = False
    streams_rows: ClassVar[bool] = False
    # the catalogue's datasets, set by the registration and the sync run: a source whose
    # dataset is catalogued conforms to it (connectors that do not look leave it unused)
    datasets: DatasetLookup | None = None

    def __init__(
        self,
        config: ConnectorConfig | Mapping[str, Any],
        *,
        hierarchy: Hierarchy | None = None,
        batch_size: int = 500,
    ) -> None:
        self.config = self.validate_config(config, hierarchy=hierarchy)
        self.hierarchy = hierarchy
        self.batch_size = self.config.batch_size or batch_size

    # ---- configuration -------------------------------------------------------------------
    @classmethod
    def validate_config(
        cls, config: ConnectorConfig | Mapping[str, Any], *, hierarchy: Hierarchy | None = None
    ) -> ConnectorConfig:
        """The validated config; every problem at once as ``ConnectorConfigError``."""
        data = config.stored() if isinstance(config, ConnectorConfig) else dict(config)
        extra = []
        role = data.get("role")
        if role == "source" and not cls.can_source:
            extra.append(FieldError("role", f"connector type {cls.type_name!r} cannot be a source"))
        if role == "sink" and not cls.can_sink:
            extra.append(FieldError("role", f"connector type {cls.type_name!r} cannot be a sink"))
        return validate_model(cls.config_model, data, hierarchy=hierarchy, extra_errors=extra)

    @classmethod
    def normalize(cls, data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """A file's mapping with paths made absolute against the file's folder (default: as is)."""
        return data

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def role(self) -> str:
        return self.config.role

    def table_config(self, table: str) -> TableConfig:
        for t in self.config.tables:
            if t.table == table:
                return t
        raise ConnectorConfigError(
            [FieldError("tables", f"no table {table!r} in connector {self.name!r}")]
        )

    # ---- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (default: nothing to release)."""

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the surface ---------------------------------------------------------------------
    @abc.abstractmethod
    def check(self) -> None:
        """Reach the system within the configured timeout; raise a clear error otherwise."""

    @abc.abstractmethod
    def discover(self) -> list[Stream]:
        """Every configured table with columns, key and record schema (all problems at once)."""

    def discover_stream(self, table: str) -> Stream:
        """One configured table (the default discovers all and picks one)."""
        for stream in self.discover():
            if stream.name == table:
                return stream
        raise ConnectorConfigError(
            [FieldError("tables", f"no table {table!r} in connector {self.name!r}")]
        )

    def read_stream(self, stream: Stream, position: dict[str, Any] | None) -> Iterator[Batch]:
        """Batches of change events from ``position`` on, each with the position after it."""
        raise NotImplementedError(f"connector type {self.type_name!r} cannot be a source")

    def read(self, state: Mapping[str, dict[str, Any] | None] | None = None) -> Iterator[Batch]:
        """Every stream's batches in turn; ``state`` maps a table to its last position."""
        state = state or {}
        for stream in self.discover():
            yield from self.read_stream(stream, state.get(stream.name))

    def log_status(self) -> dict[str, Any] | None:
        """Log-based sources: their replication slot as ``lgsp connector show`` reports it
        (name, retained WAL in bytes, lost or missing); None for a connector without one."""
        return None

    def drop_log(self) -> dict[str, Any] | None:
        """Log-based sources: drop what the server keeps for the connector (its replication
        slot and publication) when it is removed; what was dropped, None when nothing."""
        return None

    def prepare(self, table: str, record_schema: dict[str, Any], *, existing: bool = False) -> Any:
        """Sinks: make the target ready for ``record_schema`` (default: nothing to do).
        ``existing``: an earlier run wrote to it, so it must not be created again."""
        return None

    def plan_sink(self, table: str, record_schema: dict[str, Any]) -> list[str]:
        """Sinks: what ``prepare`` would change, without changing it (default: nothing)."""
        return []

    def write(self, batch: Batch) -> WriteReport:
        """Apply a batch idempotently (upsert by key, newest version wins)."""
        raise NotImplementedError(f"connector type {self.type_name!r} cannot be a sink")

    # ---- helpers for sources -------------------------------------------------------------
    def source_block(self, stream: Stream) -> dict[str, Any]:
        """The ``source`` of this connector's events for ``stream`` (position left empty)."""
        return {
            "table": stream.name,
            "connector": self.name,
            "position": None,
            "agency": self.config.agency,
            "unit": self.config.unit,
            "system": self.config.source_system,
        }

    def event(
        self,
        *,
        stream: Stream,
        op: str,
        key: dict[str, Any],
        record: dict[str, Any],
        ts_ms: int,
        position: str | None,
        event_id: str,
    ) -> dict[str, Any]:
        """A change event with this connector's ``source`` block (as ``make_event`` builds)."""
        deleted = op == "d"
        source = self.source_block(stream)
        source["position"] = position
        return make_event(
            op=op,
            key=key,
            ts_ms=ts_ms,
            source=source,
            before=record if deleted else None,
            after=None if deleted else record,
            event_id=event_id,
        )


_KEY_NAMES: dict[str, str] = {}


def key_json(key: dict[str, Any]) -> str:
    """``canonical_key(key)``, with a fast path for the common one-field text or integer key."""
    if len(key) == 1:
        ((name, value),) = key.items()
        kind = type(value)
        if kind is int or (kind is str and value.isascii()):
            quoted = _KEY_NAMES.get(name)
            if quoted is None:
                quoted = _KEY_NAMES.setdefault(name, json.dumps(name, ensure_ascii=False))
            if kind is str and value.isalnum():  # nothing to escape
                return f'{{{quoted}:"{value}"}}'
            return "{" + quoted + ":" + json.dumps(value) + "}"
    return canonical_key(key)


def event_id_for(prefix: str, key_text: str, op: str, version: str) -> str:
    """A stable event id: the same change (connector, table, key, op, version) gives the
    same id on every retry or replay."""
    text = f"{prefix}\x1f{key_text}\x1f{op}\x1f{version}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def now_ms() -> int:
    return int(time.time() * 1000)
