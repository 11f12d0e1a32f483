"""What a source batch costs the control database: SQL statements and bytes written per batch.

A SQLite source table of N rows whose cursor values all fall in its lookback window (so the
position carries the window's digests, about 22 bytes a row) is read by one source run in
batches of B; every statement the control database runs on ``connector_position`` and
``connector_position_mark`` is counted, and the stored bytes of the position and of each mark
are measured; so are the broker guard's statements (``broker_offset``, ``broker_anchor``: the
ends and anchors each acknowledged batch records). N = 50,000 with LGSP_BENCH_FULL=1, else
5,000; B = 500.
Targets (printed, not asserted): at most 3 statements a batch; a mark of at most 1 KB.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event, select

from bench._report import record, size
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db.models import ConnectorPosition, ConnectorPositionMark
from bus.db import open_engine, session_scope
from bus.sync import run
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.bench

N = size(50_000, 5_000)
BATCH = 500
TABLES = ("connector_position", "connector_position_mark")
GUARD = ("broker_offset", "broker_anchor")


def test_bench_position_marks(settings: Settings, tmp_path: Path, unique: str) -> None:
    url = f"sqlite:///{tmp_path}/marks.db"
    table = sa.Table(
        f"marks_{unique}",
        sa.MetaData(),
        sa.Column("ma", sa.String(20), primary_key=True),
        sa.Column("ten", sa.String(60), nullable=False),
        sa.Column("cap_nhat", sa.DateTime, nullable=False),
    )
    engine = sa.create_engine(url)
    table.metadata.create_all(engine)
    base = dt.datetime(2025, 7, 1, 8, 0, 0)
    with engine.begin() as conn:  # N rows within 100 s: all in the 300 s lookback window
        conn.execute(
            table.insert(),
            [
                {
                    "ma": f"HS{i:07d}",
                    "ten": f"Ho so {i}",
                    "cap_nhat": base + dt.timedelta(milliseconds=i * 100_000 // N),
                }
                for i in range(N)
            ],
        )
    engine.dispose()
    name = f"marks-{unique}"
    register(
        settings,
        config(
            "sqlite",
            "source",
            url,
            [{"table": table.name, "dataset": f"rt.m{unique}", "cursor": "cap_nhat"}],
            name=name,
            batch_size=BATCH,
        ),
    )
    statements: list[str] = []
    guard: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if any(t in statement for t in TABLES):
            statements.append(statement.split()[0].upper())
        elif any(t in statement for t in GUARD):
            guard.append(statement.split()[0].upper())

    control = open_engine(settings)
    event.listen(control, "before_cursor_execute", count)
    try:
        report = run(settings, name)
    finally:
        event.remove(control, "before_cursor_execute", count)
    assert report.rows == N
    with session_scope(settings) as s:
        position = s.scalar(
            select(ConnectorPosition.position).where(ConnectorPosition.connector == name)
        )
        marks = s.execute(
            select(ConnectorPositionMark.position, ConnectorPositionMark.ends).where(
                ConnectorPositionMark.connector == name
            )
        ).all()
    mark_bytes = [len(json.dumps(p)) + len(json.dumps(e)) for p, e in marks]
    batches = report.batches
    kinds = {k: statements.count(k) for k in sorted(set(statements))}
    record(
        "position marks",
        {
            "rows": N,
            "batches": batches,
            "statements_per_batch": round(len(statements) / batches, 2),
            "statements": kinds,
            "guard_statements_per_batch": round(len(guard) / batches, 2),
            "position_bytes_last": len(json.dumps(position)),
            "mark_bytes_max": max(mark_bytes),
            "mark_bytes_total": sum(mark_bytes),
        },
        target="<= 3 statements a batch; a mark of at most 1 KB",
    )
