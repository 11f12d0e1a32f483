"""A private MariaDB server for the binlog-capture tests: ``log_bin`` with ROW events and full
row images and metadata, without touching the machine's shared server (other work uses it with
its own settings).

``mariadb-install-db`` makes a data folder in a temporary directory; ``mariadbd`` serves it on
a free loopback port (``--user=root`` when the tests run as root), stopped at the end.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

BINLOG = {
    "binlog-format": "ROW",
    "binlog-row-image": "FULL",
    "binlog-row-metadata": "FULL",
}


class ServerUnavailable(RuntimeError):
    """The MariaDB server binaries are missing or the server did not start (the tests that
    need it fail with this reason, never skip)."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if not found:
        raise ServerUnavailable(
            f"{name} not found: install the MariaDB server package (mariadb-server) to run the "
            "mode: log tests of the mysql connector"
        )
    return found


@dataclass
class MariaServer:
    base: Path
    port: int
    binlog: dict[str, str] = field(default_factory=lambda: dict(BINLOG))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/test"

    def url_for(self, user: str) -> str:
        return f"mysql+pymysql://{user}@127.0.0.1:{self.port}/test"

    def start(self) -> None:
        data = self.base / "data"
        done = subprocess.run(
            [
                _binary("mariadb-install-db"), "--no-defaults", f"--datadir={data}",
                "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
            ],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip
        if done.returncode != 0:
            raise ServerUnavailable(f"mariadb-install-db failed: {done.stderr.strip()[-500:]}")
        options = [f"--{k}={v}" for k, v in self.binlog.items()]
        log = (self.base / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                _binary("mariadbd"), "--no-defaults", f"--datadir={data}",
                f"--socket={self.base / 'sock'}", f"--port={self.port}",
                "--bind-address=127.0.0.1", "--user=root", "--server-id=1",
                f"--log-bin={data / 'mariadb-bin'}", *options,
                "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
                "--skip-name-resolve", "--innodb-buffer-pool-size=16M",
                "--innodb-log-file-size=8M", "--innodb-flush-log-at-trx-commit=0",
                "--sync-binlog=0", "--max-connections=40", f"--pid-file={self.base / 'pid'}",
            ],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root")
                break
            except pymysql.err.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = (self.base / "server.log").read_text(errors="replace")[-800:]
                    self.stop()
                    raise ServerUnavailable(f"mariadbd did not start: {tail}") from None
                time.sleep(0.2)
        with conn.cursor() as cur:
            cur.execute("CREATE DATABASE test")
        conn.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(base: Path, **binlog: str) -> MariaServer:
    base.mkdir(parents=True, exist_ok=True)
    server = MariaServer(base, _free_port(), {**BINLOG, **binlog})
    server.start()
    return server
