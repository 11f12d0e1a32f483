"""``lgsp connector snapshot`` of MariaDB ``mode: log`` tables: chunked re-snapshots while a
writer changes them, on the private server with a ROW binlog and the real broker (the
PostgreSQL twin: ``test_pg_log_chunked``)."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connector_service.resnapshot import request_snapshot
from bus.connectors_db import ConnectorStore
from bus.sync import run
from tests.faults.harness import Running
from tests.helpers import wait_until
from tests.integration.cdc.helpers import Writer, execute, read_topic, table_rows
from tests.integration.cdc.maria_server import MariaServer
from tests.integration.cdc.test_pg_log_chunked import check_order, chunked
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

DDL = (
    "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(100) NOT NULL, so_tien decimal(14, 2), "
    "luc datetime(6), du_lieu json, ghi_chu text) CHARSET utf8mb4"
)
INSERT = (
    "INSERT INTO {t} SELECT seq, CONCAT('Trần Văn ', seq), seq, now(6), '{\"a\": 1}', NULL "
    "FROM seq_{first}_to_{last}"
)


def fill(url: str, table: str, first: int, last: int, create: bool = True) -> None:
    execute(
        url,
        *([DDL] if create else []),
        INSERT.replace("{first}", str(first)).replace("{last}", str(last)),
        table=table,
    )


@pytest.fixture
def pair(
    settings: Settings, binlog_maria: MariaServer, unique: str
) -> Iterator[tuple[str, str, str, str]]:
    """Source ``s`` over two log tables (600 and 50 rows, chunks of 20), sink ``d`` of the
    first: (table, other table, sink table, topic)."""
    url = binlog_maria.url
    table, other, dst = f"chk_{unique}", f"chk2_{unique}", f"chk_dst_{unique}"
    fill(url, table, 1, 600)
    fill(url, other, 1, 50)
    dataset = f"tthc.mc{unique}"
    tables = [
        {"table": table, "dataset": dataset, "mode": "log"},
        {"table": other, "dataset": f"tthc.mo{unique}", "mode": "log"},
    ]
    source = register(settings, config("mysql", "source", url, tables, name="s", batch_size=20))
    register(settings, config("mysql", "sink", url, [{"table": dst, "dataset": dataset}], name="d"))
    try:
        yield table, other, dst, source.tables[0].topic
    finally:
        for name in (table, other, dst):
            execute(url, "DROP TABLE IF EXISTS {t}", table=name)


def resnapshot_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The re-snapshot's ``r`` rows (the first snapshot's have no position)."""
    return [e for e in events if e["op"] == "r" and e["source"]["position"] is not None]


def check_versions(settings: Settings, topic: str) -> None:
    """Key by key, no change published after a re-snapshot ``r`` row has an older version
    (``ts_ms``) than the row: a sink would keep the row (``check_order`` checks the rows'
    states)."""
    row_version: dict[str, int] = {}
    for event in (m.value for m in read_topic(settings, topic)):
        if event in resnapshot_rows([event]):
            row_version[event["key"]] = int(event["ts_ms"])
        elif event["key"] in row_version:
            assert int(event["ts_ms"]) >= row_version[event["key"]], (
                f"a change of {event['key']} published after its snapshot row is older than it"
            )


def test_resnapshot_while_a_writer_changes_the_table(
    settings: Settings, binlog_maria: MariaServer, pair: tuple[str, str, str, str]
) -> None:
    table, other, dst, topic = pair
    url = binlog_maria.url
    assert run(settings, "s").status == "ok"
    assert run(settings, "d").status == "ok"
    other_topic = ConnectorStore(settings).get("s").topics[other]
    other_before = len(read_topic(settings, other_topic))
    # the sink lost its rows: the re-snapshot restores them
    execute(url, "DELETE FROM {t}", table=dst)
    writer = Writer(url, table, random.Random(15))
    try:
        writer.start()
        requested = request_snapshot(settings, "s", table)
        assert [(r.table, r.requested) for r in requested] == [(table, True)]
        assert chunked(settings, table) is not None
        assert chunked(settings, other) is None  # --table: only that one
        time.sleep(0.5)
        kept: list[bool] = []  # after each committed batch: the progress is in the position
        report = run(
            settings, "s", progress=lambda _tr: kept.append(bool(chunked(settings, table)))
        )
        assert report.status == "ok", report.to_dict()
        assert chunked(settings, table) is None  # finished
        # every batch (a chunk's, the stream's, the end's) kept the progress until the last
        assert kept == sorted(kept, reverse=True) and kept.count(True) > 20, kept
    finally:
        writer.halt.set()
        writer.join(30)
    assert writer.transactions > 0
    assert run(settings, "s").status == "ok"
    assert run(settings, "d").status == "ok"
    assert table_rows(url, dst) == table_rows(url, table), "the sink differs from the source"
    assert check_order(settings, topic) > 300
    check_versions(settings, topic)
    # --table: the other table was not read again (it had no change either)
    assert len(read_topic(settings, other_topic)) == other_before


def test_kill9_in_a_chunked_snapshot_resumes_after_the_last_chunk(
    settings: Settings,
    cli_env: dict[str, str],
    binlog_maria: MariaServer,
    pair: tuple[str, str, str, str],
    tmp_path: Path,
) -> None:
    table, _other, dst, topic = pair
    url = binlog_maria.url
    fill(url, table, 601, 3000, create=False)
    assert run(settings, "s").status == "ok"
    assert [r.requested for r in request_snapshot(settings, "s")] == [True, True]
    writer = Writer(url, table, random.Random(9))
    env = {**os.environ, **cli_env}
    try:
        writer.start()
        proc = Running(
            env, tmp_path / "logs", ("connector", "run", "s", "--follow", "--poll", "0.2")
        )
        wait_until(lambda: (chunked(settings, table) or {}).get("chunks", 0) >= 5, 120, "5 chunks")
        outcome = proc.kill9()
        assert outcome.killed, outcome.describe()
        at_kill = chunked(settings, table)
        assert at_kill is not None and at_kill["after"] is not None
        last_key = int(at_kill["after"][0])
        assert last_key < 3000, "the chunked snapshot was over before the kill"
        before = {m.value["event_id"] for m in read_topic(settings, topic)}
        time.sleep(0.5)
    finally:
        writer.halt.set()
        writer.join(30)
    report = run(settings, "s")
    assert report.status == "ok", report.to_dict()
    assert chunked(settings, table) is None
    again = resnapshot_rows(
        [m.value for m in read_topic(settings, topic) if m.value["event_id"] not in before]
    )
    assert again, "the restarted run read no chunk"
    reread = sorted(
        json.loads(e["key"])["id"] for e in again if json.loads(e["key"])["id"] <= last_key
    )
    assert not reread, f"rows of finished chunks (keys <= {last_key}) read again: {reread[:10]}"
    assert run(settings, "d").status == "ok"
    assert table_rows(url, dst) == table_rows(url, table), "the sink differs from the source"
    check_order(settings, topic)
    check_versions(settings, topic)


def test_snapshot_of_a_maria_incremental_table_is_refused_with_the_reset_command(
    settings: Settings, cli_env: dict[str, str], binlog_maria: MariaServer, unique: str
) -> None:
    url, table = binlog_maria.url, f"inc_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(100), sua datetime(6) NOT NULL)",
        "INSERT INTO {t} VALUES (1, 'Phạm Thị Hoa', now(6))",
        table=table,
    )
    tables = [
        {"table": table, "dataset": f"tthc.mi{unique}", "mode": "incremental", "cursor": "sua"}
    ]
    register(settings, config("mysql", "source", url, tables, name="inc"))
    runner = CliRunner()
    try:
        assert run(settings, "inc").status == "ok"
        result = runner.invoke(cli, ["connector", "snapshot", "inc"], env=cli_env)
        assert result.exit_code != 0
        assert "has no table in mode: log" in result.output
        assert "lgsp connector reset inc" in result.output
        result = runner.invoke(cli, ["connector", "snapshot", "inc", "--table", table], env=cli_env)
        assert result.exit_code != 0
        assert f"table {table!r} of connector 'inc' is not in mode: log" in result.output
        assert f"lgsp connector reset inc --table {table}" in result.output
        held = ConnectorStore(settings).positions("inc")[table].position
        assert held is not None and "chunked" not in held
    finally:
        execute(url, "DROP TABLE IF EXISTS {t}", table=table)
