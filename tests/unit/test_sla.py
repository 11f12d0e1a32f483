"""Working-day calendar and on-time scoring against hand-worked cases.

Office hours are 07:30-11:30 and 13:00-17:00 (8 h = one working day), Asia/Ho_Chi_Minh.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import fastavro
import holidays
import pytest
from fastavro.schema import load_schema

from bus.errors import ConfigurationError, DataError
from bus.report.sla import (
    DossierTimes,
    aggregate,
    classify,
    due_workday,
    effective_due,
    from_record,
    workdays_late,
)
from bus.report.workdays import WorkCalendar

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CAL = WorkCalendar()
LATER = dt.datetime(2027, 12, 31, tzinfo=VN)
SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def t(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=VN)


def day(y: int, m: int, d: int) -> dt.date:
    return dt.date(y, m, d)


# -- calendar -------------------------------------------------------------------------------


def test_weekends_and_holidays_are_not_workdays() -> None:
    assert CAL.is_workday(day(2026, 10, 9))  # Friday
    assert not CAL.is_workday(day(2026, 10, 10))  # Saturday
    assert not CAL.is_workday(day(2026, 10, 11))  # Sunday
    assert not CAL.is_workday(day(2026, 9, 2))  # Quốc khánh
    assert not CAL.is_workday(day(2026, 4, 30))  # Giải phóng miền Nam
    assert CAL.holiday_name(day(2026, 9, 2))


def test_calendar_agrees_with_holidays_package_for_2026_and_2027() -> None:
    reference = holidays.country_holidays("VN", years=[2026, 2027])
    current = day(2026, 1, 1)
    mismatches = []
    while current <= day(2027, 12, 31):
        if CAL.is_workday(current) != reference.is_working_day(current):
            mismatches.append(current)
        current += dt.timedelta(days=1)
    assert mismatches == []


def test_make_up_saturday_is_a_workday() -> None:
    # The package swaps Mon 31 Aug 2026 (day off) with Sat 22 Aug 2026 (working day).
    assert day(2026, 8, 22) in holidays.country_holidays("VN", years=[2026]).weekend_workdays
    assert CAL.is_workday(day(2026, 8, 22))
    assert not CAL.is_workday(day(2026, 8, 31))


def test_local_overrides() -> None:
    cal = WorkCalendar(extra_holidays=[day(2026, 10, 9)], extra_workdays=[day(2026, 10, 10)])
    assert not cal.is_workday(day(2026, 10, 9))
    assert cal.is_workday(day(2026, 10, 10))


def test_datetimes_are_taken_in_local_time() -> None:
    # 18:00 UTC on Friday is 01:00 Saturday in Ho Chi Minh City.
    assert not CAL.is_workday(dt.datetime(2026, 10, 9, 18, 0, tzinfo=dt.UTC))
    assert CAL.is_workday(dt.datetime(2026, 10, 9, 16, 0, tzinfo=dt.UTC))


def test_workdays_between() -> None:
    assert CAL.workdays_between(day(2026, 10, 9), day(2026, 10, 12)) == 1  # Fri -> Mon
    assert CAL.workdays_between(day(2026, 10, 12), day(2026, 10, 9)) == -1
    assert CAL.workdays_between(day(2026, 10, 9), day(2026, 10, 9)) == 0
    assert CAL.workdays_between(day(2026, 10, 5), day(2026, 10, 16)) == 9
    # Thu 27 Aug -> Fri 4 Sep 2026: Fri 28, Thu 3, Fri 4 (31 Aug - 2 Sep off, weekend).
    assert CAL.workdays_between(day(2026, 8, 27), day(2026, 9, 4)) == 3


def test_next_and_previous_workday_step_over_weekends_and_holidays() -> None:
    assert CAL.next_workday(day(2026, 10, 9)) == day(2026, 10, 12)  # Fri -> Mon
    assert CAL.workday_on_or_before(day(2026, 10, 11)) == day(2026, 10, 9)  # Sun -> Fri
    assert CAL.workday_on_or_before(day(2026, 10, 9)) == day(2026, 10, 9)
    # Quốc khánh 2026: Mon 31 Aug - Wed 2 Sep off, with the weekend before
    assert CAL.workday_on_or_before(day(2026, 9, 2)) == day(2026, 8, 28)
    assert CAL.next_workday(day(2026, 8, 28)) == day(2026, 9, 3)


def test_friday_afternoon_one_day_deadline_is_due_monday() -> None:
    # Received Fri 9 Oct 2026 15:00: 2 h on Friday, 6 h on Monday -> Mon 12 Oct 15:00.
    assert CAL.add_workdays(t(2026, 10, 9, 15), 1) == t(2026, 10, 12, 15)
    # After hours on Friday, or on Saturday: the whole of Monday.
    assert CAL.add_workdays(t(2026, 10, 9, 18), 1) == t(2026, 10, 12, 17)
    assert CAL.add_workdays(t(2026, 10, 10, 10), 1) == t(2026, 10, 12, 17)
    # Received during the lunch break counts from 13:00.
    assert CAL.add_workdays(t(2026, 10, 7, 12), 1) == t(2026, 10, 8, 11, 30)


def test_work_time() -> None:
    assert CAL.work_time(t(2026, 10, 9, 14), t(2026, 10, 12, 10)) == dt.timedelta(hours=5.5)
    assert CAL.work_time(t(2026, 10, 10, 8), t(2026, 10, 11, 20)) == dt.timedelta()
    assert CAL.work_time(t(2026, 10, 12, 10), t(2026, 10, 9, 14)) == dt.timedelta()
    assert CAL.add_work_time(t(2026, 10, 9, 14), dt.timedelta(hours=5.5)) == t(2026, 10, 12, 10)


def test_tet_2027_week() -> None:
    # The package's Tết 2027: Thu 4 Feb (29 Tết) to Wed 10 Feb 2027.
    for d in range(4, 11):
        assert not CAL.is_workday(day(2027, 2, d)), d
    assert CAL.is_workday(day(2027, 2, 3)) and CAL.is_workday(day(2027, 2, 11))
    # Received Wed 3 Feb 10:00, 3 working days: Wed 5.5 h, Thu 11 8 h, Fri 12 8 h, Mon 15 2.5 h.
    due = CAL.add_workdays(t(2027, 2, 3, 10), 3)
    assert due == t(2027, 2, 15, 10)
    base = DossierTimes(received_at=t(2027, 2, 3, 10), due_at=due)
    at = {
        "early": t(2027, 2, 12, 16),
        "on_time": t(2027, 2, 15, 9),
        "late": t(2027, 2, 15, 10, 30),
    }
    for expected, resolved in at.items():
        d = DossierTimes(received_at=base.received_at, due_at=due, resolved_at=resolved)
        assert classify(d, LATER) == expected
    # Unresolved: still open on the last day of Tết, overdue once Monday's due time passes.
    assert classify(base, t(2027, 2, 10, 23)) == "open"
    assert classify(base, t(2027, 2, 15, 10, 1)) == "overdue"


# -- scoring --------------------------------------------------------------------------------


def test_due_friday_resolved_monday_is_late_by_one_working_day() -> None:
    d = DossierTimes(
        received_at=t(2026, 9, 28, 9),
        due_at=t(2026, 10, 2, 17),
        resolved_at=t(2026, 10, 5, 9),
    )
    assert classify(d, LATER) == "late"
    assert workdays_late(d, LATER) == 1
    assert due_workday(d.due_at) == day(2026, 10, 2)
    # The same dossier seen before resolution.
    assert classify(d, t(2026, 10, 2, 16)) == "open"
    assert classify(d, t(2026, 10, 3, 9)) == "overdue"
    assert workdays_late(d, t(2026, 10, 3, 9)) == 0  # Saturday is not a working day
    unresolved = DossierTimes(received_at=d.received_at, due_at=d.due_at)
    assert workdays_late(unresolved, t(2026, 10, 6, 9)) == 2  # Monday and Tuesday


def test_on_time_means_on_the_due_working_day() -> None:
    received, due = t(2026, 9, 28, 9), t(2026, 10, 2, 17)

    def outcome(resolved: dt.datetime) -> str:
        return classify(DossierTimes(received_at=received, due_at=due, resolved_at=resolved), LATER)

    assert outcome(t(2026, 10, 1, 16)) == "early"
    assert outcome(t(2026, 10, 2, 7)) == "on_time"
    assert outcome(t(2026, 10, 2, 17)) == "on_time"
    assert outcome(t(2026, 10, 2, 17, 0, 1)) == "late"


def test_supplement_pause_across_quoc_khanh_2026() -> None:
    # Received Tue 25 Aug 2026 09:00 with 5 working days: Tue 6.5 h, Wed-Fri 24 h,
    # Sat 29-Wed 2 Sep off (weekend, 31 Aug substitute day, 1-2 Sep National Day),
    # Thu 3 Sep 8 h, Fri 4 Sep 1.5 h -> due Fri 4 Sep 09:00.
    received = t(2026, 8, 25, 9)
    due = CAL.add_workdays(received, 5)
    assert due == t(2026, 9, 4, 9)
    # Paused Fri 28 Aug 14:00 (the working day before the holiday) until Thu 3 Sep 10:00:
    # nearly six calendar days, but only 3 h (Fri) + 2.5 h (Thu) of working time.
    pause = (t(2026, 8, 28, 14), t(2026, 9, 3, 10))
    assert CAL.work_time(*pause) == dt.timedelta(hours=5.5)
    d = DossierTimes(
        received_at=received, due_at=due, pauses=(pause,), resolved_at=t(2026, 9, 4, 15, 30)
    )
    # Fri 4 Sep 09:00 + 5.5 h: 2.5 h before lunch, 3 h after -> 16:00 the same day.
    assert effective_due(d, LATER) == t(2026, 9, 4, 16)
    assert classify(d, LATER) == "on_time"
    unpaused = DossierTimes(received_at=received, due_at=due, resolved_at=d.resolved_at)
    assert classify(unpaused, LATER) == "late"
    late = DossierTimes(
        received_at=received, due_at=due, pauses=(pause,), resolved_at=t(2026, 9, 4, 16, 30)
    )
    assert classify(late, LATER) == "late"


def test_whole_day_pause_across_the_holiday_moves_the_due_by_one_working_day() -> None:
    # Paused all of Fri 28 Aug (07:30) until Thu 3 Sep 07:30: one working day.
    d = DossierTimes(
        received_at=t(2026, 8, 25, 9),
        due_at=t(2026, 9, 4, 9),
        pauses=((t(2026, 8, 28, 7, 30), t(2026, 9, 3, 7, 30)),),
        resolved_at=t(2026, 9, 7, 8),
    )
    assert effective_due(d, LATER) == t(2026, 9, 7, 9)
    assert classify(d, LATER) == "on_time"


def test_running_pause_holds_the_deadline() -> None:
    d = DossierTimes(
        received_at=t(2026, 10, 5, 9),
        due_at=t(2026, 10, 7, 9),
        pauses=((t(2026, 10, 6, 9), None),),
    )
    # Two weeks later, still waiting for the citizen's documents: not overdue.
    assert classify(d, t(2026, 10, 20, 9)) == "open"
    # One working day of budget was left when the pause began.
    assert effective_due(d, t(2026, 10, 20, 9)) == t(2026, 10, 21, 9)


def test_pause_after_the_deadline_does_not_rescue_a_late_dossier() -> None:
    d = DossierTimes(
        received_at=t(2026, 10, 5, 9),
        due_at=t(2026, 10, 7, 9),
        pauses=((t(2026, 10, 8, 9), t(2026, 10, 15, 9)),),
        resolved_at=t(2026, 10, 15, 10),
    )
    assert effective_due(d, LATER) == d.due_at
    assert classify(d, LATER) == "late"


def test_overlapping_pauses_are_counted_once() -> None:
    d = DossierTimes(
        received_at=t(2026, 10, 5, 9),
        due_at=t(2026, 10, 9, 17),
        pauses=((t(2026, 10, 6, 7, 30), t(2026, 10, 7, 7, 30)), (t(2026, 10, 6, 13), None)),
        resolved_at=t(2026, 10, 8, 7, 30),
    )
    # One pause from Tue 07:30 to Thu 07:30 (resolution): 16 h -> due Tue 13 Oct 17:00.
    assert effective_due(d, LATER) == t(2026, 10, 13, 17)


def test_withdrawn_is_not_scored() -> None:
    d = DossierTimes(
        received_at=t(2026, 10, 5, 9), due_at=t(2026, 10, 7, 9), withdrawn_at=t(2026, 10, 6, 9)
    )
    assert classify(d, t(2026, 10, 5, 10)) == "open"
    assert classify(d, LATER) == "withdrawn"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(DataError, match="received_at"):
        DossierTimes(received_at=dt.datetime(2026, 10, 5, 9), due_at=t(2026, 10, 7, 9))
    d = DossierTimes(received_at=t(2026, 10, 5, 9), due_at=t(2026, 10, 7, 9))
    with pytest.raises(DataError, match="as_of"):
        classify(d, dt.datetime(2026, 10, 5))
    with pytest.raises(DataError, match="start"):
        CAL.add_workdays(dt.datetime(2026, 10, 5), 1)


def test_bad_calendar_settings() -> None:
    with pytest.raises(ConfigurationError, match="hours"):
        WorkCalendar(hours=[(dt.time(17), dt.time(8))])
    with pytest.raises(ConfigurationError, match="tz"):
        WorkCalendar(tz="Asia/Saigon_Nowhere")
    with pytest.raises(ConfigurationError, match="country"):
        WorkCalendar(country="XX")


# -- from a tthc.Dossier record -------------------------------------------------------------


def test_from_decoded_avro_record() -> None:
    schema = load_schema(str(SCHEMAS / "tthc.Dossier.avsc"))
    record = {
        "dossier_id": "000.00.26734.H29-260825-0001",
        "procedure_code": "1.001612",
        "procedure_name": "Thủ tục đăng ký khai sinh",
        "field": "civil_status",
        "receiving_unit": "26734",
        "channel": "online",
        "applicant_citizen_id": "079190001234",
        "applicant_name": "Nguyễn Thị Minh Khai",
        "updated_at": t(2026, 9, 4, 15, 30),
        "received_at": t(2026, 8, 25, 9),
        "due_at": t(2026, 9, 4, 9),
        "resolved_at": t(2026, 9, 4, 15, 30),
        "status": "resolved",
        "status_history": [
            {"status": "received", "at": t(2026, 8, 25, 9), "note": None},
            {"status": "supplement_requested", "at": t(2026, 8, 28, 14), "note": "Thiếu"},
            {"status": "processing", "at": t(2026, 9, 3, 10), "note": None},
            {"status": "resolved", "at": t(2026, 9, 4, 15, 30), "note": None},
        ],
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    buf.seek(0)
    decoded = fastavro.schemaless_reader(buf, schema, schema)
    d = from_record(decoded)
    assert d.pauses == ((t(2026, 8, 28, 14), t(2026, 9, 3, 10)),)
    assert (d.unit, d.field, d.channel) == ("26734", "civil_status", "online")
    assert classify(d, LATER) == "on_time"


def test_from_sink_row_with_millis_and_missing_resolved_at() -> None:
    ms = int(t(2026, 10, 2, 10).timestamp() * 1000)
    row = {
        "dossier_id": "X1",
        "receiving_unit": "26737",
        "field": "justice",
        "received_at": int(t(2026, 10, 1, 9).timestamp() * 1000),
        "due_at": int(t(2026, 10, 2, 9).timestamp() * 1000),
        "resolved_at": None,
        "status": "rejected",
        "status_history": [{"status": "rejected", "at": ms}],
    }
    d = from_record(row)
    assert d.resolved_at == t(2026, 10, 2, 10)
    assert classify(d, LATER) == "late"
    with pytest.raises(DataError, match="resolved_at"):
        from_record({**row, "status_history": []})


def test_from_record_withdrawn() -> None:
    row = {
        "received_at": "2026-10-01T09:00:00+07:00",
        "due_at": "2026-10-05T09:00:00+07:00",
        "status": "withdrawn",
        "updated_at": "2026-10-02T09:00:00+07:00",
    }
    d = from_record(row)
    assert d.withdrawn_at == t(2026, 10, 2, 9)
    assert classify(d, LATER) == "withdrawn"


# -- aggregation ----------------------------------------------------------------------------


def dossier(
    unit: str,
    field: str,
    received: dt.datetime,
    due: dt.datetime,
    resolved: dt.datetime | None = None,
    withdrawn: dt.datetime | None = None,
) -> DossierTimes:
    return DossierTimes(
        received_at=received,
        due_at=due,
        resolved_at=resolved,
        withdrawn_at=withdrawn,
        unit=unit,
        field=field,
    )


ROWS = [
    # A: early (resolved Thu 1 Oct, due Fri 2 Oct).
    dossier("26734", "civil_status", t(2026, 10, 1, 9), t(2026, 10, 2, 9), t(2026, 10, 1, 15)),
    # B: on time (resolved on the due day before the due time).
    dossier("26734", "civil_status", t(2026, 10, 5, 9), t(2026, 10, 7, 9), t(2026, 10, 7, 8)),
    # C: late.
    dossier("26734", "civil_status", t(2026, 10, 12, 9), t(2026, 10, 14, 9), t(2026, 10, 15, 10)),
    # D: unresolved; open at the end of October, overdue by 10 November.
    dossier("26734", "civil_status", t(2026, 10, 26, 9), t(2026, 11, 3, 9)),
    # E: overdue at the end of October, resolved late on 2 November.
    dossier("26734", "civil_status", t(2026, 10, 28, 9), t(2026, 10, 30, 17), t(2026, 11, 2, 9)),
    # F: received in November, open.
    dossier("26737", "land_construction", t(2026, 11, 2, 9), t(2026, 11, 20, 9)),
    # G: withdrawn in October.
    dossier(
        "26737",
        "land_construction",
        t(2026, 10, 20, 9),
        t(2026, 10, 30, 9),
        withdrawn=t(2026, 10, 22, 9),
    ),
]
AS_OF = t(2026, 11, 10, 12)


def pick(rows: list[dict[str, object]], **keys: object) -> dict[str, object]:
    found = [r for r in rows if all(r[k] == v for k, v in keys.items())]
    assert len(found) == 1, (keys, rows)
    return found[0]


def test_aggregate_by_unit_field_month() -> None:
    rows = aggregate(ROWS, as_of=AS_OF)
    assert [(r["unit"], r["field"], r["month"]) for r in rows] == [
        ("26734", "civil_status", "2026-10"),
        ("26734", "civil_status", "2026-11"),
        ("26737", "land_construction", "2026-10"),
        ("26737", "land_construction", "2026-11"),
    ]
    october = pick(rows, unit="26734", month="2026-10")
    assert {k: october[k] for k in october if k not in ("unit", "field", "month")} == {
        "received": 5,
        "resolved": 3,
        "resolved_early": 1,
        "resolved_on_time": 1,
        "resolved_late": 1,
        "open": 1,
        "overdue": 1,
        "withdrawn": 0,
        "on_time_rate": pytest.approx(2 / 3),
    }
    november = pick(rows, unit="26734", month="2026-11")
    assert (november["received"], november["resolved_late"], november["overdue"]) == (0, 1, 1)
    assert november["open"] == 0 and november["on_time_rate"] == 0.0
    withdrawn = pick(rows, unit="26737", month="2026-10")
    assert (withdrawn["received"], withdrawn["withdrawn"], withdrawn["open"]) == (1, 1, 0)
    assert withdrawn["on_time_rate"] is None
    assert pick(rows, unit="26737", month="2026-11")["open"] == 1


def test_aggregate_rolled_up_without_month() -> None:
    (row,) = aggregate(ROWS, group_by=("unit",), as_of=AS_OF, unit_of=lambda _ward: "760")
    assert row == {
        "unit": "760",
        "received": 7,
        "resolved": 4,
        "resolved_early": 1,
        "resolved_on_time": 1,
        "resolved_late": 2,
        "open": 1,
        "overdue": 1,
        "withdrawn": 1,
        "on_time_rate": 0.5,
    }


def test_aggregate_selected_month_and_bad_key() -> None:
    rows = aggregate(ROWS, group_by=("field", "month"), as_of=AS_OF, months=["2026-11"])
    assert {r["field"] for r in rows} == {"civil_status", "land_construction"}
    assert all(r["month"] == "2026-11" for r in rows)
    assert aggregate([], as_of=AS_OF) == []
    with pytest.raises(ConfigurationError, match="group_by"):
        aggregate(ROWS, group_by=("ward",), as_of=AS_OF)
    with pytest.raises(ConfigurationError, match="months"):
        aggregate(ROWS, as_of=AS_OF, months=["October"])
