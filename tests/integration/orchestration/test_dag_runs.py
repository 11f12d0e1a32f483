"""Real DAG runs (``airflow dags test``) against the real broker: roll-up ward → city."""

from __future__ import annotations

import re

import pytest

from bus.config import Settings
from bus.orchestration.local_airflow import dags_test, migrate
from bus.orchestration.manifest import write_manifest
from bus.routes import init_subjects
from bus.runs import list_runs
from tests.integration.routes.test_routes import dataset, publish_ward, read_all

pytestmark = pytest.mark.integration


def run_dags(settings: Settings, *dag_ids: str) -> None:
    """Run the DAGs once each, in order (one child process); each run must succeed."""
    result = dags_test(settings, *dag_ids)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    finished = re.findall(r"DagRun Finished: dag_id=([^,\s]+),.*?state=(\w+)", output)
    assert finished == [(d, "success") for d in dag_ids], (finished, output[-3000:])


def test_rollup_dags_forward_once(settings: Settings, tmp_path, unique: str) -> None:
    name = f"t.d{unique}"
    dataset(settings, tmp_path, name, ["26734", "27460"])
    init_subjects(settings, name)
    ids = publish_ward(settings, name, "26734", 6) + publish_ward(settings, name, "27460", 3)
    path = write_manifest(settings)
    assert path.is_file()
    migrate(settings)
    safe = name.replace(".", "_")
    district, city = f"lgsp_rollup__{safe}__district", f"lgsp_rollup__{safe}__city"
    # both DAGs, then both again: the reruns change nothing
    run_dags(settings, district, city, district, city)
    forwarded = read_all(settings, f"lgsp.79.{name}")
    assert sorted(m.value["event_id"] for m in forwarded) == sorted(ids), "each event once"
    runs = list_runs(settings, kind="route")
    assert [r.rows_out for r in runs[:4]] == [0, 0, 9, 9]
