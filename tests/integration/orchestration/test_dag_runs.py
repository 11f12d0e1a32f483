"""Real DAG runs (``airflow dags test``) against the real broker: roll-up ward → city."""

from __future__ import annotations

import pytest

from bus.config import Settings
from bus.orchestration.local_airflow import dags_test, migrate
from bus.orchestration.manifest import write_manifest
from bus.routes import init_subjects
from bus.runs import list_runs
from tests.integration.routes.test_routes import dataset, publish_ward, read_all

pytestmark = pytest.mark.integration


def run_dag(settings: Settings, dag_id: str) -> str:
    result = dags_test(settings, dag_id)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "state=success" in output, output[-3000:]
    return output


def test_rollup_dags_forward_once(settings: Settings, tmp_path, unique: str) -> None:
    name = f"t.d{unique}"
    dataset(settings, tmp_path, name, ["26734", "27460"])
    init_subjects(settings, name)
    ids = publish_ward(settings, name, "26734", 6) + publish_ward(settings, name, "27460", 3)
    path = write_manifest(settings)
    assert path.is_file()
    migrate(settings)
    safe = name.replace(".", "_")
    run_dag(settings, f"lgsp_rollup__{safe}__district")
    run_dag(settings, f"lgsp_rollup__{safe}__city")
    city = read_all(settings, f"lgsp.79.{name}")
    assert sorted(m.value["event_id"] for m in city) == sorted(ids)
    # rerunning both DAGs changes nothing
    run_dag(settings, f"lgsp_rollup__{safe}__district")
    run_dag(settings, f"lgsp_rollup__{safe}__city")
    assert len(read_all(settings, f"lgsp.79.{name}")) == len(ids)
    runs = list_runs(settings, kind="route")
    assert [r.rows_out for r in runs[:4]] == [0, 0, 9, 9]
