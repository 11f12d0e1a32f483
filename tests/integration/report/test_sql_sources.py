"""Generated departmental tables on the real PostgreSQL and MariaDB, and the report reading a
city sink table there."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus.cli.main import cli
from bus.generate import generate, load_table
from bus.report.service import build_report, read_table
from bus.units import load_hierarchy
from tests.helpers import drop_tables
from tests.unit.report.cases import END_OF_OCTOBER, H2024

pytestmark = pytest.mark.integration

WARDS = [u.code for u in load_hierarchy("hcmc-2024").children("760")]


@pytest.fixture(params=["postgresql", "mariadb"])
def db_url(request: pytest.FixtureRequest, pg_url: str, mysql_url: str) -> str:
    return pg_url if request.param == "postgresql" else mysql_url


@pytest.fixture
def table(db_url: str, unique: str) -> Iterator[str]:
    name = f"gen_{unique}"
    yield name
    drop_tables(db_url, [name])


def test_dossiers_round_trip_and_report(db_url: str, table: str) -> None:
    assert load_table(db_url, table, "tthc.dossier", 600, 4, WARDS, batch_size=250) == 600
    generated = list(generate("tthc.dossier", 600, 4, WARDS))
    engine = sa.create_engine(db_url)
    try:
        inspector = sa.inspect(engine)
        assert inspector.get_pk_constraint(table)["constrained_columns"] == ["dossier_id"]
        assert any(ix["column_names"] == ["updated_at"] for ix in inspector.get_indexes(table))
    finally:
        engine.dispose()
    stored = {r["dossier_id"]: r for r in read_table(db_url, table)}
    assert len(stored) == 600
    sample = generated[7]
    row = stored[sample["dossier_id"]]
    received = row["received_at"]
    if received.tzinfo is None:  # MariaDB: UTC wall time
        received = received.replace(tzinfo=dt.UTC)
    assert received == sample["received_at"]
    assert [c["status"] for c in row["status_history"]] == [
        c["status"] for c in sample["status_history"]
    ]
    for month in ("2026-09", "2026-10"):
        as_of = END_OF_OCTOBER if month == "2026-10" else END_OF_OCTOBER.replace(month=9, day=30)
        from_db = build_report(
            stored.values(), hierarchy=H2024, level="ward", month=month, as_of=as_of
        )
        direct = build_report(generated, hierarchy=H2024, level="ward", month=month, as_of=as_of)
        assert from_db.rows == direct.rows


def test_residents_and_parcels_keep_their_types(db_url: str, table: str, unique: str) -> None:
    assert load_table(db_url, table, "datdai.parcel", 300, 8, ["26734"]) == 300
    parcels = {p["parcel_id"]: p for p in generate("datdai.parcel", 300, 8, ["26734"])}
    residents_table = f"{table}_r"
    engine = sa.create_engine(db_url)
    try:
        assert load_table(engine, residents_table, "dancu.resident", 2000, 8, ["777"]) == 2000
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()  # noqa: S608
            resident = (
                conn.execute(
                    sa.text(f"SELECT * FROM {residents_table} ORDER BY citizen_id")  # noqa: S608
                )
                .mappings()
                .first()
            )
            permanent = conn.scalar(
                sa.text(
                    f"SELECT count(*) FROM {residents_table} "  # noqa: S608
                    "WHERE residence_type = 'permanent'"
                )
            )
        for row in rows:
            want = parcels[row["parcel_id"]]
            assert isinstance(row["area_m2"], decimal.Decimal)
            assert row["area_m2"] == want["area_m2"]
            assert row["owner_citizen_id"] == want["owner_citizen_id"]
        assert resident is not None and isinstance(resident["birth_date"], dt.date)
        assert resident["citizen_id"].startswith("079")
        assert permanent == round(2000 * 332_148 / 778_298)
    finally:
        engine.dispose()
        drop_tables(db_url, [residents_table])


def test_cli_generate_into_the_database_then_report(
    db_url: str, table: str, monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from bus.config import reset_settings

    monkeypatch.setenv("LGSP_HOME", str(tmp_path))
    reset_settings()
    runner = CliRunner()
    result = runner.invoke(
        cli,
        ["generate", "tthc.dossier", "--rows", "300", "--seed", "5", "--unit", "760"]
        + ["--start", "2026-10-01", "--url", db_url, "--table", table],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    assert f"generated 300 tthc.dossier rows into table {table}" in result.stderr
    again = runner.invoke(
        cli,
        ["generate", "tthc.dossier", "--rows", "3", "--unit", "760", "--url", db_url]
        + ["--table", table],
    )
    assert again.exit_code == 2 and "already exists" in again.stderr
    result = runner.invoke(
        cli,
        ["report", "sla", "--level", "district", "--unit", "760", "--month", "2026-10"]
        + ["--as-of", "2026-10-31T23:59:59+07:00", "--url", db_url, "--table", table, "--csv"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    d1 = next(line for line in lines if line.startswith("2026-10,unit,district,760,Quận 1,all,"))
    assert d1.split(",")[6] == "300"  # every dossier was received in October
    reset_settings()
