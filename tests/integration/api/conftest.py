"""A real ``lgsp serve`` process on a free port, on the test's state folder and broker."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bus.catalog import add_agency
from bus.catalog.api_keys import create_key
from bus.config import Settings
from tests.helpers import wait_until

LGSP = str(Path(sys.executable).with_name("lgsp"))


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[str]
    settings: Settings

    def key(self, role: str, agency: str = "so-tttt") -> str:
        add_agency(self.settings, agency, agency)
        return create_key(self.settings, agency, role)[1]

    def call(
        self, method: str, path: str, key: str | None = None, **kw: object
    ) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[arg-type]
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=40)
        return self.proc.returncode, out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve(settings: Settings) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(control: Settings | None = None, **env: str) -> Server:
        """A server on the test's settings, or on ``control`` (another control database)."""
        use = control or settings
        port = free_port()
        full = {
            **os.environ,
            "LGSP_HOME": str(use.home),
            "LGSP_KAFKA_BOOTSTRAP": use.kafka_bootstrap or "",
            **env,
        }
        full.pop("LGSP_DATABASE_URL", None)
        if use.database_url is not None:
            full["LGSP_DATABASE_URL"] = use.database_url.get_secret_value()
        proc = subprocess.Popen(
            [LGSP, "serve", "--port", str(port)],
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        server = Server(f"http://127.0.0.1:{port}", proc, use)
        started.append(server)

        def up() -> bool:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                return requests.get(server.url + "/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(up, 60, "lgsp serve answering /healthz")
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(serve: Callable[..., Server]) -> Server:
    return serve()
