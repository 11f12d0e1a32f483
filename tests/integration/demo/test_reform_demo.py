"""``lgsp demo --hierarchy hcmc-2025`` at small scale, in-process (no Airflow): District 1's
history before the reform, the re-keying into the real new wards, the same pipeline after,
and every check of the demo passing; run twice without cleaning up."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.demo.reform import new_wards, run_reform_demo, summary_lines
from bus.units import load_hierarchy
from bus.units.timeline import load_timeline

pytestmark = pytest.mark.integration

ROWS = 12
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def test_reform_demo_end_to_end_then_again(settings: Settings) -> None:
    said: list[str] = []
    first = run_reform_demo(settings, said.append, rows_per_ward=ROWS, seed=7, use_airflow=False)

    new = load_hierarchy("hcmc-2025")
    timeline = load_timeline()
    expected_new = sorted(
        {timeline.changes_of(w, "hcmc-2024")[0].target({}) for w in first.old_wards}
        | {p for w in first.old_wards for p in timeline.changes_of(w, "hcmc-2024")[0].new},
        key=int,
    )
    assert first.new_wards == expected_new == new_wards()
    assert "Phường Sài Gòn" in {new.get(c).name for c in first.new_wards}
    assert first.old_rows == 10 * ROWS and first.new_rows == len(first.new_wards) * ROWS
    # every old ward's dossiers were re-keyed into its successor, none lost
    assert sum(n for _, n in first.rekeyed.values()) == first.old_rows
    assert first.rekeyed["26734"][0] == "26737"
    assert "successor is 26737 (Phường Tân Định)" in first.refusal
    assert first.dag_state == "in-process"
    assert first.city_rows == first.old_rows + first.new_rows
    assert first.disagreeing == []
    assert first.reconciled == len(first.new_wards) + 10 and first.agreeing == first.reconciled
    assert first.archive_ok
    # June 2025 regrouped: what was placed plus what was not adds up to June's dossiers
    june_rows = 0  # counted from the old wards' own databases
    for ward in first.old_wards:
        engine = sa.create_engine(
            f"sqlite:///{settings.home.resolve() / 'demo' / f'ward-{ward}.db'}"
        )
        with engine.connect() as conn:
            for (value,) in conn.execute(sa.text("SELECT received_at FROM ho_so")):
                at = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
                at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
                june_rows += at.astimezone(VN).strftime("%Y-%m") == "2025-06"
        engine.dispose()
    assert june_rows > 0
    placed = sum(received for _, _, received, _ in first.june)
    not_placed = sum(int(line.split(": ")[1].split(" ")[0]) for line in first.not_regrouped)
    assert placed + not_placed == june_rows
    assert {code for code, *_ in first.june} <= set(first.new_wards)
    assert any("26737 Phường Đa Kao" in line and "split" in line for line in first.not_regrouped)
    trend = Path(first.trend_csv).read_text("utf-8").splitlines()
    assert trend[0].startswith("month,level,unit") and len(trend) > 24
    assert any("re-keyed" in line for line in summary_lines(first))

    second = run_reform_demo(settings, said.append, rows_per_ward=ROWS, seed=7, use_airflow=False)
    assert sum(n for _, n in second.rekeyed.values()) == 0  # nothing re-keyed twice
    assert second.city_rows == first.city_rows
    assert second.agreeing == second.reconciled == first.reconciled
    assert second.archive_ok
