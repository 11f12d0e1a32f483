"""How far a MariaDB ``mode: log`` source is behind, on a private MariaDB with a ROW binlog:
the binlog not yet read in bytes (across files, by ``SHOW BINARY LOGS`` sizes) and the time
since the last acknowledged event, in show and status with the ``log:`` block's warnings; a
position whose binlog file was purged is reported, and stops the run, with the re-snapshot
command."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.sync import run
from tests.integration.cdc.helpers import execute
from tests.integration.cdc.maria_server import MariaServer
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

RESUME = "lgsp connector reset m && lgsp connector run m"


def lgsp(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def binlog(url: str) -> tuple[tuple[str, int], list[tuple[str, int]]]:
    """The server's position and its binlog files with their sizes."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            master = conn.exec_driver_sql("SHOW MASTER STATUS").one()
            logs = conn.exec_driver_sql("SHOW BINARY LOGS").all()
            return (str(master[0]), int(master[1])), [(str(r[0]), int(r[1])) for r in logs]
    finally:
        engine.dispose()


def make_source(settings: Settings, url: str, table: str, unique: str, **log: Any) -> None:
    execute(
        url, "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(100)) CHARSET utf8mb4", table=table
    )
    tables = [{"table": table, "dataset": f"tthc.mg{unique}", "mode": "log"}]
    register(settings, config("mysql", "source", url, tables, name="m", log=log or None))


def test_lag_in_bytes_across_files_and_time_with_warnings(
    cli_env: dict[str, str], settings: Settings, binlog_maria: MariaServer, unique: str
) -> None:
    url, table = binlog_maria.url, f"lag_{unique}"
    make_source(settings, url, table, unique, warn_bytes="1kB", warn_time="1s")
    try:
        assert run(settings, "m").rows == 0
        shown = json.loads(lgsp("connector", "show", "m", "--json")[1])["log"]
        # what is left is no transaction's (a rotation's checkpoint event at most)
        assert shown["behind_bytes"] < 512 and shown["behind_seconds"] == 0
        assert shown["warnings"] == []
        # changes in this file, a new file, more changes: read nothing yet
        execute(
            url,
            *[f"INSERT INTO {{t}} VALUES ({n}, '{'Phường Tân Định ' * 5}')" for n in range(1, 21)],  # noqa: S608
            table=table,
        )
        execute(url, "FLUSH BINARY LOGS")
        execute(url, "INSERT INTO {t} VALUES (100, 'Nguyễn Thị Minh Khai')", table=table)
        time.sleep(2.1)
        state = ConnectorStore(settings).positions("m")[table].position
        assert state is not None
        ours = (state.get("end_file") or state["file"], int(state["end"]))
        (server_file, server_pos), logs = binlog(url)
        sizes = dict(logs)
        assert ours[0] != server_file, "the changes span two files"
        expected = (
            sizes[ours[0]]
            - ours[1]
            + server_pos
            + sum(size for name, size in logs if ours[0] < name < server_file)
        )
        code, out, err = lgsp("connector", "status", "m", "--json")
        log = json.loads(out)["log"]
        assert log["behind_bytes"] == expected > 20 * 80
        assert log["behind_seconds"] >= 2
        assert (log["read_file"], log["read_position"]) == ours
        code, out, err = lgsp("connector", "show", "m")
        assert code == 0
        assert f"of binlog not yet read, from {ours[0]}:{ours[1]}; last change read" in out
        assert "limits (log:): warn at 1.0 kB, warn at 1s" in out
        assert f"the binlog read is {expected / 1024:.1f} kB behind the server's" in err
        assert "over log.warn_bytes = 1.0 kB" in err and "over log.warn_time = 1s" in err
        # the run warns at its start, then reads all: nothing behind any more
        report = run(settings, "m")
        assert report.rows == 21
        assert any("over log.warn_bytes" in w for w in report.tables[0].warnings)
        log = json.loads(lgsp("connector", "status", "m", "--json")[1])["log"]
        assert log["behind_bytes"] < 512 and log["behind_seconds"] == 0
        assert log["warnings"] == []
    finally:
        execute(url, "DROP TABLE IF EXISTS {t}", table=table)


def test_a_purged_binlog_file_is_reported_and_stops_the_run_with_the_resnapshot_command(
    cli_env: dict[str, str], settings: Settings, binlog_maria: MariaServer, unique: str
) -> None:
    url, table = binlog_maria.url, f"purge_{unique}"
    make_source(settings, url, table, unique)
    try:
        execute(url, "INSERT INTO {t} VALUES (1, 'Phan Bội Châu')", table=table)
        assert run(settings, "m").rows == 1
        held = ConnectorStore(settings).positions("m")[table].position
        assert held is not None
        file = held.get("end_file") or held["file"]
        execute(url, "FLUSH BINARY LOGS")
        execute(url, "INSERT INTO {t} VALUES (2, 'Võ Thị Sáu')", table=table)
        execute(url, "FLUSH BINARY LOGS")
        (current, _), _ = binlog(url)
        # a file is purged once the server's binlog checkpoint passed it (a moment later)
        deadline = time.monotonic() + 15
        while file in dict(binlog(url)[1]) and time.monotonic() < deadline:
            execute(url, f"PURGE BINARY LOGS TO '{current}'")
            time.sleep(0.2)
        assert file not in dict(binlog(url)[1])
        code, out, err = lgsp("connector", "show", "m")
        assert f"binlog file {file} (the connector's position) is no longer on the server" in err
        assert RESUME in err
        report = run(settings, "m")
        [tr] = report.tables
        assert tr.status == "stopped"
        assert f"binlog file {file} is no longer on the server (purged" in (tr.error or "")
        assert RESUME in (tr.error or "")
        ConnectorStore(settings).reset("m")
        assert run(settings, "m").rows == 2  # a new snapshot has both rows
    finally:
        execute(url, "DROP TABLE IF EXISTS {t}", table=table)
