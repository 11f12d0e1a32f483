"""Facts about processes of this machine: alive or not, when they started, who is in a session.

Linux's ``/proc`` gives them cheaply; elsewhere only ``pid_alive`` answers (by signal 0) and
the others answer ``None`` or nothing, so that callers stay on the safe side.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3, the state, first);
    ``None`` when the process does not exist or ``/proc`` is not there."""
    try:
        text = (_PROC / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return text.rsplit(") ", 1)[1].split()  # the name may hold spaces and parentheses


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _stat_fields(pid)
    return fields is None or fields[0] != "Z"


def start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot: with the pid it names one process, even
    after the pid is reused. ``None`` when unknown."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields is not None else None  # field 22 of stat


def process_alive(pid: int, started: int | None) -> bool:
    """True while the process that had ``pid`` and started at ``started`` still runs (a new
    process that reuses the pid does not count); without ``started`` the pid alone decides."""
    if not pid_alive(pid):
        return False
    return started is None or start_ticks(pid) in (None, started)


def pid_scope() -> str:
    """Where a pid names the same process as here: this host's boot and pid namespace, as a
    short digest. Two containers sharing a host name but not their pids differ in it, and so
    does the same host after a reboot."""
    parts = [socket.gethostname()]
    for path in ("/proc/sys/kernel/random/boot_id", "/proc/self/ns/pid"):
        try:
            parts.append(os.readlink(path) if path.endswith("/pid") else Path(path).read_text())
        except OSError:
            parts.append("?")
    return hashlib.sha256("\0".join(p.strip() for p in parts).encode()).hexdigest()[:8]


def session_members(sid: int) -> list[int]:
    """The live processes of session ``sid`` (a session leader's pid), leader included.

    Linux does not give a new process a pid still in use as a session id, so what is found
    belongs to that session even after its leader exited."""
    members = []
    try:
        entries = list(_PROC.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None and fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry.name))
    return sorted(members)
