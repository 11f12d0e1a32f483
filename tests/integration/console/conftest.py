"""The web console in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by
``.ci/run``) driven by Playwright, against a real ``lgsp serve`` process on the demo's data."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from bus.config import Settings
from bus.demo.logins import Login
from tests.helpers import wait_until
from tests.integration.api.conftest import LGSP, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SIZES = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
CITIZEN_ID = re.compile(r"(?<![0-9A-Za-z])\d{12}(?![0-9A-Za-z])")
PARKED_ID = "079123456789"  # a citizen id in a dead letter's reason: must never be shown


@dataclass
class Console:
    url: str
    settings: Settings
    logins: dict[str, Login]
    demo_dir: Path

    def call(
        self, method: str, path: str, role: str, headers: dict[str, str] | None = None, **kw: object
    ) -> requests.Response:
        headers = {**(headers or {}), "Authorization": f"Bearer {self.logins[role].key}"}
        return requests.request(method, self.url + path, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


def _park_one(settings: Settings) -> str:
    """A dead letter whose reason carries a citizen id (as a careless error text might),
    acknowledged and recorded as the bus's consumers park theirs."""
    from bus import broker_guard
    from bus.dlq import send_dead_letter
    from bus.errors import DataError
    from bus.kafka import clients

    topic = "lgsp.79.760.26734.tthc.dossier"
    group = "lgsp.sink.test"
    producer = clients.producer(settings)
    try:
        future = send_dead_letter(
            producer,
            topic=topic,
            key=b'{"dossier_id": "X-1"}',
            value=b"not avro",
            exc=DataError(f"applicant_id: expected a known citizen, got {PARKED_ID}"),
            partition=0,
            offset=7,
            stage="consume",
            group=group,
        )
        broker_guard.acknowledge(
            settings, producer, [future], broker_guard.dlq_origin(group), "a dead letter"
        )
    finally:
        producer.close(timeout=5)
    return topic


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """The demo (15 dossiers a ward, in-process) on a broker of its own, one dead letter, a key
    per role, and ``lgsp serve`` on a free port: built once for both console test modules
    (their tests add only data of their own: a connector, a dataset, grants)."""
    from bus import broker
    from bus.db.engine import dispose_engines
    from bus.demo.city import run_city_demo
    from bus.demo.logins import demo_logins

    external = os.environ.get("LGSP_KAFKA_BOOTSTRAP")
    own = Settings(home=tmp_path_factory.mktemp("console-broker"))
    bootstrap = external or broker.start_embedded(own).bootstrap
    home = tmp_path_factory.mktemp("console-home")
    settings = Settings(home=home, kafka_bootstrap=bootstrap)
    proc = None
    try:
        run_city_demo(settings, lambda _t: None, rows_per_ward=15, seed=7, use_airflow=False)
        _park_one(settings)
        logins = {x.role: x for x in demo_logins(settings)}
        port = free_port()
        demo_dir = (home / "demo").resolve()
        env = {
            **os.environ,
            "LGSP_HOME": str(home),
            "LGSP_KAFKA_BOOTSTRAP": bootstrap or "",
            "LGSP_DEMO_DIR": str(demo_dir),
        }
        env.pop("LGSP_DATABASE_URL", None)
        # its output to a file, not a pipe nobody reads: a full pipe (64 KB of request log)
        # would block the server in the middle of the session's tests
        log = tmp_path_factory.mktemp("console-serve") / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [LGSP, "serve", "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT
            )
        url = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc is not None and proc.poll() is None, log.read_text("utf-8", "replace")
            try:
                return requests.get(url + "/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(up, 60, "lgsp serve answering /healthz")
        yield Console(url, settings, logins, demo_dir)
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=40)
        if not external:
            broker.stop_embedded(own)
        dispose_engines()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the console tests need Debian's Chromium "
            "(apt-get install -y chromium chromium-driver; .ci/run installs it)",
            pytrace=False,
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
