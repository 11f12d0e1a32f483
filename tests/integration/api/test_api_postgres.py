"""The catalogue and auditor APIs on a PostgreSQL control database (production's): grants,
the access log's time window, a key's history and replay; NUL characters (which PostgreSQL
cannot keep in text) and SQL in keys are 4xx, never 500."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from bus.archive.archiver import Archiver
from bus.archive.replay import content_hash
from bus.catalog import list_grants, query_access
from bus.config import Settings
from bus.publish import Publisher
from tests.helpers import postgres_control
from tests.integration.api.conftest import Server
from tests.integration.api.test_audit_api import CCCD, ODD_KEY, PURPOSE, events
from tests.integration.api.test_catalog_api import grant_body
from tests.unit.catalog.support import citizen_id, publish

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_control(settings: Settings, pg_url: str, unique: str) -> Iterator[Settings]:
    """The test's settings on a fresh PostgreSQL control database, dropped afterwards."""
    with postgres_control(settings, pg_url, f"lgsp_api_{unique}") as control:
        yield control


def test_catalogue_and_audit_on_postgresql(
    serve: Callable[..., Server], pg_control: Settings, tmp_path: Path, unique: str
) -> None:
    server = serve(control=pg_control)
    assert server.call("GET", "/readyz").json()["checks"]["control_db"] == "ok"
    name = f"dancu.p{unique}"
    publish(pg_control, tmp_path, name)
    with Publisher(pg_control) as pub:
        assert pub.publish(f"lgsp.79.{name}", events(), dataset=name).sent == 8
    assert Archiver(pg_control).run_once(f"lgsp.79.{name}").appended == 8
    pub_key = server.key("publisher", "cong-an-tp")
    auditor = server.key("auditor", "thanh-tra")
    server.key("consumer", "ubnd-q1")

    nul = server.call("POST", "/v1/grants", pub_key, json=grant_body(name, purpose="a\u0000"))
    assert nul.status_code == 422, nul.text
    for path in (f"/v1/datasets/{name}%00", f"/v1/audit/datasets/{name}/history/a%00"):
        assert server.call("GET", path, auditor, headers=PURPOSE).status_code == 422, path
    refused = server.call("GET", "/v1/access-log", auditor, params={"agency": "\x00"})
    assert refused.status_code == 422
    assert list_grants(pg_control) == []
    made = server.call("POST", "/v1/grants", pub_key, json=grant_body(name))
    assert made.status_code == 201, made.text

    history = server.call(
        "GET", f"/v1/audit/datasets/{name}/history/{citizen_id(1)}", auditor, headers=PURPOSE
    )
    assert history.status_code == 200, history.text
    assert history.json()["verified"] is True and len(history.json()["events"]) == 3
    assert CCCD.findall(history.text) == []
    for key, status in ((ODD_KEY, 200), ("x' OR '1'='1", 404), ("1" * 1001, 422)):
        quoted = requests.utils.quote(key, safe="")
        r = server.call(
            "GET", f"/v1/audit/datasets/{name}/history/{quoted}", auditor, headers=PURPOSE
        )
        assert r.status_code == status, (key, r.text)

    replay = f"/v1/audit/datasets/{name}/replay"
    lines = server.call(
        "GET",
        replay,
        auditor,
        headers=PURPOSE,
        params={"from": "2026-01-01T00:00:00Z", "to": "2027-01-01T00:00:00Z"},
    )
    assert lines.status_code == 200 and len(lines.text.splitlines()) == 8
    rows = server.call(
        "GET", replay, auditor, headers=PURPOSE, params={"as_of": "2026-12-31T00:00:00Z"}
    )
    parsed = [json.loads(line) for line in rows.text.splitlines()]
    assert (
        content_hash([(r["key"], r["record"]) for r in parsed])
        == rows.headers["X-LGSP-Content-Hash"]
    )

    window = server.call(
        "GET",
        "/v1/access-log",
        auditor,
        params={"agency": "thanh-tra", "since": "2000-01-01", "until": "2099-01-01"},
    ).json()
    assert {e["action"] for e in window} == {"read", "replay"}
    assert len(window) == len(query_access(pg_control, agency="thanh-tra"))
    code, out = server.stop()
    assert code == 0 and citizen_id(1) not in out
