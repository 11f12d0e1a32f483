"""Running Airflow 3 locally with the project's DAGs and the bus's environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bus.config import Settings
from bus.errors import ConfigurationError
from bus.state import home


def airflow_home(settings: Settings) -> Path:
    return (home(settings) / "airflow").resolve()


def airflow_env(settings: Settings, parallelism: int = 4) -> dict[str, str]:
    """The environment for ``airflow`` commands: AIRFLOW_HOME under the state folder, the
    project's dags/, a LocalExecutor sized for a small machine, and the same LGSP_* values."""
    env = dict(os.environ)
    state = home(settings).resolve()
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home(settings)),
            "AIRFLOW__CORE__DAGS_FOLDER": str(settings.dags_dir.resolve()),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(parallelism),
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "LGSP_HOME": str(state),
            "LGSP_MANIFEST": str(state / "manifest.json"),
            "LGSP_SCHEMAS_DIR": str(settings.schemas_dir.resolve()),
            "LGSP_DAGS_DIR": str(settings.dags_dir.resolve()),
            "LGSP_HIERARCHY": settings.hierarchy,
        }
    )
    if settings.kafka_bootstrap:
        env["LGSP_KAFKA_BOOTSTRAP"] = settings.kafka_bootstrap
    if settings.database_url is not None:
        env["LGSP_DATABASE_URL"] = settings.database_url.get_secret_value()
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")  # standalone's children need it
    return env


def airflow_bin() -> str:
    found = shutil.which("airflow", path=str(Path(sys.executable).parent)) or shutil.which(
        "airflow"
    )
    if not found:
        raise ConfigurationError(
            "Airflow is not installed: pip install 'lgsp-bus[airflow]' (make install does it)"
        )
    return found


def migrate(settings: Settings) -> None:
    """Create or upgrade Airflow's metadata database (idempotent)."""
    result = subprocess.run(
        [airflow_bin(), "db", "migrate"],
        env=airflow_env(settings),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise ConfigurationError("airflow db migrate failed: " + " / ".join(tail))


def dags_test(settings: Settings, dag_id: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run one DAG once, in-process in a child ``airflow dags test`` (what tests and the demo
    use: a real DAG run recorded in Airflow's database, without a scheduler)."""
    return subprocess.run(
        [airflow_bin(), "dags", "test", dag_id],
        env=airflow_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def standalone(settings: Settings) -> subprocess.Popen:
    """Start ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer)."""
    migrate(settings)
    log = (airflow_home(settings) / "standalone.log").open("ab")
    return subprocess.Popen(
        [airflow_bin(), "standalone"],
        env=airflow_env(settings),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def login(settings: Settings) -> tuple[str, str] | None:
    """The admin login that standalone generated, once it has written it."""
    path = airflow_home(settings) / "simple_auth_manager_passwords.json.generated"
    try:
        import json

        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    user, password = next(iter(data.items()))
    return user, password
