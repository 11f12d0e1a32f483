"""The demo at small scale: ten ward databases to the city through one real DAG run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bus.config import Settings
from bus.db.engine import dispose_engines
from bus.demo.city import (
    CITY,
    DISTRICT,
    DemoResult,
    demo_dir,
    demo_env,
    run_city_demo,
    summary_lines,
)

pytestmark = pytest.mark.integration


@dataclass
class TwoRuns:
    settings: Settings
    first: DemoResult
    second: DemoResult
    said: list[str]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, module_broker: str) -> Iterator[TwoRuns]:
    """The small demo run twice in one state folder (the first through a real Airflow DAG
    run, the second in-process without cleaning up): built once for the module, its results
    checked by one test and its state damaged and repaired by another."""
    own = Settings(home=tmp_path_factory.mktemp("demo-home"), kafka_bootstrap=module_broker)
    said: list[str] = []
    first = run_city_demo(own, said.append, rows_per_ward=20, seed=11)
    second = run_city_demo(own, said.append, rows_per_ward=20, seed=11, use_airflow=False)
    yield TwoRuns(own, first, second, said)
    dispose_engines()


def test_demo_small_then_again(two_runs: TwoRuns) -> None:
    first = two_runs.first
    assert first.dag_state == "success"
    assert first.ward_rows == 200
    # every ward event reached the district and the city topics once
    assert first.topic_records["wards"] == 200
    assert first.topic_records["district"] == 200
    assert first.topic_records["city"] == 200
    assert first.sink_rows == {DISTRICT: 200, CITY: 200}
    assert first.dlq == 0
    assert (first.reconciled, first.agreeing) == (10, 10)
    assert first.archive_ok and first.archive_entries >= 600
    assert first.delivered == 200 and first.citizen_ids_leaked == 0
    assert len(first.on_time) == 10
    assert any("Phường Tân Định" in line for line in summary_lines(first))

    # a second run without cleaning up: a few dossiers changed in each ward, nothing duplicated
    second = two_runs.second
    assert second.ward_rows == 200
    assert second.sink_rows == {DISTRICT: 200, CITY: 200}
    assert (second.reconciled, second.agreeing) == (10, 10)
    assert second.topic_records["city"] > 200  # the updates travelled too
    assert second.archive_ok


def test_demo_copy_damaged_then_repaired(
    two_runs: TwoRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reconciliation finds damage in the city copy (of the module's demo state, which agrees
    everywhere after its two runs) and repairs it through the bus."""
    import sqlalchemy as sa

    from bus import sync
    from bus.reconcile.service import run_reconcile

    settings = two_runs.settings
    city = sa.create_engine(f"sqlite:///{demo_dir(settings) / 'unit-79.db'}")
    with city.begin() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                sa.text(
                    "SELECT dossier_id FROM ho_so WHERE receiving_unit = '26734' "
                    "ORDER BY dossier_id LIMIT 2"
                )
            )
        ]
        conn.execute(sa.text("DELETE FROM ho_so WHERE dossier_id = :d"), {"d": ids[0]})
        conn.execute(
            sa.text("UPDATE ho_so SET status = 'rejected' WHERE dossier_id = :d"), {"d": ids[1]}
        )
    city.dispose()
    # the demo's connector files refer to ${LGSP_DEMO_DIR}, as an operator's shell would set it
    for key, value in demo_env(settings).items():
        monkeypatch.setenv(key, value)
    # the city copy is filtered by its _lgsp_unit column automatically
    report = run_reconcile(settings, "ward-26734-dossiers", "ho_so", "sink-79-dossiers")
    assert not report.agree
    assert (len(report.missing), len(report.different)) == (1, 1)
    run_reconcile(settings, "ward-26734-dossiers", "ho_so", "sink-79-dossiers", repair=True)
    for level in ("district", "city"):
        from bus.routes import run_routes

        run_routes(settings, "tthc.dossier", level)
    sync.run(settings, "sink-79-dossiers")
    again = run_reconcile(settings, "ward-26734-dossiers", "ho_so", "sink-79-dossiers")
    assert again.agree


@pytest.mark.parametrize("server", ["pg", "mysql"])
def test_demo_on_a_database_server(
    settings: Settings, server: str, pg_url: str, mysql_url: str
) -> None:
    """The ward, district and city databases on PostgreSQL or MariaDB (--db-server)."""
    url = (pg_url if server == "pg" else mysql_url).rsplit("/", 1)[0]
    result = run_city_demo(
        settings,
        lambda _t: None,
        rows_per_ward=8,
        seed=3,
        use_airflow=False,
        db_server=url,
        fresh=True,
    )
    assert result.ward_rows == 80
    assert result.sink_rows == {DISTRICT: 80, CITY: 80}
    assert (result.reconciled, result.agreeing) == (10, 10)
    assert result.archive_ok and result.citizen_ids_leaked == 0
