"""The auditor API's replay and history over HTTP beside ``lgsp replay`` for the same events.

N citizen events (one topic, three partitions) are published and archived; then, in the same
run: the JSONL replay of every event through a real ``lgsp serve`` with a real HTTP client
(``requests``, body streamed), the same replay by the ``lgsp replay --from --to`` command, and
the history of single keys (p50/p99 over 50 keys; each call verifies the key's whole chains,
so it grows with the chains' length). No target: the figures say what an auditor waits for
and what the HTTP layer and PII masking add to the CLI's replay (whose time includes the
command's start-up).
"""

from __future__ import annotations

import hashlib
import statistics
import subprocess
import time
from pathlib import Path

import pytest
import requests

from bench._report import machine, record, size
from bus.archive.archiver import Archiver
from bus.catalog import add_grant
from bus.config import Settings
from bus.publish import Publisher
from tests.integration.api.conftest import LGSP, Server, serve, server  # noqa: F401
from tests.unit.catalog.support import FAR_FUTURE, citizen_event, citizen_id, publish

pytestmark = pytest.mark.bench

FROM, TO = "2026-01-01T00:00:00+07:00", "2027-01-01T00:00:00+07:00"
PURPOSE = "Thanh tra"


def test_audit_replay_and_history_over_http(
    server: Server,  # noqa: F811 (the API tests' fixture, imported above)
    cli_env: dict[str, str],
    tmp_path: Path,
    unique: str,
) -> None:
    settings: Settings = server.settings
    n = size(100_000, 2_000)
    name = f"dancu.b{unique}"
    publish(settings, tmp_path, name)
    with Publisher(settings) as pub:
        for start in range(0, n, 10_000):
            batch = [citizen_event(i) for i in range(start, min(n, start + 10_000))]
            assert pub.publish(f"lgsp.79.{name}", batch, dataset=name).sent == len(batch)
    assert Archiver(settings).run_once(f"lgsp.79.{name}").appended == n
    clear = server.key("auditor", "thanh-tra")
    masked = server.key("auditor", "kiem-toan")
    add_grant(
        settings,
        dataset=name,
        agency="thanh-tra",
        purpose=PURPOSE,
        legal_basis="Luật Thanh tra 2022",
        fields="citizen_id,full_name,birth_date,phone,unit,household_id,note",
        allow_pii=True,
        expires=FAR_FUTURE,
    )
    path = f"/v1/audit/datasets/{name}/replay"

    def over_http(key: str) -> tuple[float, bytes]:
        began = time.perf_counter()
        with requests.get(
            server.url + path,
            params={"from": FROM, "to": TO},
            headers={"Authorization": f"Bearer {key}", "X-Purpose": PURPOSE},
            stream=True,
            timeout=600,
        ) as answer:
            assert answer.status_code == 200, answer.text
            body = b"".join(answer.iter_content(1 << 16))
        return time.perf_counter() - began, body

    http_s, http_body = over_http(clear)
    masked_s, masked_body = over_http(masked)
    began = time.perf_counter()
    cli = subprocess.run(
        [LGSP, "replay", name, "--from", FROM, "--to", TO, "--purpose", PURPOSE],
        capture_output=True,
        env=cli_env,
        check=True,
    )
    cli_s = time.perf_counter() - began
    assert hashlib.sha256(http_body).digest() == hashlib.sha256(cli.stdout).digest()
    assert len(masked_body.splitlines()) == n

    took = []
    for i in range(0, n, max(1, n // 50)):
        began = time.perf_counter()
        answer = server.call(
            "GET",
            f"/v1/audit/datasets/{name}/history/{citizen_id(i)}",
            clear,
            headers={"X-Purpose": PURPOSE},
        )
        took.append(time.perf_counter() - began)
        assert answer.status_code == 200 and answer.json()["verified"] is True
    took.sort()
    record(
        "audit_api_replay_history",
        {
            "events": n,
            "api_replay_s": round(http_s, 2),
            "api_replay_events_per_s": round(n / http_s),
            "api_replay_masked_s": round(masked_s, 2),
            "cli_replay_s": round(cli_s, 2),
            "history_p50_ms": round(statistics.median(took) * 1000, 1),
            "history_p99_ms": round(took[min(len(took) - 1, int(len(took) * 0.99))] * 1000, 1),
            "machine": machine(),
        },
    )
