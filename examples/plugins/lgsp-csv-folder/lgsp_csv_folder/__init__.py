"""A CSV-folder source: each ``<table>.csv`` in ``connection.path`` is a table.

Written against the connector interface only (``connectors.base``, ``connectors.config``,
``connectors.errors``). CSV holds no types, so a table declares its columns and their types
(``string``, ``int``, ``long``, ``boolean``, ``timestamp``, ``decimal(p,s)``) and its key; an
empty cell is NULL. ``mode: incremental`` with a ``cursor`` column (a timestamp or an integer)
reads the rows after the last position in (cursor, key) order, so rows sharing a cursor value
are never skipped; without a cursor each read is a snapshot. A ``deleted_flag`` column that
is true makes the row a delete.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import re
import time
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from connectors.base import Batch, Column, Connector, Stream, event_id_for, key_json
from connectors.config import ConnectorConfig, Strict, TableConfig
from connectors.errors import (
    ColumnNotFoundError,
    ConnectorConfigError,
    FieldError,
    TableNotFoundError,
)

TYPE = re.compile(r"^(string|int|long|boolean|timestamp|decimal\(\d{1,2},\d{1,2}\))$")
TYPES = "string, int, long, boolean, timestamp or decimal(p,s)"


class CsvFolder(Strict):
    path: Path


class CsvTable(TableConfig):
    key: list[str] = Field(min_length=1)
    columns: dict[str, str] = Field(min_length=1)
    mode: Literal["snapshot", "incremental"] = "snapshot"
    cursor: str | None = None
    deleted_flag: str | None = None


class CsvFolderConfig(ConnectorConfig):
    connection: CsvFolder
    tables: list[CsvTable] = Field(min_length=1)  # type: ignore[assignment]

    def problems(self) -> list[FieldError]:
        out = super().problems()
        for i, t in enumerate(self.tables):
            for name, kind in t.columns.items():
                if not re.match(TYPE, kind):
                    out.append(
                        FieldError(f"tables[{i}].columns.{name}", f"expected one of {TYPES}")
                    )
            named = [("key", k) for k in t.key] + [
                ("cursor", t.cursor),
                ("deleted_flag", t.deleted_flag),
            ]
            for what, name in named:
                if name is not None and name not in t.columns:
                    out.append(
                        FieldError(f"tables[{i}].{what}", f"{name!r} is not one of the columns")
                    )
            if t.mode == "incremental" and t.cursor is None:
                out.append(FieldError(f"tables[{i}].cursor", "required with mode: incremental"))
        return out


def avro_type(kind: str) -> Any:
    if kind.startswith("decimal("):
        precision, scale = (int(n) for n in kind[8:-1].split(","))
        return {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    if kind == "timestamp":
        return {"type": "long", "logicalType": "local-timestamp-micros"}
    return kind


def parse(kind: str, text: str) -> Any:
    """A CSV cell as its column's value (an empty cell is NULL)."""
    if text == "":
        return None
    if kind in ("int", "long"):
        return int(text)
    if kind == "boolean":
        return text.strip().lower() in ("1", "true", "yes")
    if kind == "timestamp":
        value = dt.datetime.fromisoformat(text)
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    if kind.startswith("decimal("):
        return decimal.Decimal(text)
    return unicodedata.normalize("NFC", text)


def epoch_ms(value: Any) -> int:
    if isinstance(value, dt.datetime):
        return int(value.replace(tzinfo=dt.UTC).timestamp() * 1000)
    return int(value)


class CsvFolderConnector(Connector):
    type_name = "csv-folder"
    config_model = CsvFolderConfig
    can_source = True
    can_sink = False
    supports_incremental = True
    supports_soft_delete = True

    config: CsvFolderConfig

    def _file(self, table: str) -> Path:
        return self.config.connection.path / f"{table}.csv"

    def check(self) -> None:
        if not self.config.connection.path.is_dir():
            raise ConnectorConfigError(
                [
                    FieldError(
                        "connection.path",
                        f"the folder {self.config.connection.path} does not exist",
                    )
                ],
                name=self.name,
            )

    def discover(self) -> list[Stream]:
        self.check()
        streams: list[Stream] = []
        problems: list[FieldError] = []
        for i, t in enumerate(self.config.tables):
            try:
                streams.append(self._stream(t))
            except (TableNotFoundError, ColumnNotFoundError) as exc:
                problems.append(FieldError(f"tables[{i}]", f"({t.table}) {exc}"))
        if problems:
            raise ConnectorConfigError(problems, name=self.name)
        return streams

    def _stream(self, t: CsvTable) -> Stream:
        path = self._file(t.table)
        if not path.is_file():
            raise TableNotFoundError(f"table {t.table!r}: no file {path.name} in the folder")
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
        missing = [c for c in t.columns if c not in header]
        if missing:
            raise ColumnNotFoundError(f"column {missing[0]!r} is not in the header of {path.name}")
        required = {*t.key, t.cursor}  # a row without them is not read
        columns = [
            Column(name, name, kind, avro_type(kind), name not in required, name in t.key)
            for name, kind in t.columns.items()
        ]
        namespace, _, record = t.dataset.rpartition(".")
        fields = [
            {"name": c.name, "type": ["null", c.avro_type], "default": None}
            if c.nullable
            else {"name": c.name, "type": c.avro_type}
            for c in columns
        ]
        schema = {
            "type": "record",
            "name": record,
            "namespace": namespace,
            "fields": fields,
            "primary_key": list(t.key),
        }
        return Stream(t.table, t.dataset, columns, list(t.key), schema, t)

    def _rows(self, t: CsvTable) -> list[dict[str, Any]]:
        with self._file(t.table).open(newline="", encoding="utf-8") as f:
            return [
                {name: parse(kind, row[name]) for name, kind in t.columns.items()}
                for row in csv.DictReader(f)
            ]

    def read_stream(self, stream: Stream, position: dict[str, Any] | None) -> Iterator[Batch]:
        t: CsvTable = stream.config  # type: ignore[assignment]
        order = ([t.cursor] if t.mode == "incremental" and t.cursor else []) + list(t.key)
        rows = [r for r in self._rows(t) if all(r[c] is not None for c in order)]
        rows.sort(key=lambda r: [_sortable(r[c]) for c in order])
        resume = position or {}
        incremental = t.mode == "incremental"
        if resume.get("mode") != t.mode or (not incremental and resume.get("done")):
            resume = {}  # another mode's position, or a finished snapshot: start again
        after = resume.get("after")
        if after is not None:
            rows = [r for r in rows if [_sortable(r[c]) for c in order] > after]
        op = "u" if incremental and after is not None else "r"
        read_ms = int(time.time() * 1000)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start : start + self.batch_size]
            after = [_sortable(chunk[-1][c]) for c in order]
            state = {"mode": t.mode, "after": after, "done": start + len(chunk) == len(rows)}
            events = [self._event(stream, t, r, op, read_ms) for r in chunk]
            yield Batch(stream.name, events, state, stream.record_schema)
        if not rows and not incremental:
            yield Batch(stream.name, [], {"mode": t.mode, "done": True}, stream.record_schema)

    def _event(
        self, stream: Stream, t: CsvTable, row: dict[str, Any], op: str, read_ms: int
    ) -> dict[str, Any]:
        if t.deleted_flag and row[t.deleted_flag]:
            op = "d"
        cursor = row[t.cursor] if t.cursor else None
        version = json.dumps(_sortable(cursor)) if cursor is not None else str(read_ms)
        key = {k: row[k] for k in t.key}
        identity = key_json(key)
        return self.event(
            stream=stream,
            op=op,
            key=key,
            record=row,
            ts_ms=epoch_ms(cursor) if cursor is not None else read_ms,
            position=str(_sortable(cursor)) if cursor is not None else None,
            event_id=event_id_for(f"{self.name}\x1f{stream.name}", identity, op, version),
        )


def _sortable(value: Any) -> Any:
    """A position value that JSON keeps and that orders as the column does (timestamps as
    ISO text; a decimal as text, so order by decimal columns is not supported)."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value
