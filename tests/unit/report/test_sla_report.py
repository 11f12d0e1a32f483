"""The on-time report's roll-up, worked by hand: dossiers with chosen times, counted per ward,
district and city; the latest-version reduction of change events; months and as-of."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from bus.errors import ConfigurationError, UnknownUnitError
from bus.report.service import (
    ALL_FIELDS,
    LatestDossiers,
    build_report,
    city_topic,
    default_as_of,
    month_window,
)
from tests.unit.report.cases import (
    CASES,
    END_OF_OCTOBER,
    H2024,
    H2025,
    QUAN3_WARD,
    VN,
    dossier,
    t,
)


def counts(row: dict[str, Any]) -> tuple[int, ...]:
    keys = ("received", "resolved", "resolved_early", "resolved_on_time", "resolved_late")
    return tuple(row[k] for k in (*keys, "open", "overdue", "withdrawn"))


def report(level: str, unit: str | None = None, **kw: Any) -> Any:
    options: dict[str, Any] = {"hierarchy": H2024, "month": "2026-10", "as_of": END_OF_OCTOBER}
    options.update(kw)
    return build_report(CASES, level=level, unit=unit, **options)


def by_unit(rep: Any, field: str = ALL_FIELDS) -> dict[str, dict[str, Any]]:
    return {r["unit"]: r for r in rep.rows if r["field"] == field}


def test_ward_level_by_hand() -> None:
    rep = report("ward")
    units = by_unit(rep)
    #                                 recv res early on-time late open overdue withdrawn
    assert counts(units["26734"]) == (6, 4, 2, 1, 1, 1, 1, 0)
    assert units["26734"]["on_time_rate"] == 0.75
    assert counts(units["26737"]) == (1, 1, 0, 0, 1, 0, 0, 1)
    assert units["26737"]["on_time_rate"] == 0.0
    assert counts(units["26740"]) == (1, 1, 1, 0, 0, 0, 0, 0)
    assert counts(units[QUAN3_WARD]) == (1, 1, 0, 1, 0, 0, 0, 0)
    # the district's own dossiers stay with the district in a ward report
    assert counts(units["760"]) == (1, 1, 1, 0, 0, 0, 0, 0)
    assert units["760"]["level"] == "district"
    # city-wide ward level lists only the wards with dossiers
    assert set(units) == {"26734", "26737", "26740", QUAN3_WARD, "760"}
    assert (rep.dossiers, rep.invalid, rep.unknown_unit, rep.out_of_scope) == (14, 1, 1, 0)
    assert counts(rep.total) == (10, 8, 4, 2, 2, 1, 1, 1)
    assert rep.total["on_time_rate"] == 0.75
    assert rep.total["unit"] == "79" and rep.total["level"] == "city"


def test_ward_level_per_field_by_hand() -> None:
    rep = report("ward")
    civil = by_unit(rep, "civil_status")["26734"]
    justice = by_unit(rep, "justice")["26734"]
    assert counts(civil) == (5, 4, 2, 1, 1, 1, 0, 0)
    assert counts(justice) == (1, 0, 0, 0, 0, 0, 1, 0)
    assert justice["on_time_rate"] is None
    # each unit's total row comes first, then its fields in order
    fields = [r["field"] for r in rep.rows if r["unit"] == "26734"]
    assert fields == [ALL_FIELDS, "civil_status", "justice"]


def test_district_level_lists_every_district() -> None:
    rep = report("district")
    units = by_unit(rep)
    assert len(rep.unit_rows()) == len(H2024.children("79")) == 22
    assert counts(units["760"]) == (9, 7, 4, 1, 2, 1, 1, 1)
    assert units["760"]["on_time_rate"] == pytest.approx(5 / 7)
    assert units["760"]["unit_name"] == "Quận 1"
    assert counts(units["770"]) == (1, 1, 0, 1, 0, 0, 0, 0)
    assert counts(units["777"]) == (0,) * 8 and units["777"]["on_time_rate"] is None
    assert counts(rep.total) == (10, 8, 4, 2, 2, 1, 1, 1)


def test_city_level_is_the_total() -> None:
    rep = report("city")
    assert [r["unit"] for r in rep.unit_rows()] == ["79"]
    assert counts(rep.unit_rows()[0]) == counts(rep.total)


def test_scope_of_one_district() -> None:
    rep = report("ward", unit="760")
    units = by_unit(rep)
    wards = [u.code for u in H2024.children("760")]
    assert [r["unit"] for r in rep.unit_rows()] == [*wards, "760"]  # all ten wards, zeros too
    assert counts(units["26761"]) == (0,) * 8
    assert rep.out_of_scope == 1  # the Quận 3 dossier
    assert counts(rep.total) == (9, 7, 4, 1, 2, 1, 1, 1)
    assert rep.total["unit"] == "760"
    # and the district of one district
    one = report("district", unit="760")
    assert [r["unit"] for r in one.unit_rows()] == ["760"]
    assert counts(one.unit_rows()[0]) == counts(rep.total)


def test_all_units_switch() -> None:
    assert (
        len(report("ward", all_units=True).unit_rows())
        == len([u for u in H2024.units(level="ward")]) + 1
    )  # + the district's own row
    assert {r["unit"] for r in report("district", all_units=False).unit_rows()} == {"760", "770"}


def test_as_of_inside_the_month_sees_less() -> None:
    # as of Tue 6 Oct 12:00 in Tân Định: A, B, C, D, F received; A early, B on time; C not
    # resolved yet and overdue (due 09:00), F overdue, D (received 09:00) open; E not yet there
    rep = report("ward", as_of=t(10, 6, 12))
    units = by_unit(rep)
    assert counts(units["26734"]) == (5, 2, 1, 1, 0, 1, 2, 0)
    assert units["26734"]["on_time_rate"] == 1.0
    assert counts(units[QUAN3_WARD]) == (1, 1, 0, 1, 0, 0, 0, 0)  # J, resolved at 08:00
    assert "26737" in units and units["26737"]["withdrawn"] == 0  # H is later


def test_two_level_hierarchy_ward_to_city() -> None:
    # hcmc-2025: wards sit under the city; a dossier received before 1 July 2025 at a 2024
    # ward code is placed through the code mapping (26734 Tân Định -> 26737 Phường Tân Định)
    before = dossier("P", "26734", "civil_status", t(6, 1, 9), t(6, 2, 9))
    before["received_at"] = before["received_at"].replace(year=2025)
    before["due_at"] = before["due_at"].replace(year=2025)
    before["status_history"][0]["at"] = before["received_at"]
    after = dossier("Q", "26737", "civil_status", t(10, 1, 8), t(10, 2, 8), t(10, 1, 15))
    gone = dossier("R", "760", "civil_status", t(10, 1, 8), t(10, 2, 8), t(10, 1, 15))
    rep = build_report(
        [before, after, gone],
        hierarchy=H2025,
        level="ward",
        month="2026-10",
        as_of=END_OF_OCTOBER,
    )
    units = by_unit(rep)
    assert H2025.get("26737").name == "Phường Tân Định"
    #                                recv res early on-time late open overdue withdrawn
    assert counts(units["26737"]) == (1, 1, 1, 0, 0, 0, 1, 0)  # P: overdue since 2025
    assert len(rep.unit_rows()) == len(H2025.children("79"))  # the city's wards
    assert rep.unknown_unit == 1  # districts no longer exist
    with pytest.raises(ConfigurationError, match="level: expected one of city, ward"):
        build_report([], hierarchy=H2025, level="district", month="2026-10", as_of=END_OF_OCTOBER)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigurationError, match="the level city is above it"):
        report("city", unit="760")
    with pytest.raises(UnknownUnitError, match="'123'"):
        report("ward", unit="123")
    with pytest.raises(ConfigurationError, match="month: expected YYYY-MM"):
        report("ward", month="10/2026")
    with pytest.raises(ConfigurationError, match="as_of: expected a timezone-aware"):
        report("ward", as_of=dt.datetime(2026, 10, 31))
    with pytest.raises(ConfigurationError, match="before the month"):
        report("ward", as_of=t(9, 30, 9))


# -- change events to the latest dossier versions -----------------------------------------------


def event(op: str, ident: str, ts: int, **after: Any) -> dict[str, Any]:
    record = None if op == "d" else {"dossier_id": ident, **after}
    before = {"dossier_id": ident} if op in ("u", "d") else None
    return {
        "op": op,
        "ts_ms": ts,
        "key": f'{{"dossier_id":"{ident}"}}',
        "before": before,
        "after": record,
    }


def test_latest_version_by_ts_and_deletes_drop() -> None:
    latest = LatestDossiers()
    for e in [
        event("c", "X", 100, status="received"),
        event("u", "X", 300, status="resolved"),
        event("u", "X", 200, status="processing"),  # older, read later: ignored
        event("c", "Y", 100, status="received"),
        event("d", "Y", 150),
        event("r", "Z", 100, status="processing"),
        event("u", "Z", 100, status="resolved"),  # same ts: the later one wins
    ]:
        latest.add(e)
    records = {r["dossier_id"]: r["status"] for r in latest.records()}
    assert records == {"X": "resolved", "Z": "resolved"}
    assert latest.events == 7 and latest.unreadable == 0
    # a delete with only the key still finds its dossier; an event without any id is counted
    latest.add({"op": "d", "ts_ms": 999, "key": '{"dossier_id":"X"}', "before": None})
    latest.add({"op": "c", "ts_ms": 1, "key": "not json", "after": {"status": "x"}})
    assert {r["dossier_id"] for r in latest.records()} == {"Z"}
    assert latest.unreadable == 1


def test_city_topic_names() -> None:
    assert city_topic(H2024) == "lgsp.79.tthc.dossier"
    assert city_topic(H2025) == "lgsp.79.tthc.dossier"


# -- months ---------------------------------------------------------------------------------------


def test_month_window_and_default_as_of() -> None:
    start, end = month_window("2026-12", VN)
    assert start == dt.datetime(2026, 12, 1, tzinfo=VN)
    assert end == dt.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=VN)
    now = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    assert default_as_of("2026-10", now, VN) == dt.datetime(
        2026, 10, 31, 23, 59, 59, 999999, tzinfo=VN
    )
    assert default_as_of("2026-11", now, VN) == now  # the month is still running
    with pytest.raises(ConfigurationError, match="has not started"):
        default_as_of("2026-12", now, VN)
    for bad in ("2026-13", "2026-1", "26-10", "october"):
        with pytest.raises(ConfigurationError, match="month"):
            month_window(bad, VN)
