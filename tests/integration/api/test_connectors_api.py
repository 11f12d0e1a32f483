"""The connectors API: validate, create (its DAG appears in Airflow with no other command),
get with secrets masked, status, one run, reset, delete; refusals store nothing."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from bus.connectors_db import ConnectorStore
from bus.runs import record_run
from tests.integration.api.conftest import LGSP, Server
from tests.integration.connectors.helpers import config, sqlite_codes
from tests.integration.orchestration.conftest import dagbag

pytestmark = pytest.mark.integration


def source(tmp_path: Path, unique: str) -> dict:
    url = sqlite_codes(tmp_path / "ward.db", {"ho_so": ["A1", "B2", "C3"]})
    return config(
        "sqlite",
        "source",
        url,
        [{"table": "ho_so", "dataset": f"test.x{unique}", "mode": "incremental", "cursor": "id"}],
        name=f"api-src-{unique}",
    )


def test_connector_lifecycle_and_its_dag(server: Server, tmp_path: Path, unique: str) -> None:
    op, auditor = server.key("operator"), server.key("auditor", "thanh-tra")
    data = source(tmp_path, unique)
    name = data["name"]
    store = ConnectorStore(server.settings)

    # validate: the dry run's plan, or every field error; nothing stored either way
    ok = server.call("POST", "/connectors/validate", op, json=data).json()
    assert ok["error_count"] == 0 and ok["plan"]["stored"] is False
    bad = dict(data, role="both", tables=[{"table": "ho_so", "mode": "sometimes"}])
    answer = server.call("POST", "/connectors/validate", op, json=bad).json()
    assert answer["error_count"] >= 2
    assert {"role", "tables[0].mode"} <= {e["field"] for e in answer["errors"]}
    refused = server.call("POST", "/connectors", op, json=bad)
    assert refused.status_code == 422
    assert {"role", "tables[0].mode"} <= {e["field"] for e in refused.json()["errors"]}
    # a problem found when discovering the tables names its table's field too
    missing = dict(data, tables=[dict(data["tables"][0], table="ho_so_x")])
    answer = server.call("POST", "/connectors/validate", op, json=missing).json()
    assert [e["field"] for e in answer["errors"]] == ["tables[0]"], answer
    assert answer["errors"][0]["message"].startswith("(ho_so_x) ")
    unknown = server.call("POST", "/connectors", op, json=dict(data, colour="red"))
    assert unknown.status_code == 422 and "colour" in unknown.text
    assert server.call("POST", "/connectors", auditor, json=data).status_code == 403
    assert store.list() == []

    created = server.call("POST", "/connectors", op, json=data)
    assert created.status_code == 201, created.text
    assert created.json()["stored"] is True
    again = server.call("POST", "/connectors", op, json=data)
    assert again.status_code == 409
    bag = dagbag(server.settings)
    assert bag["errors"] == {}
    assert f"lgsp_sync__api_src_{unique}" in bag["dags"]

    assert server.call("GET", "/connectors", auditor).json() == [name]
    got = server.call("GET", f"/connectors/{name}", auditor).json()
    assert got["type"] == "source" and got["topics"] == {
        "ho_so": f"lgsp.79.760.26734.test.x{unique}"
    }
    run = server.call("POST", f"/connectors/{name}/runs", op)
    assert run.status_code == 200, run.text
    assert run.json()["rows"] == 3
    # a run of another kind under the same name is not the connector's
    record_run(server.settings, kind="route", name=name, status="ok", rows_in=99)
    status = server.call("GET", f"/connectors/{name}/status", auditor).json()
    assert status["connector"]["state"] == "IDLE"
    assert [r["rows_out"] for r in status["runs"]] == [3]
    assert status["positions"]["ho_so"]["rows"] == 3
    # the command line answers with the same function: the same JSON
    cli = {"LGSP_HOME": str(server.settings.home)}
    cli["LGSP_KAFKA_BOOTSTRAP"] = server.settings.kafka_bootstrap or ""
    shown = subprocess.run(
        [LGSP, "connector", "status", name, "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **cli},
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == status
    text = subprocess.run(
        [LGSP, "connector", "status", name],
        capture_output=True,
        text=True,
        env={**os.environ, **cli},
    )
    assert f"connector {name} (source): IDLE" in text.stdout
    assert "ho_so" in text.stdout and "after 3" in text.stdout, text.stdout
    assert server.call("POST", f"/connectors/{name}/runs", auditor).status_code == 403
    reset = server.call("DELETE", f"/connectors/{name}/offsets", op)
    assert reset.json() == {"name": name, "forgotten": 1}
    assert server.call("GET", "/connectors/no-such/status", op).status_code == 404
    assert server.call("DELETE", f"/connectors/{name}", auditor).status_code == 403
    assert server.call("DELETE", f"/connectors/{name}", op).status_code == 204
    assert store.list() == []
    assert f"lgsp_sync__api_src_{unique}" not in dagbag(server.settings)["dags"]


def test_secrets_are_masked(server: Server, tmp_path: Path, unique: str, pg_url: str) -> None:
    op = server.key("operator")
    data = source(tmp_path, unique)
    store_name = data["name"]
    assert server.call("POST", "/connectors", op, json=data).status_code == 201
    stored = ConnectorStore(server.settings).get(store_name)
    secret_url = pg_url.replace("postgres@", "postgres:s3cret-pw@")
    ConnectorStore(server.settings).add(
        name=stored.name,
        type=stored.type,
        role=stored.role,
        agency=stored.agency,
        unit=stored.unit,
        config=dict(stored.config, type="postgresql", connection={"url": secret_url}),
        topics=stored.topics,
        replace=True,
    )
    text = server.call("GET", f"/connectors/{store_name}", op).text
    assert "s3cret-pw" not in text
