"""``lgsp airflow stop`` ends every process a standalone started, even after its leader was
killed alone ("kill PID" left the scheduler, api-server, triggerer and workers running).

A real process tree stands in for ``airflow standalone`` (which takes about 40 s to serve
here): a leader with a child that ignores SIGTERM, a child in a process group of its own and
a child with a grandchild, all in the session ``start_session`` gives it."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus import processes
from bus.cli.main import cli
from bus.config import Settings, reset_settings
from bus.errors import ExitCode
from bus.orchestration.local_airflow import (
    STANDALONE_STATE,
    airflow_home,
    standalone_status,
    start_session,
    stop_standalone,
)
from bus.state import write_json

SLEEP = "import time; time.sleep(300)"
IGNORES_TERM = f"import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); {SLEEP}"
OWN_GROUP = f"import os; os.setpgid(0, 0); {SLEEP}"
PARENT = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {SLEEP!r}]); {SLEEP}"
TREE = f"""
import subprocess, sys
for code in ({IGNORES_TERM!r}, {OWN_GROUP!r}, {PARENT!r}):
    subprocess.Popen([sys.executable, "-c", code])
{SLEEP}
"""


@pytest.fixture
def local(monkeypatch: pytest.MonkeyPatch, home: Path) -> Iterator[Settings]:
    monkeypatch.setenv("LGSP_HOME", str(home))
    reset_settings()
    yield Settings(home=home)
    reset_settings()


def _tree(settings: Settings) -> int:
    proc = start_session(settings, [sys.executable, "-c", TREE], dict(os.environ))
    deadline = time.monotonic() + 30
    while len(processes.session_members(proc.pid)) < 5:
        assert time.monotonic() < deadline, processes.session_members(proc.pid)
        time.sleep(0.1)
    return proc.pid


def lgsp(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout + result.stderr


def test_stop_ends_the_orphans_of_a_killed_leader(local: Settings) -> None:
    leader = _tree(local)
    os.kill(leader, signal.SIGKILL)  # what "stop with: kill PID" amounted to
    os.waitpid(leader, 0)
    orphans = processes.session_members(leader)
    assert len(orphans) == 4  # still running without their leader
    code, out = lgsp("airflow", "status")
    assert code == 0 and f"(pid {leader}): 4 processes" in out
    code, out = lgsp("airflow", "stop", "--wait", "1")
    assert code == 0 and f"stopped airflow standalone (pid {leader}, 4 processes)" in out
    assert processes.session_members(leader) == []
    assert not any(processes.pid_alive(pid) for pid in orphans)
    assert not (airflow_home(local) / STANDALONE_STATE).exists()
    code, out = lgsp("airflow", "status")
    assert code == ExitCode.RETRY and "not running" in out
    code, out = lgsp("airflow", "stop")
    assert code == 0 and "was not running" in out


def test_stop_ends_a_whole_running_tree(local: Settings) -> None:
    leader = _tree(local)
    found = stop_standalone(local, wait_s=1)
    assert found is not None and found.pid == leader and len(found.members) == 5
    os.waitpid(leader, 0)
    assert processes.session_members(leader) == []


def test_a_reused_pid_is_not_stopped(local: Settings) -> None:
    """The recorded leader's pid now names another process (here: this test's): nothing of
    the old session is left, and the other process is not signalled."""
    started = processes.start_ticks(os.getpid())
    assert started is not None
    path = airflow_home(local) / STANDALONE_STATE
    write_json(path, {"pid": os.getpid(), "started": started + 1})
    current = standalone_status(local)
    assert current is not None and not current.running
    found = stop_standalone(local, wait_s=0)
    assert found is not None and found.members == []
    assert not path.exists()
