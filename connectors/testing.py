"""Conformance kit: the same checks for any connector type, as a generated pytest class.

A connector type provides a ``Harness`` (how to make a source table, change rows, read the
target, and which configs are bad); ``conformance_suite(make_harness)`` returns a test class
with: discover, snapshot, incremental with ties, soft delete, idempotent re-apply,
out-of-order versions, a full round trip of awkward values, and bad configs. The checks talk
to the connector only through its SPI (``discover``, ``read_stream``, ``write``), with no
broker, so they are fast. In a test module::

    TestSQLite = conformance_suite(lambda tmp_path, unique: SqlHarness(
        "sqlite", f"sqlite:///{tmp_path}/kit.db", unique))

``SqlHarness`` serves every SQL dialect (SQLAlchemy Core, identifiers quoted).
"""

from __future__ import annotations

import abc
import datetime as dt
import decimal
import json
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastavro import parse_schema

from bus.envelope import envelope_schema
from connectors import plugins as connector_types
from connectors.base import Batch, Connector, Stream
from connectors.errors import ConnectorConfigError

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
BASE_TIME = dt.datetime(2025, 7, 1, 8, 0, 0)
DATASET = "kit.record"


def standard_rows(count: int, *, start: int = 1, changed_at: dt.datetime = BASE_TIME) -> list:
    """Rows of the standard table: Vietnamese text (some decomposed), decimals, NULLs."""
    names = ["Nguyễn Văn An", "Trần Thị Bích", "Lê Đức Thọ", "Phạm Ngọc Ánh", None]
    rows = []
    for i in range(start, start + count):
        label = names[i % len(names)]
        if label is not None and i % 2:
            label = unicodedata.normalize("NFD", label)  # stored decomposed: read as NFC
        rows.append(
            {
                "id": i,
                "label": label,
                "amount": None if i % 4 == 0 else decimal.Decimal(f"{i * 1000}.{i % 100:02d}"),
                "changed_at": changed_at,
                "deleted": False,
            }
        )
    return rows


class Harness(abc.ABC):
    """What the kit needs from a connector type."""

    type_name: str
    source_table: str
    sink_table: str

    @abc.abstractmethod
    def create_source(self) -> None:
        """Create the standard source table (id PK, label, amount, changed_at, deleted)."""

    @abc.abstractmethod
    def insert(self, rows: list[dict[str, Any]]) -> None: ...

    @abc.abstractmethod
    def update(self, row_id: int, values: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def source_rows(self) -> dict[int, dict[str, Any]]:
        """The source rows by id, values normalised with ``normalise``."""

    @abc.abstractmethod
    def sink_rows(self) -> dict[int, dict[str, Any]]:
        """The target rows by id (version columns left out), values normalised."""

    @abc.abstractmethod
    def source_config(self, **table: Any) -> dict[str, Any]: ...

    @abc.abstractmethod
    def sink_config(self, **table: Any) -> dict[str, Any]: ...

    @abc.abstractmethod
    def bad_configs(self) -> list[tuple[dict[str, Any], str]]:
        """(config, the field its error must name) pairs."""

    def cleanup(self) -> None:  # noqa: B027 - optional hook
        """Drop what the harness created."""


def normalise(value: Any) -> Any:
    """Values comparable across dialects: NFC text, plain decimals, naive UTC timestamps."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, float):
        return decimal.Decimal(str(value)).normalize()
    if isinstance(value, decimal.Decimal):
        return value.normalize()
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, bool):
        return value
    return value


class SqlHarness(Harness):
    """The standard tables in one SQL database (SQLAlchemy Core; identifiers quoted)."""

    def __init__(self, type_name: str, url: str, unique: str, *, batch_size: int = 3) -> None:
        self.type_name = type_name
        self.url = url
        self.engine = sa.create_engine(url)
        self.source_table = f"kit_src_{unique}"
        self.sink_table = f"kit_dst_{unique}"
        self.batch_size = batch_size
        self.meta = sa.MetaData()
        self.table = sa.Table(
            self.source_table,
            self.meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("label", sa.String(100)),
            sa.Column("amount", sa.Numeric(12, 2)),
            sa.Column("changed_at", sa.DateTime, nullable=False),
            sa.Column("deleted", sa.Boolean, nullable=False),
            mysql_charset="utf8mb4",
        )

    def create_source(self) -> None:
        self.meta.create_all(self.engine)

    def insert(self, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)

    def update(self, row_id: int, values: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.id == row_id).values(**values))

    def _rows(self, table: sa.Table) -> dict[int, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(table)).mappings().all()
        out = {}
        for row in rows:
            values = {
                k: normalise(v)
                for k, v in row.items()
                if not k.startswith("_lgsp_") and k in ("id", "label", "amount", "changed_at")
            }
            if "deleted" in row:
                values["deleted"] = bool(row["deleted"])
            out[int(row["id"])] = values
        return out

    def source_rows(self) -> dict[int, dict[str, Any]]:
        return self._rows(self.table)

    def sink_rows(self) -> dict[int, dict[str, Any]]:
        target = sa.Table(self.sink_table, sa.MetaData(), autoload_with=self.engine)
        return self._rows(target)

    def _base(self, role: str, name: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "name": name,
            "type": self.type_name,
            "role": role,
            "agency": "kit-agency",
            "unit": "26734",
            "connection": {"url": self.url, "connect_timeout_s": 5},
            "batch_size": self.batch_size,
            "tables": tables,
        }

    def source_config(self, **table: Any) -> dict[str, Any]:
        entry = {"table": self.source_table, "dataset": DATASET, **table}
        return self._base("source", "kit-source", [entry])

    def sink_config(self, **table: Any) -> dict[str, Any]:
        entry = {"table": self.sink_table, "dataset": DATASET, **table}
        return self._base("sink", "kit-sink", [entry])

    def bad_configs(self) -> list[tuple[dict[str, Any], str]]:
        good = self.source_config(mode="incremental", cursor="changed_at")
        table = good["tables"][0]
        return [
            ({**good, "name": "Bad Name"}, "name"),
            ({**good, "role": "both"}, "role"),
            ({**good, "tables": [{**table, "mode": "incremental", "cursor": None}]}, "cursor"),
            ({**good, "tables": [{**table, "curser": "changed_at"}]}, "curser"),
            ({**good, "tables": [{**table, "dataset": "Not A Dataset"}]}, "dataset"),
            ({**good, "connection": {"url": "postgresql://app:secret@db/x"}}, "connection.url"),
            ({**good, "tables": []}, "tables"),
        ]

    def cleanup(self) -> None:
        with self.engine.begin() as conn:
            for name in (self.source_table, self.sink_table):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {self._quoted(name)}"))
        self.engine.dispose()

    def _quoted(self, name: str) -> str:
        return self.engine.dialect.identifier_preparer.quote(name)


# ---- the suite ------------------------------------------------------------------------------


def _read(connector: Connector, position: dict[str, Any] | None = None) -> list[Batch]:
    [stream] = connector.discover()
    return list(connector.read_stream(stream, position))


def _events(batches: list[Batch]) -> list[dict[str, Any]]:
    return [e for b in batches for e in b.events]


def _write_all(sink: Connector, batches: list[Batch], stream: Stream) -> None:
    for batch in batches:
        sink.write(Batch(sink.config.tables[0].table, batch.events, schema=stream.record_schema))


def conformance_suite(make_harness: Callable[[Path, str], Harness]) -> type:
    """A pytest class checking a connector type through ``make_harness(tmp_path, unique)``."""

    class ConnectorConformance:
        @pytest.fixture
        def harness(self, tmp_path: Path) -> Iterator[Harness]:
            h = make_harness(tmp_path, uuid.uuid4().hex[:8])
            try:
                h.create_source()
                yield h
            finally:
                h.cleanup()

        def _source(self, h: Harness, **table: Any) -> Connector:
            return connector_types.build(h.source_config(**table))

        def _sink(self, h: Harness, **table: Any) -> Connector:
            return connector_types.build(h.sink_config(**table))

        def test_discover(self, harness: Harness) -> None:
            with self._source(harness, mode="incremental", cursor="changed_at") as source:
                [stream] = source.discover()
            assert [c.name for c in stream.columns] == [
                "id",
                "label",
                "amount",
                "changed_at",
                "deleted",
            ]
            assert stream.primary_key == ["id"]
            schema = stream.record_schema
            fields = {f["name"]: f["type"] for f in schema["fields"]}
            assert fields["amount"] == [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            ]
            # micros where the column keeps more than milliseconds
            assert fields["changed_at"]["logicalType"].startswith("local-timestamp-")
            assert fields["label"] == ["null", "string"]
            assert schema["primary_key"] == ["id"]
            parse_schema(envelope_schema(schema, SCHEMAS_DIR))

        def test_snapshot(self, harness: Harness) -> None:
            harness.insert(standard_rows(5))
            with self._source(harness, mode="snapshot") as source:
                first = _read(source)
                again = _read(source, first[-1].state)
            events = _events(first)
            assert [e["op"] for e in events] == ["r"] * 5
            assert [json.loads(e["key"])["id"] for e in events] == [1, 2, 3, 4, 5]
            assert first[-1].state is not None and first[-1].state["done"] is True
            assert len(_events(again)) == 5  # a finished snapshot starts a new one
            by_id = {e["after"]["id"]: e["after"] for e in events}
            assert by_id[1]["label"] == unicodedata.normalize("NFC", "Trần Thị Bích")
            assert by_id[1]["amount"] == decimal.Decimal("1000.01")
            assert by_id[4]["amount"] is None and by_id[4]["label"] is None

        def test_incremental_with_ties(self, harness: Harness) -> None:
            harness.insert(standard_rows(7))  # seven rows share one cursor value
            with self._source(harness, mode="incremental", cursor="changed_at") as source:
                [stream] = source.discover()
                reader = source.read_stream(stream, None)
                first = next(reader)
                reader.close()  # the run stops after one batch
                rest = _read(source, first.state)
                ids = [json.loads(e["key"])["id"] for e in first.events + _events(rest)]
                assert ids == [1, 2, 3, 4, 5, 6, 7]
                # new rows with the very cursor value of the position: not skipped
                harness.insert(standard_rows(3, start=8))
                later = _read(source, rest[-1].state)
                assert [json.loads(e["key"])["id"] for e in _events(later)] == [8, 9, 10]
                assert {e["op"] for e in _events(later)} == {"u"}
                assert _read(source, later[-1].state) == []

        def test_delete(self, harness: Harness) -> None:
            harness.insert(standard_rows(3))
            with (
                self._source(
                    harness, mode="incremental", cursor="changed_at", deleted_flag="deleted"
                ) as source,
                self._sink(harness) as sink,
            ):
                [stream] = source.discover()
                first = _read(source)
                _write_all(sink, first, stream)
                harness.update(2, {"deleted": True, "changed_at": BASE_TIME + dt.timedelta(1)})
                later = _read(source, first[-1].state)
                [event] = _events(later)
                assert event["op"] == "d" and event["after"] is None
                assert event["before"]["id"] == 2
                _write_all(sink, later, stream)
            assert sorted(harness.sink_rows()) == [1, 3]

        def test_idempotent_reapply(self, harness: Harness) -> None:
            harness.insert(standard_rows(6))
            with (
                self._source(harness, mode="incremental", cursor="changed_at") as source,
                self._sink(harness) as sink,
            ):
                [stream] = source.discover()
                batches = _read(source)
                _write_all(sink, batches, stream)
                once = harness.sink_rows()
                _write_all(sink, batches, stream)
                _write_all(sink, batches[:1], stream)
            assert harness.sink_rows() == once
            assert once == {
                k: {c: v for c, v in row.items()} for k, row in harness.source_rows().items()
            }

        def test_out_of_order_versions(self, harness: Harness) -> None:
            harness.insert(standard_rows(2))
            with (
                self._source(harness, mode="incremental", cursor="changed_at") as source,
                self._sink(harness) as sink,
            ):
                [stream] = source.discover()
                old = _read(source)
                harness.update(1, {"label": "Mới", "changed_at": BASE_TIME + dt.timedelta(1)})
                new = _read(source, old[-1].state)
                _write_all(sink, new, stream)  # the newer version arrives first
                _write_all(sink, old, stream)  # then the older one
            rows = harness.sink_rows()
            assert rows[1]["label"] == "Mới"
            assert rows[2]["id"] == 2  # a row only in the older batch is still applied

        def test_round_trip_values(self, harness: Harness) -> None:
            rows = standard_rows(9)
            rows[0]["changed_at"] = BASE_TIME + dt.timedelta(milliseconds=123)
            harness.insert(rows)
            with (
                self._source(harness, mode="snapshot") as source,
                self._sink(harness) as sink,
            ):
                [stream] = source.discover()
                _write_all(sink, _read(source), stream)
            assert harness.sink_rows() == harness.source_rows()

        def test_bad_config(self, harness: Harness) -> None:
            cls = connector_types.connector_class(harness.type_name)
            for config, field in harness.bad_configs():
                with pytest.raises(ConnectorConfigError) as caught:
                    cls(config)
                assert any(field in e for e in caught.value.errors), (field, caught.value.errors)
                assert "secret" not in str(caught.value)  # values are never echoed

    return ConnectorConformance
