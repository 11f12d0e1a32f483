"""Hand-worked dossiers for the report tests (October 2026, Asia/Ho_Chi_Minh)."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from bus.units import load_hierarchy

VN = ZoneInfo("Asia/Ho_Chi_Minh")
H2024 = load_hierarchy("hcmc-2024")
H2025 = load_hierarchy("hcmc-2025")
END_OF_OCTOBER = dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=VN)
QUAN3_WARD = "27127"  # Phường 14, Quận 3


def t(month: int, day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=VN)


def dossier(
    ident: str,
    unit: str,
    field: str,
    received: dt.datetime,
    due: dt.datetime | None,
    resolved: dt.datetime | None = None,
    *,
    status: str | None = None,
    pauses: tuple[tuple[dt.datetime, dt.datetime], ...] = (),
    withdrawn: dt.datetime | None = None,
) -> dict[str, Any]:
    history: list[dict[str, Any]] = [{"status": "received", "at": received, "note": None}]
    for start, end in pauses:
        history.append({"status": "supplement_requested", "at": start, "note": "Thiếu giấy tờ"})
        history.append({"status": "processing", "at": end, "note": None})
    final = status or ("resolved" if resolved else "processing")
    if resolved is not None:
        history.append({"status": final, "at": resolved, "note": None})
    if withdrawn is not None:
        final = "withdrawn"
        history.append({"status": "withdrawn", "at": withdrawn, "note": None})
    return {
        "dossier_id": ident,
        "procedure_code": "1.001193",
        "procedure_name": "Đăng ký khai sinh",
        "field": field,
        "receiving_unit": unit,
        "channel": "online",
        "received_at": received,
        "due_at": due,
        "resolved_at": resolved,
        "status": final,
        "status_history": history,
        "applicant_citizen_id": None,
        "applicant_name": "Nguyễn Văn An",
        "updated_at": history[-1]["at"],
    }


# 1 October 2026 is a Thursday; October has no public holiday.
CASES = [
    # Tân Định, civil status
    dossier("A", "26734", "civil_status", t(10, 1, 8), t(10, 2, 8), t(10, 1, 15)),  # early
    # due on a Friday... received Fri 15:00, one day: due Mon 15:00, resolved Mon 10:00
    dossier("B", "26734", "civil_status", t(10, 2, 15), t(10, 5, 15), t(10, 5, 10)),  # on time
    dossier("C", "26734", "civil_status", t(10, 5, 9), t(10, 6, 9), t(10, 7, 9)),  # late
    # three days, due Fri 9 Oct 09:00; paused Wed 09:00 - Fri 09:00 (two working days), so
    # the deadline moves to Tue 13 Oct 09:00: resolved Mon 12 Oct is early, not late
    dossier(
        "D",
        "26734",
        "civil_status",
        t(10, 6, 9),
        t(10, 9, 9),
        t(10, 12, 9),
        pauses=((t(10, 7, 9), t(10, 9, 9)),),
    ),
    dossier("E", "26734", "civil_status", t(10, 30, 10), t(11, 4, 10)),  # open at month end
    dossier("F", "26734", "justice", t(10, 1, 9), t(10, 2, 9)),  # overdue
    # Đa Kao: received in September, resolved late in October; a withdrawn one
    dossier("G", "26737", "justice", t(9, 28, 9), t(9, 29, 9), t(10, 1, 10)),
    dossier("H", "26737", "justice", t(10, 20, 9), t(10, 21, 9), withdrawn=t(10, 20, 10)),
    # Bến Nghé: a refusal is a result, scored like a resolution
    dossier("I", "26740", "civil_status", t(10, 2, 8), t(10, 5, 8), t(10, 2, 9), status="rejected"),
    # a ward of Quận 3: resolved exactly at the due time
    dossier("J", QUAN3_WARD, "civil_status", t(10, 5, 8), t(10, 6, 8), t(10, 6, 8)),
    # District 1's own one-stop shop
    dossier("K", "760", "land_construction", t(10, 7, 9), t(10, 8, 9), t(10, 7, 10)),
    # a unit the hierarchy does not know, a record without a due time, a September-only one
    dossier("L", "99999", "civil_status", t(10, 7, 9), t(10, 8, 9), t(10, 7, 10)),
    dossier("M", "26734", "civil_status", t(10, 7, 9), None),
    dossier("N", "26734", "civil_status", t(9, 10, 9), t(9, 11, 9), t(9, 11, 8)),
]
