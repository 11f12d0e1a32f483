"""Run history: every sync, route, reconciliation or archive run with its figures."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from bus.config import Settings
from bus.db import session_scope
from bus.db.models import Run
from bus.timeutil import as_utc

log = logging.getLogger("lgsp.runs")


@dataclass(frozen=True)
class RunInfo:
    id: int
    kind: str
    name: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    rows_in: int
    rows_out: int
    dlq: int
    detail: dict[str, Any] | None

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


def start_run(settings: Settings, *, kind: str, name: str) -> int:
    """Store a run that has begun (status ``running``); ``record_run(run_id=...)`` ends it."""
    with session_scope(settings) as s:
        row = Run(
            kind=kind,
            name=name,
            started_at=dt.datetime.now(dt.UTC),
            status="running",
            rows_in=0,
            rows_out=0,
            dlq=0,
        )
        s.add(row)
        s.flush()
        return int(row.id)


def record_run(
    settings: Settings,
    *,
    kind: str,
    name: str,
    started_at: dt.datetime | None = None,
    status: str,
    rows_in: int = 0,
    rows_out: int = 0,
    dlq: int = 0,
    detail: dict[str, Any] | None = None,
    finished_at: dt.datetime | None = None,
    run_id: int | None = None,
) -> int:
    """Store one finished run (or finish run ``run_id`` from ``start_run``) and log its
    figures (the task log shows them in Airflow)."""
    finished = finished_at or dt.datetime.now(dt.UTC)
    with session_scope(settings) as s:
        row = None if run_id is None else s.get(Run, run_id)
        if row is None:
            row = Run(kind=kind, name=name, started_at=started_at or finished)
            s.add(row)
        row.finished_at = finished
        row.status = status
        row.rows_in = rows_in
        row.rows_out = rows_out
        row.dlq = dlq
        row.detail = detail
        s.flush()
        run_id = int(row.id)
        begun = as_utc(row.started_at)
    log.info(
        "run %s %s:%s %s in=%d out=%d dlq=%d %.1fs %s",
        run_id,
        kind,
        name,
        status,
        rows_in,
        rows_out,
        dlq,
        (finished - begun).total_seconds(),
        detail or "",
    )
    return run_id


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return None if value is None else as_utc(value)


def list_runs(
    settings: Settings, kind: str | None = None, name: str | None = None, limit: int = 50
) -> list[RunInfo]:
    with session_scope(settings) as s:
        query = select(Run).order_by(Run.id.desc()).limit(limit)
        if kind:
            query = query.where(Run.kind == kind)
        if name:
            query = query.where(Run.name == name)
        return [
            RunInfo(
                r.id,
                r.kind,
                r.name,
                _utc(r.started_at),
                _utc(r.finished_at),
                r.status,
                r.rows_in,
                r.rows_out,
                r.dlq,
                r.detail,
            )
            for r in s.scalars(query)
        ]
