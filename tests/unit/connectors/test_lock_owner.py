"""Whose run lock may be taken over at once: a holder of this host, boot and pid namespace
whose process is gone, or whose pid now names another process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from bus import processes
from bus.connectors_db.store import holder_crashed, lock_owner


def _owner(pid: int, started: int | str, scope: str | None = None) -> str:
    return f"{socket.gethostname()}:{pid}:{started}:{scope or processes.pid_scope()}:abcd1234"


def test_this_process_is_a_live_holder() -> None:
    owner = lock_owner()
    assert owner.split(":")[1] == str(os.getpid())
    assert not holder_crashed(owner)


def test_a_dead_process_of_this_host_crashed() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = processes.start_ticks(child.pid)
    child.wait()  # reaped: the pid names nothing now
    assert not processes.pid_alive(child.pid)
    assert holder_crashed(_owner(child.pid, started if started is not None else "-"))


def test_a_reused_pid_does_not_keep_a_dead_holders_lock() -> None:
    """The pid is alive (this test's) but started at another time: another process."""
    started = processes.start_ticks(os.getpid())
    assert started is not None
    assert not holder_crashed(_owner(os.getpid(), started))
    assert holder_crashed(_owner(os.getpid(), started + 1))


def test_holders_elsewhere_or_unnamed_are_left_to_expire() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not holder_crashed(_owner(child.pid, "-", scope="00000000"))  # another namespace
    assert not holder_crashed(f"another-host:{child.pid}:-:{processes.pid_scope()}:ab")
    assert not holder_crashed(f"{socket.gethostname()}:{child.pid}:abcd1234")  # old format
    assert not holder_crashed("crashed")
