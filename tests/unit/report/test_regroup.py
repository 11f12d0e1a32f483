"""Report figures regrouped across the 2025 reform (``--as-hierarchy``), checked against an
independent computation straight from the packaged data files (not through the Timeline):
June 2025 dossiers of every ward of the former District 1 and Bình Tân into the new wards,
and August 2025 dossiers of the new wards back into the old districts; a 24-month trend that
spans the cut-over; a reform's re-keyed copy counted with its original code."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from bus.errors import ConfigurationError
from bus.report.regroup import Regrouping
from bus.report.service import LatestDossiers, Originals, build_report, trend_report
from bus.units.timeline import load_timeline
from tests.unit.report.cases import H2024, H2025, VN, dossier


def _data(name: str) -> dict[str, Any]:
    return json.loads(resources.files("bus").joinpath("data", name).read_text("utf-8"))


MAPPING = _data("unit-mapping-2025.json")["mappings"]
OLD_UNITS = {u["code"]: u for u in _data("units-hcmc-2024.json")["units"]}
OLD_WARDS = sorted(c for c, u in OLD_UNITS.items() if u["parent"] in ("760", "777"))


def day(year: int, month: int, d: int, hour: int = 9) -> dt.datetime:
    return dt.datetime(year, month, d, hour, tzinfo=VN)


def generated(codes: list[str], year: int, month: int) -> tuple[list[dict[str, Any]], Counter]:
    """1..4 dossiers per unit (received on the 3rd, due the 20th), every other one resolved
    early on the 5th; returns the dossiers and how many each unit received."""
    out, per_unit = [], Counter()
    for i, code in enumerate(codes):
        for j in range(1 + i % 4):
            resolved = day(year, month, 5) if j % 2 == 0 else None
            out.append(
                dossier(
                    f"{code}-{year}{month:02d}-{j}",
                    code,
                    "civil_status",
                    day(year, month, 3),
                    day(year, month, 20),
                    resolved,
                )
            )
            per_unit[code] += 1
    return out, per_unit


def end_of(year: int, month: int) -> dt.datetime:
    following = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=VN)
    return following - dt.timedelta(microseconds=1)


def test_june_2025_regrouped_into_the_new_wards_matches_the_mapping_file() -> None:
    dossiers, sent = generated(OLD_WARDS, 2025, 6)
    regroup = Regrouping(load_timeline(), H2025, "ward")
    rep = build_report(
        dossiers,
        hierarchy=H2025,
        level="ward",
        month="2025-06",
        as_of=end_of(2025, 6),
        regroup=regroup,
    )
    # independently: the file's entry of each old ward; a split cannot be regrouped
    expected, refused = Counter(), {}
    for entry in MAPPING:
        if entry["old"] in sent:
            if entry.get("split_into"):
                refused[entry["old"]] = sent[entry["old"]]
            else:
                expected[entry["new"]] += sent[entry["old"]]
    got = {r["unit"]: r for r in rep.unit_rows() if r["received"]}
    assert {u: r["received"] for u, r in got.items()} == dict(expected)
    assert {n.unit: n.dossiers for n in rep.not_regrouped} == refused
    assert all("split on 2025-07-01 into" in n.why for n in rep.not_regrouped)
    assert refused and "26737" in refused  # Đa Kao was split between Tân Định and Sài Gòn
    assert sum(expected.values()) + sum(refused.values()) == len(dossiers)  # conserved
    resolved = Counter()
    for d in dossiers:
        if d["resolved_at"] is not None and d["receiving_unit"] not in refused:
            [entry] = [e for e in MAPPING if e["old"] == d["receiving_unit"]]
            resolved[entry["new"]] += 1
    assert {u: r["resolved_early"] for u, r in got.items()} == dict(resolved)


def test_new_wards_regrouped_back_into_the_old_districts_where_the_mapping_allows() -> None:
    into: dict[str, set[str]] = {}
    for entry in MAPPING:
        for new in entry.get("split_into") or [entry["new"]]:
            into.setdefault(new, set()).add(entry["old"])
    new_wards = sorted(
        {n for n, olds in into.items() if olds & set(OLD_WARDS)}, key=int
    )  # the new wards that took in a ward of District 1 or Bình Tân
    dossiers, sent = generated(new_wards, 2025, 8)
    rep = build_report(
        dossiers,
        hierarchy=H2024,
        level="district",
        month="2025-08",
        as_of=end_of(2025, 8),
        regroup=Regrouping(load_timeline(), H2024, "district"),
        all_units=False,
    )
    expected, refused = Counter(), {}
    for new in new_wards:
        districts = {OLD_UNITS[o]["parent"] for o in into[new]}
        if len(districts) == 1:
            expected[districts.pop()] += sent[new]
        else:
            refused[new] = sent[new]
    got = {r["unit"]: r["received"] for r in rep.unit_rows() if r["received"]}
    assert got == dict(expected) and {"760", "777"} <= set(got)
    assert {n.unit: n.dossiers for n in rep.not_regrouped} == refused
    for n in rep.not_regrouped:
        assert "cannot be divided among them" in n.why and n.hierarchy == "hcmc-2025"


def test_at_ward_level_a_merged_new_ward_cannot_be_regrouped_back() -> None:
    regroup = Regrouping(load_timeline(), H2024, "ward")
    # 26737 (Phường Tân Định, 2025) = old Tân Định + part of old Đa Kao
    assert regroup.place("26737", dt.date(2025, 8, 3)) == (None, "not regrouped")
    [refused] = regroup.not_regrouped()
    assert refused.unit == "26737" and refused.name == "Phường Tân Định"
    assert "26734" in refused.why or "26737" in refused.why
    # a code of a date before the target's own era is its own unit
    assert regroup.place("26734", dt.date(2025, 6, 3)) == ("26734", "")
    with pytest.raises(ConfigurationError, match="level: expected one of city, ward"):
        Regrouping(load_timeline(), H2025, "district")


def test_a_24_month_trend_per_new_ward_spans_the_cutover() -> None:
    wards_2024 = [w for w in OLD_WARDS if OLD_UNITS[w]["parent"] == "760"]
    before, _ = generated(wards_2024, 2025, 6)
    after, _ = generated(["26737", "26740", "26743"], 2025, 9)
    rep = trend_report(
        before + after,
        hierarchy=H2025,
        level="ward",
        month="2026-05",
        months=24,
        as_of=end_of(2026, 5),
        regroup=Regrouping(load_timeline(), H2025, "ward"),
    )
    assert rep.months[0] == "2024-06" and rep.months[-1] == "2026-05" and len(rep.months) == 24
    rows = {(r["unit"], r["month"]): r for r in rep.rows}
    # Phường Tân Định (26737): June 2025 from old Tân Định (26734, index 0: 1 dossier), then
    # its own September 2025 dossiers (index 0 of the second list: 1 dossier)
    assert rows[("26737", "2025-06")]["received"] == 1
    assert rows[("26737", "2025-09")]["received"] == 1
    assert rows[("26737", "2025-07")]["received"] == 0
    assert rows[("26737", "2025-06")]["on_time_rate"] == 1.0
    units = {r["unit"] for r in rep.rows}
    assert all(sum(1 for r in rep.rows if r["unit"] == u) == 24 for u in units)
    assert {n.unit for n in rep.not_regrouped} >= {"26737", "26746"}  # the old splits


def test_a_rekeyed_copy_counts_with_its_original_code() -> None:
    record = dossier("D1", "26737", "civil_status", day(2025, 6, 3), day(2025, 6, 20))
    original = {
        "op": "c",
        "ts_ms": 1,
        "source": {"unit": "26734"},
        "key": "k",
        "after": {**record, "receiving_unit": "26734"},
    }
    copy = {**original, "op": "r", "ts_ms": 2, "after": record}  # re-keyed 26734 -> 26737
    latest = LatestDossiers(Originals(load_timeline()))
    latest.add(original)
    latest.add(copy)
    [kept] = latest.records()
    assert kept["receiving_unit"] == "26734" and latest.rekeyed == 1
    own = {**copy, "op": "c", "ts_ms": 3}  # a change by the new ward's own source
    latest.add(own)
    assert latest.records()[0]["receiving_unit"] == "26737"


def test_cli_as_hierarchy_and_trend_csv_and_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import csv
    import io

    import sqlalchemy as sa
    from click.testing import CliRunner

    from bus.cli.main import cli
    from bus.config import reset_settings
    from bus.envelope import load_record_schema
    from bus.generate import DATASETS, load_records

    monkeypatch.setenv("LGSP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LGSP_HIERARCHY", raising=False)
    reset_settings()
    june, sent = generated(["26734", "26737"], 2025, 6)  # a merge and a split
    later, _ = generated(["26737"], 2025, 8)  # the new Tân Định
    url = f"sqlite:///{tmp_path / 'city.db'}"
    engine = sa.create_engine(url)
    load_records(
        engine, "ho_so", load_record_schema(DATASETS["tthc.dossier"].schema_path), june + later
    )
    engine.dispose()
    base = ["report", "sla", "--level", "ward", "--url", url, "--table", "ho_so"]

    result = CliRunner().invoke(
        cli, [*base, "--month", "2025-06", "--as-hierarchy", "hcmc-2025", "--csv"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {r["unit"]: r for r in csv.DictReader(io.StringIO(result.stdout)) if r["field"] == "all"}
    assert rows["26737"]["received"] == str(sent["26734"])  # old Tân Định only
    assert "not regrouped: 26737 Phường Đa Kao (hcmc-2024), 2 dossiers: split" in result.stderr

    chart = tmp_path / "trend.png"
    result = CliRunner().invoke(
        cli,
        [*base, "--month", "2025-08", "--as-hierarchy", "hcmc-2025", "--trend", "24",
         "--csv", "--chart", str(chart)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    trend = [r for r in csv.DictReader(io.StringIO(result.stdout)) if r["unit"] == "26737"]
    assert [r["month"] for r in trend][:1] == ["2023-09"] and len(trend) == 24
    assert {r["month"]: r["received"] for r in trend}["2025-06"] == "1"
    assert {r["month"]: r["received"] for r in trend}["2025-08"] == "1"
    assert chart.read_bytes().startswith(b"\x89PNG")
    bad = CliRunner().invoke(cli, [*base, "--month", "2025-08", "--trend", "0"])
    assert bad.exit_code == 2 and "--trend" in bad.output
