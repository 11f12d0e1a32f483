"""The SQL sink on SQLite: only rows refused for their values are reported (for the DLQ);
a refusal of the statement (a dropped column, a read-only file) stops the table, a locked
file is retriable, and no error text carries a row value."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.errors import RetriableError
from connectors.base import Batch, Connector
from connectors.errors import RowRejectedError, TableStoppedError
from connectors.plugins import build

SECRET_CODE = "079123456789"  # a citizen-ID-like value that must never appear in an error

RECORD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Resident",
    "namespace": "dancu",
    "primary_key": ["id"],
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "code", "type": "string"},
        {
            "name": "seen_at",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            "default": None,
        },
    ],
}


def event(i: int, code: str, *, op: str = "u", ts: int = 1000, **extra: Any) -> dict[str, Any]:
    record = {"id": i, "code": code, "seen_at": None}
    return {
        "event_id": f"e{i}-{ts}",
        "op": op,
        "ts_ms": ts,
        "source": {"agency": "a", "unit": "79", "system": "s"},
        "key": json.dumps({"id": i}),
        "before": record if op == "d" else None,
        "after": None if op == "d" else record,
        **extra,
    }


def sink(url: str, timeout: float = 3.0) -> Connector:
    return build(
        {
            "name": "copy",
            "type": "sqlite",
            "role": "sink",
            "agency": "cong-an-tp",
            "unit": "79",
            "connection": {"url": url, "connect_timeout_s": timeout},
            "tables": [{"table": "resident", "dataset": "dancu.resident"}],
        }
    )


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """A target table whose ``code`` column refuses values longer than 12 characters."""
    path = tmp_path / "copy.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE resident (id INTEGER PRIMARY KEY, "
                "code TEXT NOT NULL CHECK (length(code) <= 12), seen_at DATETIME, "
                "_lgsp_ts_ms BIGINT, _lgsp_event_id VARCHAR(64), _lgsp_deleted BOOLEAN)"
            )
        )
    engine.dispose()
    yield path


def rows(path: Path) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        out = [tuple(r) for r in conn.execute(sa.text("SELECT id, code FROM resident ORDER BY id"))]
    engine.dispose()
    return out


def test_the_engine_hides_sql_parameters(db: Path) -> None:
    connector = sink(f"sqlite:///{db}")
    assert connector.engine.hide_parameters is True
    with pytest.raises(sa.exc.IntegrityError) as caught, connector.engine.begin() as conn:
        conn.execute(
            sa.text("INSERT INTO resident (id, code) VALUES (:id, :code)"),
            {"id": 1, "code": SECRET_CODE + "-too-long"},
        )
    assert SECRET_CODE not in str(caught.value)


def test_one_bad_row_among_good_ones_is_reported_alone(db: Path) -> None:
    connector = sink(f"sqlite:///{db}")
    connector.prepare("resident", RECORD_SCHEMA)
    events = [event(1, "A1"), event(2, SECRET_CODE + "-too-long"), event(3, "C3")]
    report = connector.write(Batch("resident", events))
    assert (report.applied, [r.index for r in report.rejected]) == (2, [1])
    error = report.rejected[0].error
    assert isinstance(error, RowRejectedError)
    assert "SQLITE_CONSTRAINT_CHECK" in str(error) and SECRET_CODE not in str(error)
    assert rows(db) == [(1, "A1"), (3, "C3")]


def test_a_dropped_column_stops_the_table_and_reports_no_row(db: Path) -> None:
    connector = sink(f"sqlite:///{db}")
    connector.prepare("resident", RECORD_SCHEMA)
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE resident DROP COLUMN seen_at"))
    engine.dispose()
    with pytest.raises(TableStoppedError, match="SQLITE_ERROR") as caught:
        connector.write(Batch("resident", [event(1, "A1"), event(2, "B2")]))
    assert "no row was parked" in str(caught.value)
    assert rows(db) == []


def test_a_read_only_database_stops_the_table(db: Path) -> None:
    writer = sink(f"sqlite:///{db}")
    writer.prepare("resident", RECORD_SCHEMA)
    writer.write(Batch("resident", [event(1, "A1")]))
    writer.close()
    reader = sink(f"sqlite:///file:{db}?mode=ro&uri=true")
    reader.prepare("resident", RECORD_SCHEMA)  # nothing to change: the table is ready
    with pytest.raises(TableStoppedError, match="read-only"):
        reader.write(Batch("resident", [event(2, "B2"), event(3, "C3")]))
    assert rows(db) == [(1, "A1")]


def test_a_locked_database_is_retriable(db: Path) -> None:
    connector = sink(f"sqlite:///{db}", timeout=0.1)
    connector.prepare("resident", RECORD_SCHEMA)
    holder = sqlite3.connect(db)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        with pytest.raises(RetriableError):
            connector.write(Batch("resident", [event(1, "A1"), event(2, "B2")]))
    finally:
        holder.rollback()
        holder.close()
    assert connector.write(Batch("resident", [event(1, "A1")])).applied == 1


def test_an_event_that_cannot_become_a_row_is_reported_alone(db: Path) -> None:
    connector = sink(f"sqlite:///{db}")
    connector.prepare("resident", RECORD_SCHEMA)
    bad = event(2, "B2")
    bad["after"]["seen_at"] = SECRET_CODE  # not a timestamp: the MySQL/SQLite UTC converter fails
    gone = event(4, "D4", op="d")
    gone["before"] = None
    gone["key"] = "not json"  # a delete whose key cannot be read
    report = connector.write(Batch("resident", [event(1, "A1"), bad, event(3, "C3"), gone]))
    assert report.applied == 2 and [r.index for r in report.rejected] == [1, 3]
    first, second = (str(r.error) for r in report.rejected)
    assert "field 'seen_at'" in first and "field 'id'" in second
    assert SECRET_CODE not in first
    assert rows(db) == [(1, "A1"), (3, "C3")]
