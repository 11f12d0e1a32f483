"""Running Airflow 3 locally with the project's DAGs and the bus's environment."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bus import processes
from bus.broker import port_answers
from bus.config import Settings
from bus.errors import ConfigurationError, FatalError
from bus.state import home, read_json, write_json


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


# ``airflow dags test`` once per DAG id given, in one process: Airflow's imports and its
# in-process execution API are paid once, not once per run
DAGS_TEST_SCRIPT = """
import sys
from airflow.__main__ import main
for dag_id in sys.argv[1:]:
    sys.argv = ["airflow", "dags", "test", dag_id]
    main()
"""


def dags_test(
    settings: Settings, *dag_ids: str, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run each DAG once, in order, in-process in one child ``airflow dags test`` (what tests
    and the demo use: real DAG runs recorded in Airflow's database, without a scheduler). The
    first failed run ends the child with a non-zero code; ``timeout`` bounds all the runs."""
    airflow_bin()  # Airflow installed, or the error that says how
    return subprocess.run(
        [sys.executable, "-c", DAGS_TEST_SCRIPT, *dag_ids],
        env=airflow_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


STANDALONE_STATE = "standalone.json"
UI_ADDRESS = "127.0.0.1:8080"


@dataclass(frozen=True)
class Standalone:
    """What ``lgsp airflow status`` shows: the recorded standalone and what is left of it."""

    pid: int
    members: list[int]  # live processes of its session (scheduler, api-server, workers, ...)
    answering: bool  # the UI port accepts connections

    @property
    def running(self) -> bool:
        return bool(self.members)


def _state_path(settings: Settings) -> Path:
    return airflow_home(settings) / STANDALONE_STATE


def _members(state: dict[str, Any]) -> list[int]:
    """The live processes of the recorded standalone's session; none when its leader's pid
    now names another process (then its session, and everything in it, ended long ago)."""
    pid = int(state["pid"])
    if processes.pid_alive(pid) and not processes.process_alive(pid, state.get("started")):
        return []
    return processes.session_members(pid)


def standalone_status(settings: Settings) -> Standalone | None:
    """The standalone this state folder started (``None`` if none is recorded)."""
    state = read_json(_state_path(settings))
    if state is None:
        return None
    members = _members(state)
    return Standalone(int(state["pid"]), members, bool(members) and port_answers(UI_ADDRESS))


def standalone(settings: Settings) -> subprocess.Popen:
    """Start ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer) in a
    session of its own, recorded in the state folder so that ``stop_standalone`` ends all of
    it (``ConfigurationError`` while the recorded one runs)."""
    current = standalone_status(settings)
    if current is not None and current.running:
        raise ConfigurationError(
            f"airflow standalone already runs (pid {current.pid}): lgsp airflow stop first"
        )
    migrate(settings)
    return start_session(settings, [airflow_bin(), "standalone"], airflow_env(settings))


def start_session(settings: Settings, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start ``argv`` in a session of its own (its pid is the session id, which its children
    keep), logging to ``standalone.log`` and recorded as the standalone of this state folder."""
    airflow_home(settings).mkdir(parents=True, exist_ok=True)
    log = (airflow_home(settings) / "standalone.log").open("ab")
    with log:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    started = processes.start_ticks(proc.pid)
    write_json(_state_path(settings), {"pid": proc.pid, "started": started, "at": time.time()})
    return proc


def stop_standalone(settings: Settings, wait_s: float = 30.0) -> Standalone | None:
    """End every process of the recorded standalone's session: SIGTERM (standalone stops its
    components), then SIGKILL for what is left after ``wait_s``. Returns what was found
    (``None`` if nothing is recorded); ``FatalError`` if a process of it survives."""
    path = _state_path(settings)
    state = read_json(path)
    if state is None:
        return None
    found = Standalone(int(state["pid"]), _members(state), False)
    for sig, wait in ((signal.SIGTERM, wait_s), (signal.SIGKILL, 5.0)):
        left = _signal_session(state, sig, wait)
        if not left:
            path.unlink(missing_ok=True)
            return found
    raise FatalError(
        f"airflow standalone (session {found.pid}): processes {', '.join(map(str, left))} "
        "survived SIGKILL"
    )


def _signal_session(state: dict[str, Any], sig: signal.Signals, wait_s: float) -> list[int]:
    """Send ``sig`` to the session's process group and to each member (one may have made a
    group of its own); the members still alive after ``wait_s`` seconds."""
    members = _members(state)
    if members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(state["pid"]), sig)
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)
    deadline = time.monotonic() + wait_s
    while members and time.monotonic() < deadline:
        time.sleep(0.2)
        members = _members(state)
    return members


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
