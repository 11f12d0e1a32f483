"""An Airflow home per test module, migrated once (real Airflow 3, SQLite metadata DB)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bus.config import Settings
from bus.orchestration.local_airflow import airflow_env

DAGBAG_SCRIPT = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
heavy = [m for m in ("kafka", "fastavro", "avro", "bus.db", "bus.config", "bus.registry")
         if m in sys.modules]
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dag_ids), "heavy": heavy}))
"""


def dagbag(settings: Settings) -> dict:
    """Parse the project's dags/ the way Airflow does, in a child process with its env."""
    result = subprocess.run(
        [sys.executable, "-c", DAGBAG_SCRIPT, str(settings.dags_dir)],
        env=airflow_env(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_manifest_file(home: Path, manifest: dict) -> None:
    (home / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


@pytest.fixture
def airflow_settings(settings: Settings) -> Settings:
    return settings
