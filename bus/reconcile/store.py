"""Reports in the control database: save one, list the history."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from bus.config import Settings
from bus.db import session_scope
from bus.reconcile.models import ReconcileReport
from bus.reconcile.report import Report
from bus.timeutil import as_utc


def save_report(settings: Settings, report: Report) -> int:
    """Store ``report`` (already masked) and return its id (also set on the report)."""
    with session_scope(settings) as s:
        row = ReconcileReport(
            connector=report.source.connector,
            source_table=report.source.table,
            target_connector=report.target.connector,
            target_table=report.target.table,
            started_at=report.started_at,
            finished_at=report.finished_at,
            agree=report.agree,
            source_rows=report.source.rows,
            target_rows=report.target.rows,
            missing=report.counts["missing"],
            extra=report.counts["extra"],
            different=report.counts["different"],
            schema_errors=len(report.schema_errors),
            transient=report.transient,
            repaired=(report.repair or {}).get("published"),
            seconds=round(report.stats.seconds, 3),
            summary=report.summary,
            detail=report.to_dict(),
        )
        s.add(row)
        s.flush()
        report.report_id = row.id
        return row.id


@dataclass(frozen=True)
class HistoryEntry:
    id: int
    started_at: dt.datetime
    connector: str | None
    source_table: str
    target_connector: str | None
    target_table: str
    agree: bool
    missing: int
    extra: int
    different: int
    schema_errors: int
    repaired: int | None
    seconds: float
    summary: str

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["started_at"] = self.started_at.isoformat()
        return data


def history(
    settings: Settings, connector: str | None = None, limit: int = 50
) -> list[HistoryEntry]:
    """The newest reports first; ``connector`` matches the source or the target connector."""
    stmt = select(ReconcileReport).order_by(ReconcileReport.id.desc()).limit(limit)
    if connector:
        stmt = stmt.where(
            or_(
                ReconcileReport.connector == connector,
                ReconcileReport.target_connector == connector,
            )
        )
    with session_scope(settings) as s:
        return [
            HistoryEntry(
                r.id,
                as_utc(r.started_at),
                r.connector,
                r.source_table,
                r.target_connector,
                r.target_table,
                r.agree,
                r.missing,
                r.extra,
                r.different,
                r.schema_errors,
                r.repaired,
                r.seconds,
                r.summary,
            )
            for r in s.scalars(stmt).all()
        ]


def get_report(settings: Settings, report_id: int) -> dict[str, Any] | None:
    with session_scope(settings) as s:
        row = s.get(ReconcileReport, report_id)
        return dict(row.detail or {}) if row is not None else None
