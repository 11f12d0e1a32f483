"""Showing the report (table, CSV, PNG chart) and ``lgsp report sla`` on a SQL table (SQLite)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.config import reset_settings
from bus.envelope import load_record_schema
from bus.generate import DATASETS, load_records
from bus.report.render import (
    CSV_COLUMNS,
    TABLE_HEADERS,
    ChartUnavailableError,
    table_rows,
    write_chart,
    write_csv,
)
from bus.report.service import build_report, read_table
from tests.helpers import run_cli as run
from tests.unit.report.cases import CASES, END_OF_OCTOBER, H2024, QUAN3_WARD

PNG = b"\x89PNG\r\n\x1a\n"
AS_OF = "2026-10-31T23:59:59+07:00"
VALID_CASES = [c for c in CASES if c["due_at"] is not None]


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LGSP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LGSP_HIERARCHY", raising=False)
    reset_settings()


@pytest.fixture
def city_db(tmp_path: Path) -> str:
    """A city sink database: the hand-worked dossiers in table ``ho_so``."""
    url = f"sqlite:///{tmp_path / 'city.db'}"
    engine = sa.create_engine(url)
    schema = load_record_schema(DATASETS["tthc.dossier"].schema_path)
    load_records(engine, "ho_so", schema, VALID_CASES)
    engine.dispose()
    return url


def ward_report() -> object:
    return build_report(CASES, hierarchy=H2024, level="ward", month="2026-10", as_of=END_OF_OCTOBER)


def test_table_rows_line_up_with_the_headers() -> None:
    rows = table_rows(ward_report())  # type: ignore[arg-type]
    assert all(len(r) == len(TABLE_HEADERS) for r in rows)
    first = rows[0]
    assert first[:3] == ["26734", "Phường Tân Định", "all"]
    assert first[3:10] == [6, 4, 2, 1, 1, 1, 1] and first[10] == "75.0%"
    justice = next(r for r in rows if r[0] == "26734" and r[2] == "justice")
    assert justice[10] == "-"
    totals_only = table_rows(ward_report(), by_field=False)  # type: ignore[arg-type]
    assert {r[2] for r in totals_only} == {"all"}


def test_csv_parses_and_carries_the_total() -> None:
    out = io.StringIO()
    write_csv(ward_report(), out)  # type: ignore[arg-type]
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(CSV_COLUMNS)
    tan_dinh = next(r for r in rows if r["unit"] == "26734" and r["field"] == "all")
    assert tan_dinh["kind"] == "unit" and tan_dinh["level"] == "ward"
    assert (tan_dinh["received"], tan_dinh["resolved_late"], tan_dinh["on_time_rate"]) == (
        "6",
        "1",
        "0.7500",
    )
    total = rows[-1]
    assert (total["kind"], total["unit"], total["level"]) == ("total", "79", "city")
    assert total["received"] == "10" and total["on_time_rate"] == "0.7500"
    justice = next(r for r in rows if r["unit"] == "26734" and r["field"] == "justice")
    assert justice["on_time_rate"] == ""


def test_chart_is_a_png(tmp_path: Path) -> None:
    target = write_chart(ward_report(), tmp_path / "out" / "wards.png")  # type: ignore[arg-type]
    data = target.read_bytes()
    assert data.startswith(PNG)
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 800 and height > 250


def test_chart_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ChartUnavailableError, match=r"pip install 'lgsp-bus\[chart\]'") as err:
        write_chart(ward_report(), tmp_path / "x.png")  # type: ignore[arg-type]
    assert isinstance(err.value, ImportError)
    assert not (tmp_path / "x.png").exists()


# -- reading a SQL table -------------------------------------------------------------------------


def test_read_table_gives_back_the_dossiers(city_db: str) -> None:
    records = list(read_table(city_db, "ho_so"))
    assert len(records) == len(VALID_CASES)
    d = next(r for r in records if r["dossier_id"] == "D")
    assert [c["status"] for c in d["status_history"]][1] == "supplement_requested"
    rep = build_report(
        records, hierarchy=H2024, level="ward", month="2026-10", as_of=END_OF_OCTOBER
    )
    expected = ward_report()
    assert rep.rows == expected.rows  # type: ignore[attr-defined]
    assert rep.total == expected.total  # type: ignore[attr-defined]


def test_read_table_leaves_out_deleted_rows_and_parses_json_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sink.db'}"
    engine = sa.create_engine(url)
    meta = sa.MetaData()
    table = sa.Table(
        "dossiers",
        meta,
        sa.Column("dossier_id", sa.String(64), primary_key=True),
        sa.Column("receiving_unit", sa.String(16)),
        sa.Column("field", sa.String(32)),
        sa.Column("received_at", sa.String(40)),
        sa.Column("due_at", sa.String(40)),
        sa.Column("resolved_at", sa.String(40)),
        sa.Column("status", sa.String(32)),
        sa.Column("status_history", sa.Text),
        sa.Column("__deleted", sa.Boolean),
    )
    meta.create_all(engine)
    history = [{"status": "received", "at": "2026-10-01T01:00:00+00:00"}]
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "dossier_id": ident,
                    "receiving_unit": "26734",
                    "field": "justice",
                    "received_at": "2026-10-01T08:00:00+07:00",
                    "due_at": "2026-10-02T08:00:00+07:00",
                    "resolved_at": "2026-10-01T09:00:00+07:00",
                    "status": "resolved",
                    "status_history": json.dumps(history),
                    "__deleted": deleted,
                }
                for ident, deleted in (("keep", False), ("gone", True))
            ],
        )
    engine.dispose()
    records = list(read_table(url, "dossiers"))
    assert [r["dossier_id"] for r in records] == ["keep"]
    assert records[0]["status_history"] == history


def test_read_table_errors(tmp_path: Path, city_db: str) -> None:
    from bus.errors import ConfigurationError, InvalidNameError, NotFoundError

    with pytest.raises(NotFoundError, match="table: nope does not exist"):
        list(read_table(city_db, "nope"))
    with pytest.raises(InvalidNameError):
        list(read_table(city_db, "ho_so; drop table ho_so"))
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("create table t (dossier_id text primary key, status text)"))
    engine.dispose()
    with pytest.raises(ConfigurationError, match="missing column.*received_at, due_at"):
        list(read_table(url, "t"))


# -- the command ---------------------------------------------------------------------------------


def test_cli_table_from_a_sql_table(city_db: str) -> None:
    code, out, err = run(
        "report", "sla", "--level", "ward", "--month", "2026-10", "--as-of", AS_OF,
        "--url", city_db, "--table", "ho_so",
    )  # fmt: skip
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("on-time dossiers, ward level, 2026-10, as of 2026-10-31T23:59:59")
    assert lines[1].split() == [h for header in TABLE_HEADERS for h in header.split()]
    tan_dinh = next(line for line in lines if line.startswith("26734") and " all " in line)
    assert tan_dinh.split()[-8:] == ["6", "4", "2", "1", "1", "1", "1", "75.0%"]
    # the columns line up: every row's rate column starts where the header's does
    column = lines[1].index("ON-TIME RATE")
    assert all(len(line) <= column or line[column - 1] == " " for line in lines[2:-2])
    assert lines[-2].startswith("total 79 Thành phố Hồ Chí Minh: received 10")
    assert lines[-1] == "skipped: 1 dossiers of units outside the hierarchy"


def test_cli_csv_and_chart(city_db: str, tmp_path: Path) -> None:
    chart = tmp_path / "district.png"
    code, out, err = run(
        "report", "sla", "--level", "district", "--month", "2026-10", "--as-of", AS_OF,
        "--url", city_db, "--table", "ho_so", "--csv", "--chart", str(chart),
    )  # fmt: skip
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    district_1 = next(r for r in rows if r["unit"] == "760" and r["field"] == "all")
    assert (district_1["received"], district_1["resolved"]) == ("9", "7")
    assert len([r for r in rows if r["field"] == "all" and r["kind"] == "unit"]) == 22
    assert chart.read_bytes().startswith(PNG)
    assert f"chart written to {chart}" in err


def test_cli_scope_and_as_of_date(city_db: str) -> None:
    code, out, err = run(
        "report", "sla", "--level", "ward", "--unit", "760", "--month", "2026-10",
        "--as-of", "2026-10-06", "--url", city_db, "--table", "ho_so", "--no-by-field", "--csv",
    )  # fmt: skip
    assert code == 0, err
    listed = list(csv.DictReader(io.StringIO(out)))
    assert QUAN3_WARD not in {r["unit"] for r in listed}
    assert {r["field"] for r in listed} == {"all"}  # --no-by-field
    kinds = [(r["kind"], r["level"]) for r in listed]
    # ten wards and the district as a whole (its own dossier K comes on 7 Oct)
    assert kinds == [("unit", "ward")] * 10 + [("total", "district")]
    # a bare date means the end of that day: C and F overdue, D open
    tan_dinh = listed[0]
    assert (tan_dinh["unit"], tan_dinh["overdue"], tan_dinh["open"]) == ("26734", "2", "1")


def test_cli_bad_input_is_one_line(city_db: str) -> None:
    cases = [
        (["--level", "district", "--month", "2026-10", "--source", "url"], "--source url"),
        (["--level", "district", "--month", "2026-10", "--url", city_db], "url and table"),
        (
            ["--level", "district", "--month", "2026-10", "--hierarchy", "hcmc-2025"]
            + ["--url", city_db, "--table", "ho_so"],
            "level: expected one of city, ward",
        ),
        (
            ["--level", "ward", "--month", "2026/10", "--url", city_db, "--table", "ho_so"],
            "month: expected YYYY-MM",
        ),
        (
            ["--level", "ward", "--month", "2026-10", "--as-of", "yesterday"]
            + ["--url", city_db, "--table", "ho_so"],
            "--as-of: expected an ISO 8601",
        ),
        (
            ["--level", "ward", "--month", "2026-10", "--url", city_db, "--table", "nope"],
            "table: nope does not exist",
        ),
    ]
    for args, message in cases:
        code, out, err = run("report", "sla", *args)
        assert code == 2, (args, out, err)
        assert err.startswith("error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1


def test_cli_default_as_of_is_the_month_end_in_the_past(city_db: str) -> None:
    code, out, _ = run(
        "report", "sla", "--level", "city", "--month", "2026-10", "--url", city_db,
        "--table", "ho_so",
    )  # fmt: skip
    assert code == 0
    if dt.datetime.now(dt.UTC) > dt.datetime(2026, 11, 1, tzinfo=dt.UTC):
        assert "as of 2026-10-31T23:59:59+07:00" in out.splitlines()[0]


def test_cli_trend_says_what_it_skipped(city_db: str) -> None:
    args = ["report", "sla", "--level", "ward", "--month", "2026-10", "--as-of", AS_OF]
    args += ["--url", city_db, "--table", "ho_so", "--trend", "2"]
    code, out, err = run(*args)
    assert code == 0, err
    assert out.splitlines()[-1] == "skipped: 1 dossiers of units outside the hierarchy"
    code, out, err = run(*args, "--csv")
    assert code == 0, err
    assert "skipped" not in out  # the CSV stays parseable
    assert "skipped: 1 dossiers of units outside the hierarchy" in err
