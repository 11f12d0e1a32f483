"""The API over a ``mode: log`` source (a real ``lgsp serve`` process, requests): the status
shows the slot, its retained WAL and the ``log:`` block's warning past its threshold, and
/metrics the same as gauges; DELETE drops slot and publication unless keep_slot."""

from __future__ import annotations

import pytest

from tests.integration.api.conftest import Server, serve, server  # noqa: F401 - fixtures
from tests.integration.cdc.helpers import drop_log, emit_wal, execute, slots
from tests.integration.cdc.pg_cluster import Cluster
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


def metric_values(text: str, connector: str) -> dict[str, float]:
    """The ``lgsp_log_*`` samples of ``connector`` in a /metrics page."""
    label = f'{{connector="{connector}"}}'
    return {
        line.split(label)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("lgsp_log_") and label in line
    }


def test_status_shows_the_slot_and_delete_drops_it_unless_kept(
    server: Server,  # noqa: F811 - the fixture imported above
    logical_pg: Cluster,
    unique: str,
) -> None:
    url, table, name = logical_pg.url, f"api_{unique}", f"api-{unique}"
    slot = f"lgsp_api_{unique}"
    op = server.key("operator")
    execute(url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text)", table=table)
    tables = [{"table": table, "dataset": f"tthc.a{unique}", "mode": "log"}]
    data = config("postgresql", "source", url, tables, name=name, log={"warn_bytes": "1MB"})
    try:
        assert server.call("POST", "/connectors", op, json=data).status_code == 201
        execute(url, "INSERT INTO {t} VALUES (1, 'Đỗ Thị Hạnh')", table=table)
        ran = server.call("POST", f"/connectors/{name}/runs", op)
        assert ran.status_code == 200, ran.text
        log = server.call("GET", f"/connectors/{name}/status", op).json()["log"]
        assert log["slot"] == slot and log["exists"] is True
        assert isinstance(log["retained_wal_bytes"], int) and log["retained_wal_bytes"] >= 0
        assert "problem" not in log
        # past the log: block's warning threshold the status says so, with figure and limit
        emit_wal(url, 2)
        log = server.call("GET", f"/connectors/{name}/status", op).json()["log"]
        assert log["behind_bytes"] > 1 << 20 and log["limits"]["warn_bytes"] == 1 << 20
        assert [w for w in log["warnings"] if "over log.warn_bytes = 1.0 MB" in w], log
        # and /metrics gives the same figures to a monitoring system
        shown = metric_values(server.call("GET", "/metrics").text, name)
        assert shown["lgsp_log_behind_bytes"] > 1 << 20, shown
        assert shown["lgsp_log_warnings"] >= 1 and shown["lgsp_log_status_up"] == 1, shown
        assert shown["lgsp_log_over_limit"] == 0, shown
        kept = server.call("DELETE", f"/connectors/{name}?keep_slot=true", op)
        assert kept.status_code == 204 and slot in slots(url)
        assert server.call("POST", "/connectors", op, json=data).status_code == 201
        assert server.call("DELETE", f"/connectors/{name}", op).status_code == 204
        assert slot not in slots(url)
    finally:
        drop_log(url, name, table)
