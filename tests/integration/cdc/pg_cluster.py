"""A private PostgreSQL cluster for the log-capture tests: ``wal_level=logical`` without
touching the machine's shared server (other work uses it with its own settings).

``initdb`` runs as the ``postgres`` OS user when the tests run as root (the server refuses to
run as root), into a temporary folder, on a free loopback port, with trust authentication.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

SETTINGS = {
    "wal_level": "logical",
    "max_replication_slots": "10",
    "max_wal_senders": "10",
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "40",
    "wal_sender_timeout": "60s",
}


class ClusterUnavailable(RuntimeError):
    """No PostgreSQL server binaries here: the log tests cannot run (they never skip)."""


def _bindir() -> Path:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if not candidates:
        raise ClusterUnavailable(
            "initdb not found (on PATH or under the PostgreSQL packages' bin folders): install "
            "the PostgreSQL server package to run the mode: log tests"
        )
    return Path(candidates[0]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    data: Path
    port: int
    bindir: Path
    wal_level: str = "logical"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/test"

    def url_for(self, user: str) -> str:
        return f"postgresql+psycopg://{user}@127.0.0.1:{self.port}/test"

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = list(args)
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)

    def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.data, "postgres", "postgres")
            shutil.chown(self.data.parent, "postgres", "postgres")
        done = self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        if done.returncode != 0:
            raise ClusterUnavailable(f"initdb failed: {done.stderr.strip()[-500:]}")
        settings = {**SETTINGS, "wal_level": self.wal_level, "port": str(self.port)}
        conf = "".join(f"{k} = {v}\n" for k, v in settings.items())
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as f:
            f.write(conf)
        with (self.data / "pg_hba.conf").open("a", encoding="utf-8") as f:
            f.write("host replication all 127.0.0.1/32 trust\n")
        started = self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
            str(self.data / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip
        if started.returncode != 0:
            log = (self.data / "server.log").read_text(errors="replace")[-800:]
            raise ClusterUnavailable(f"pg_ctl start failed: {started.stderr.strip()} {log}")
        created = self._run(
            str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
            "-U", "postgres", "test",
        )  # fmt: skip
        if created.returncode != 0:
            raise ClusterUnavailable(f"createdb failed: {created.stderr.strip()}")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")


def start_cluster(base: Path, wal_level: str = "logical") -> Cluster:
    base.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chmod(base, 0o755)
    cluster = Cluster(base / "pgdata", _free_port(), _bindir(), wal_level)
    cluster.start()
    return cluster
