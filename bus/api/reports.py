"""``/reports/on-time``: the QĐ 766 on-time report of ``lgsp report sla`` as JSON or CSV, from
the city topic (what the wards published, rolled up). Any live key: the report holds counts per
unit, no record."""

from __future__ import annotations

import io
import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from bus.api.auth import caller, context
from bus.catalog.api_keys import KeyInfo
from bus.context import Context
from bus.report.render import write_csv
from bus.report.service import SlaReport, parse_as_of, sla_report
from bus.report.workdays import default_calendar

router = APIRouter(prefix="/reports", tags=["reports"])


def _report_dict(report: SlaReport) -> dict[str, Any]:
    return {
        "level": report.level,
        "month": report.month,
        "as_of": report.as_of.isoformat(),
        "scope": {"unit": report.scope.code, "name": report.scope.name},
        "hierarchy": report.hierarchy,
        "source": report.source,
        "dossiers": report.dossiers,
        "skipped": {
            "undecodable": report.unreadable,
            "invalid": report.invalid,
            "unknown_unit": report.unknown_unit,
        },
        "rows": report.rows,
        "total": report.total,
    }


@router.get("/on-time")
def on_time(
    month: str = Query(..., description="The month, YYYY-MM."),
    level: str = Query("ward", description="Reporting level: ward, district or city."),
    unit: str | None = Query(None, description="Only this unit and the units below it."),
    as_of: str | None = Query(None, description="ISO 8601; default the month's end or now."),
    format: Literal["json", "csv"] = Query("json"),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(caller),
) -> Response:
    """On-time rates per unit (and per field) for one month, in working days, supplement
    pauses excluded (Decision 766/QĐ-TTg); ``format=csv``: the CSV of ``lgsp report sla``."""
    report = sla_report(
        ctx.settings,
        level=level,
        month=month,
        as_of=parse_as_of(as_of, month, default_calendar().tz),
        unit=unit,
    )
    if format == "csv":
        out = io.StringIO()
        write_csv(report, out)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="on-time-{month}.csv"'},
        )
    return Response(json.dumps(_report_dict(report), default=str), media_type="application/json")
