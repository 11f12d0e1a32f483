"""lgsp serve: health, OpenAPI, graceful stop, API keys, roles, rate limits, bad input."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable

import pytest
import requests
from sqlalchemy import inspect

from bus.catalog import query_access
from bus.catalog.api_keys import list_keys, revoke_key
from bus.db import open_engine
from bus.registry import Registry
from tests.integration.api.conftest import LGSP, Server

pytestmark = pytest.mark.integration


def key_parts(key: str) -> tuple[str, str]:
    """(id, secret) of a key ``lgsp_<id>_<secret>``: the secret may itself contain "_"."""
    prefix, key_id, secret = key.split("_", 2)
    assert prefix == "lgsp" and len(key_id) == 12 and len(secret) == 43, key
    return key_id, secret


def test_health_ready_openapi_docs_and_graceful_stop(server: Server) -> None:
    assert server.call("GET", "/healthz").json() == {"status": "ok"}
    ready = server.call("GET", "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"control_db": "ok", "broker": "ok"}
    paths = server.call("GET", "/openapi.json").json()["paths"]
    assert {"/subjects", "/subjects/{subject}/versions", "/connectors", "/readyz"} <= set(paths)
    assert "swagger" in server.call("GET", "/docs").text.lower()
    code, out = server.stop()
    assert code == 0, out
    assert "Shutting down" in out and "Finished server process" in out


def test_401_without_a_live_key_403_outside_the_role_logged_nothing_stored(
    server: Server, cli_env: dict[str, str]
) -> None:
    body = {"schema": json.dumps({"type": "record", "name": "R", "fields": []})}
    assert server.call("GET", "/subjects").status_code == 401
    bad = server.call("GET", "/subjects", "lgsp_000000000000_" + "x" * 43)
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith("Bearer")
    auditor = server.key("auditor", "thanh-tra")
    assert server.call("GET", "/subjects", auditor).status_code == 200
    refused = server.call("POST", "/subjects/some-subject/versions", auditor, json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error_code"] == 403
    assert Registry(server.settings).versions("some-subject") == []
    entries = query_access(server.settings, agency="thanh-tra", action="refused")
    assert len(entries) == 1
    assert entries[0].detail["path"] == "/subjects/some-subject/versions"
    assert entries[0].principal.startswith("api-key:")
    # a revoked key is refused at once
    key_id, secret = key_parts(auditor)
    revoke_key(server.settings, "thanh-tra", key_id)
    assert server.call("GET", "/subjects", auditor).status_code == 401
    # keys are shown once: neither the list nor the CLI prints the secret or its digest
    listed = subprocess.run(
        [LGSP, "agency", "key", "list", "--json"], capture_output=True, text=True, env=cli_env
    )
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    assert "sha256" not in listed.stdout
    assert [k.id for k in list_keys(server.settings, "thanh-tra")] == [key_id]


def test_key_cli_create_list_revoke(cli_env: dict[str, str]) -> None:
    def lgsp(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([LGSP, *args], capture_output=True, text=True, env=cli_env)

    assert lgsp("agency", "add", "so-tttt", "--display", "Sở TT&TT").returncode == 0
    made = lgsp("agency", "key", "create", "so-tttt", "--role", "consumer", "--days", "30")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("lgsp_") and "shown once" in made.stderr
    key_id, secret = key_parts(key)
    listed = lgsp("agency", "key", "list", "so-tttt")
    assert key_id in listed.stdout and "consumer" in listed.stdout and "live" in listed.stdout
    assert secret not in listed.stdout
    wrong = lgsp("agency", "key", "create", "so-tttt", "--role", "root")
    assert wrong.returncode == 2 and "root" in wrong.stderr
    nobody = lgsp("agency", "key", "create", "no-such-agency", "--role", "operator")
    assert nobody.returncode == 2 and "not in the catalogue" in nobody.stderr
    assert lgsp("agency", "key", "revoke", "so-tttt", key_id).returncode == 0
    assert "revoked" in lgsp("agency", "key", "list", "so-tttt").stdout
    other = lgsp("agency", "key", "revoke", "so-tttt", "../../etc")
    assert other.returncode == 2


def test_rate_limit_per_key_429_with_retry_after(serve: Callable[..., Server]) -> None:
    server = serve(LGSP_API__RATE_PER_MINUTE="3")
    one, two = server.key("operator"), server.key("auditor", "thanh-tra")
    codes = [server.call("GET", "/subjects", one).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = server.call("GET", "/subjects", one)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert server.call("GET", "/subjects", two).status_code == 200  # per key, not global


def test_bad_input_huge_malformed_unknown_fields_path_and_sql_in_keys(server: Server) -> None:
    op = server.key("operator")
    huge = server.call(
        "POST",
        "/subjects/x-value/versions",
        op,
        data=b"{" + b" " * 2_000_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert huge.status_code == 413
    chunked = server.call(
        "POST",
        "/subjects/x-value/versions",
        op,
        data=iter([b"{", b" " * 2_000_000, b"}"]),
        headers={"Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    malformed = server.call(
        "POST",
        "/subjects/x-value/versions",
        op,
        data=b'{"schema": ',
        headers={"Content-Type": "application/json"},
    )
    assert malformed.status_code == 422 and malformed.json()["errors"]
    unknown = server.call(
        "POST", "/subjects/x-value/versions", op, json={"schema": '"string"', "colour": "red"}
    )
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["colour"]
    for subject in ("..%2F..%2Fetc", "x'; DROP TABLE registry_schema;--", "a b"):
        # one subject rule (bus.registry.store.check_subject) for reads and writes: 42208
        r = server.call("GET", f"/subjects/{requests.utils.quote(subject, safe='')}/versions", op)
        assert (r.status_code, r.json()["error_code"]) == (422, 42208), (subject, r.text)
        assert r.json()["message"].startswith("subject: expected")
        r = server.call(
            "POST",
            f"/subjects/{requests.utils.quote(subject, safe='')}/versions",
            op,
            json={"schema": json.dumps({"type": "record", "name": "R", "fields": []})},
        )
        assert (r.status_code, r.json()["error_code"]) == (422, 42208), (subject, r.text)
    assert "registry_schema" in inspect(open_engine(server.settings)).get_table_names()
    assert Registry(server.settings).subjects() == []
    huge_key = server.call("GET", "/subjects", "x" * 100_000)
    assert huge_key.status_code in (401, 431)


def test_metrics(server: Server) -> None:
    op = server.key("operator")
    server.call("GET", "/subjects", op)
    server.call("GET", "/subjects")
    # label values stay bounded: unknown methods and unmatched paths count as "other"
    for i in range(3):
        assert server.call("GET", f"/no/such/path-{i}", op).status_code == 404
    for method in ("PROPFIND", "MKCOL"):
        assert server.call(method, "/subjects", op).status_code == 405
    text = server.call("GET", "/metrics").text
    assert 'lgsp_api_requests_total{method="GET",route="/subjects",status="200"} 1.0' in text
    assert 'lgsp_api_requests_total{method="GET",route="/subjects",status="401"} 1.0' in text
    assert "lgsp_api_request_seconds_bucket" in text
    assert 'lgsp_api_requests_total{method="GET",route="other",status="404"} 3.0' in text
    assert 'lgsp_api_requests_total{method="other",' in text
    for raw in ("/no/such", "PROPFIND", "MKCOL"):
        assert raw not in text
