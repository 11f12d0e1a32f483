"""``lgsp connector snapshot``: chunked re-snapshots of ``mode: log`` PostgreSQL tables while a
writer changes them, on the private logical cluster and the real broker."""

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
from conftest import PG_URL
from tests.faults.harness import Running
from tests.helpers import drop_tables, wait_until
from tests.integration.cdc.helpers import Writer, drop_log, execute, read_topic, table_rows
from tests.integration.cdc.pg_cluster import Cluster
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

DDL = (
    "CREATE TABLE {t} (id int PRIMARY KEY, ten text NOT NULL, so_tien numeric(14, 2), "
    "luc timestamptz, du_lieu jsonb, ghi_chu text)"
)


def fill(url: str, table: str, rows: int) -> None:
    execute(
        url,
        DDL,
        "ALTER TABLE {t} REPLICA IDENTITY FULL",
        "INSERT INTO {t} SELECT g, 'Trần Văn ' || g, g, now(), '{\"a\": 1}', NULL "
        "FROM generate_series(1, {n}) g".replace("{n}", str(rows)),
        table=table,
    )


@pytest.fixture
def pair(
    settings: Settings, logical_pg: Cluster, unique: str
) -> Iterator[tuple[str, str, str, str]]:
    """Source ``s`` over two log tables (600 and 50 rows, chunks of 20), sink ``d`` of the
    first: (table, other table, sink table, topic)."""
    url = logical_pg.url
    table, other, dst = f"chk_{unique}", f"chk2_{unique}", f"chk_dst_{unique}"
    fill(url, table, 600)
    fill(url, other, 50)
    dataset = f"tthc.c{unique}"
    tables = [
        {"table": table, "dataset": dataset, "mode": "log"},
        {"table": other, "dataset": f"tthc.o{unique}", "mode": "log"},
    ]
    source = register(
        settings, config("postgresql", "source", url, tables, name="s", batch_size=20)
    )
    register(
        settings,
        config("postgresql", "sink", PG_URL, [{"table": dst, "dataset": dataset}], name="d"),
    )
    try:
        yield table, other, dst, source.tables[0].topic
    finally:
        drop_log(url, "s", table, other)
        drop_tables(PG_URL, [dst])


def chunked(settings: Settings, table: str) -> dict[str, Any] | None:
    held = ConnectorStore(settings).positions("s").get(table)
    return None if held is None or held.position is None else held.position.get("chunked")


def check_order(settings: Settings, topic: str) -> int:
    """Apply the topic in order, key by key; every re-snapshot ``r`` row must carry exactly the
    state the changes published before it left (never an older one, never a deleted row).
    Returns how many re-snapshot rows there were."""
    state: dict[str, Any] = {}
    resnapshot = 0
    for message in read_topic(settings, topic):
        event = message.value
        key = event["key"]
        if event["op"] == "r" and event["source"]["position"] is not None:
            resnapshot += 1
            assert event["source"]["position"].endswith(":-1")
            if key in state:
                assert event["after"] == state[key], (
                    f"snapshot row of {key} at {event['source']['position']} differs from the "
                    "state the changes published before it left"
                )
        state[key] = event["after"]
    return resnapshot


def test_resnapshot_while_a_writer_changes_the_table(
    settings: Settings, logical_pg: Cluster, pair: tuple[str, str, str, str]
) -> None:
    table, other, dst, topic = pair
    url = logical_pg.url
    assert run(settings, "s").status == "ok"
    assert run(settings, "d").status == "ok"
    # the sink lost its rows: the re-snapshot restores them
    execute(PG_URL, 'DELETE FROM "{t}"', table=dst)
    writer = Writer(url, table, random.Random(15))
    try:
        writer.start()
        requested = request_snapshot(settings, "s", table)
        assert [(r.table, r.requested) for r in requested] == [(table, True)]
        assert chunked(settings, table) is not None
        assert chunked(settings, other) is None  # --table: only that one
        time.sleep(0.5)
        report = run(settings, "s")
        assert report.status == "ok", report.to_dict()
        assert chunked(settings, table) is None  # finished
    finally:
        writer.halt.set()
        writer.join(30)
    assert writer.transactions > 0
    assert run(settings, "s").status == "ok"
    assert run(settings, "d").status == "ok"
    assert table_rows(PG_URL, dst) == table_rows(url, table), "the sink differs from the source"
    assert check_order(settings, topic) > 300
    other_topic = ConnectorStore(settings).get("s").topics[other]
    assert all(
        m.value["source"]["position"] is None or m.value["op"] != "r"
        for m in read_topic(settings, other_topic)
    )


def test_kill9_in_a_chunked_snapshot_resumes_after_the_last_chunk(
    settings: Settings,
    cli_env: dict[str, str],
    logical_pg: Cluster,
    pair: tuple[str, str, str, str],
    tmp_path: Path,
) -> None:
    table, _other, dst, topic = pair
    url = logical_pg.url
    execute(
        url,
        "INSERT INTO {t} SELECT g, 'Lê ' || g, g, now(), NULL, NULL "
        "FROM generate_series(601, 3000) g",
        table=table,
    )
    assert run(settings, "s").status == "ok"
    request_snapshot(settings, "s")
    writer = Writer(url, table, random.Random(9))
    env = {**os.environ, **cli_env}
    try:
        writer.start()
        proc = Running(env, tmp_path / "logs", ("connector", "run", "s"))
        wait_until(lambda: (chunked(settings, table) or {}).get("chunks", 0) >= 5, 120, "5 chunks")
        outcome = proc.kill9()
        assert outcome.killed, outcome.describe()
        at_kill = chunked(settings, table)
        assert at_kill is not None and at_kill["after"] is not None
        last_key = int(at_kill["after"][0])
        before = {m.value["event_id"] for m in read_topic(settings, topic)}
        time.sleep(0.5)
    finally:
        writer.halt.set()
        writer.join(30)
    report = run(settings, "s")
    assert report.status == "ok", report.to_dict()
    assert chunked(settings, table) is None
    again = [
        m.value
        for m in read_topic(settings, topic)
        if m.value["event_id"] not in before
        and m.value["op"] == "r"
        and m.value["source"]["position"] is not None
    ]
    assert again, "the restarted run read no chunk"
    reread = sorted(
        json.loads(e["key"])["id"] for e in again if json.loads(e["key"])["id"] <= last_key
    )
    assert not reread, f"rows of finished chunks (keys <= {last_key}) read again: {reread[:10]}"
    assert run(settings, "d").status == "ok"
    assert table_rows(PG_URL, dst) == table_rows(url, table), "the sink differs from the source"
    check_order(settings, topic)


def test_snapshot_command_errors(
    settings: Settings, cli_env: dict[str, str], pair: tuple[str, str, str, str]
) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["connector", "snapshot", "s", "--table", "khong_co"], env=cli_env)
    assert result.exit_code != 0
    assert "'khong_co' is not a table of connector 's'" in result.output
    result = runner.invoke(cli, ["connector", "snapshot", "d"], env=cli_env)
    assert result.exit_code != 0
    assert "is a sink" in result.output
    result = runner.invoke(cli, ["connector", "snapshot", "s"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "not read yet" in result.output
    # a stopped connector (here: a TRUNCATE) would stop again at the same place: refused
    assert run(settings, "s").status == "ok"
    store = ConnectorStore(settings)
    table = pair[0]
    held = store.positions("s")[table].position
    assert held is not None
    store.save_position("s", table, {**held, "halt": "TRUNCATE at LSN 0/1: ..."})
    result = runner.invoke(cli, ["connector", "snapshot", "s", "--table", table], env=cli_env)
    assert result.exit_code != 0
    assert "is stopped (TRUNCATE at LSN 0/1" in result.output
    assert "lgsp connector reset s && lgsp connector run s" in result.output
    assert chunked(settings, table) is None
