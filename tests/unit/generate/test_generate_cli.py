"""``lgsp generate`` as a person runs it, and the SQL loader on SQLite."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.generate import generate, load_table
from bus.serde.jsoncodec import dumps
from tests.helpers import run_cli as run


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bus.config import reset_settings

    monkeypatch.setenv("LGSP_HOME", str(tmp_path / "home"))
    reset_settings()


def test_jsonl_to_stdout_matches_the_python_api() -> None:
    code, out, err = run(
        "generate", "tthc.dossier", "--rows", "20", "--seed", "4", "--unit", "26734"
    )
    assert code == 0, err
    expected = [dumps(r) for r in generate("tthc.dossier", 20, 4, ["26734"])]
    assert out.splitlines() == expected
    first = json.loads(out.splitlines()[0])
    assert first["receiving_unit"] == "26734"
    assert first["received_at"].endswith("+00:00")


def test_csv_parses_with_a_header_of_the_schema_fields(tmp_path: Path) -> None:
    target = tmp_path / "residents.csv"
    code, _, err = run(
        "generate", "dancu.resident", "--rows", "50", "--unit", "27460,27463",
        "--format", "csv", "--out", str(target),
    )  # fmt: skip
    assert code == 0, err
    assert "generated 50 dancu.resident rows" in err
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(rows) == 50
    assert list(rows[0]) == [
        "citizen_id", "full_name", "birth_date", "sex", "residence_type", "unit",
        "household_id", "address", "updated_at",
    ]  # fmt: skip
    assert {r["unit"] for r in rows} <= {"27460", "27463"}
    assert all(len(r["citizen_id"]) == 12 and r["citizen_id"].startswith("079") for r in rows)
    dt.date.fromisoformat(rows[0]["birth_date"])


def test_csv_keeps_the_status_history_as_json() -> None:
    code, out, _ = run(
        "generate", "tthc.dossier", "--rows", "5", "--unit", "26734", "--format", "csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    history = json.loads(rows[0]["status_history"])
    assert history[0]["status"] == "received"
    assert history[0]["at"] == rows[0]["received_at"]


def test_bad_input_is_one_line_and_a_non_zero_exit() -> None:
    code, _, err = run("generate", "tthc.dossier", "--rows", "5", "--unit", "99999")
    assert code == 2
    assert err.strip() == "error: unit '99999' is not in the administrative hierarchy 'hcmc-2024'"
    code, _, err = run("generate", "tthc.dossier", "--rows", "5", "--unit", "26734", "--table", "t")
    assert code == 2 and "--url and --table" in err
    code, _, err = run("generate", "tthc.nope", "--rows", "5", "--unit", "26734")
    assert code == 2 and "tthc.nope" in err


def test_load_table_into_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ward.db'}"
    engine = sa.create_engine(url)
    try:
        count = load_table(engine, "ho_so", "tthc.dossier", 1234, 9, ["26734"], batch_size=100)
        assert count == 1234
        inspector = sa.inspect(engine)
        assert inspector.get_pk_constraint("ho_so")["constrained_columns"] == ["dossier_id"]
        assert any(ix["column_names"] == ["updated_at"] for ix in inspector.get_indexes("ho_so"))
        expected = {r["dossier_id"]: r for r in generate("tthc.dossier", 1234, 9, ["26734"])}
        with engine.connect() as conn:
            assert conn.scalar(sa.text("select count(*) from ho_so")) == 1234
            rows = conn.execute(sa.text("select * from ho_so")).mappings().all()
        row = rows[0]
        want = expected[row["dossier_id"]]
        # timestamps are stored as UTC wall time; the history as JSON text
        stored = dt.datetime.fromisoformat(str(row["received_at"])).replace(tzinfo=dt.UTC)
        assert stored == want["received_at"]
        history = json.loads(row["status_history"])
        assert [c["status"] for c in history] == [c["status"] for c in want["status_history"]]
        with pytest.raises(Exception, match="already exists"):
            load_table(engine, "ho_so", "tthc.dossier", 5, 9, ["26734"])
        assert (
            load_table(engine, "ho_so", "tthc.dossier", 5, 9, ["26734"], if_exists="replace") == 5
        )
    finally:
        engine.dispose()


def test_load_table_decimals_and_dates_into_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'land.db'}"
    assert load_table(url, "thua_dat", "datdai.parcel", 200, 2, ["26737"]) == 200
    engine = sa.create_engine(url)
    try:
        table = sa.Table("thua_dat", sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            row = conn.execute(sa.select(table).limit(1)).mappings().one()
        assert isinstance(row["area_m2"], decimal.Decimal)
        assert row["area_m2"] == row["area_m2"].quantize(decimal.Decimal("0.01"))
    finally:
        engine.dispose()


def test_load_table_refuses_bad_names(tmp_path: Path) -> None:
    from bus.errors import InvalidNameError

    url = f"sqlite:///{tmp_path / 'x.db'}"
    for bad in ("ho_so; drop table x", "a.b.c", "1abc", ""):
        with pytest.raises(InvalidNameError, match="table"):
            load_table(url, bad, "tthc.dossier", 1, 1, ["26734"])
