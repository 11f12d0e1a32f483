"""``lgsp demo --serve``: the demo ends by printing the console's URL and a login per role, then
keeps serving them; every printed login works and a SIGTERM ends it with exit 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from tests.helpers import wait_until
from tests.integration.api.conftest import LGSP, free_port

pytestmark = pytest.mark.integration


def test_demo_prints_the_console_and_keeps_serving(tmp_path: Path, own_broker: str) -> None:
    port = free_port()
    env = {**os.environ, "LGSP_HOME": str(tmp_path / "home"), "LGSP_KAFKA_BOOTSTRAP": own_broker}
    env.pop("LGSP_DATABASE_URL", None)
    env.pop("LGSP_DEMO_DIR", None)
    proc = subprocess.Popen(
        [LGSP, "demo", "--no-airflow", "--rows", "5", "--serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:

        def serving() -> bool:
            assert proc.poll() is None, "".join(lines)
            try:
                return requests.get(url + "/console/", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(serving, 300, "lgsp demo --serve answering /console/")
        out = "".join(lines)
        assert f"web console    {url}/console/" in out
        logins = dict(re.findall(r"^\s+(operator|publisher|consumer|auditor)\s+\S+\s+(lgsp_\S+)$",
                                 out, flags=re.MULTILINE))  # fmt: skip
        assert set(logins) == {"operator", "publisher", "consumer", "auditor"}
        for role, key in logins.items():
            me = requests.get(url + "/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)
            assert me.status_code == 200 and me.json()["role"] == role
        # the demo's connectors run from the console's server: LGSP_DEMO_DIR is set for it
        run = requests.post(
            url + "/connectors/ward-26734-dossiers/runs",
            headers={"Authorization": f"Bearer {logins['operator']}"},
            timeout=60,
        )
        assert run.status_code == 200, run.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
