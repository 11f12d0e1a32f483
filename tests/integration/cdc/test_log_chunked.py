"""``lgsp connector snapshot``: chunked re-snapshots of ``mode: log`` tables while a writer
changes them, on PostgreSQL (a private ``wal_level=logical`` cluster) and MariaDB (a private
server with a ROW binlog), with the real broker: one scenario per test, parametrised by engine.
The command's refusals are in ``test_pg_log_chunked`` (PostgreSQL) and
``test_my_log_chunked`` (MariaDB)."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bus.config import Settings
from bus.connector_service.registration import register
from bus.connector_service.resnapshot import request_snapshot
from bus.connectors_db import ConnectorStore
from bus.sync import run
from conftest import PG_URL
from tests.faults.harness import Running
from tests.helpers import drop_tables, wait_until
from tests.integration.cdc.helpers import Writer, drop_log, execute, read_topic, table_rows
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


def _pg_fill(url: str, table: str, first: int, last: int) -> None:
    execute(
        url,
        *(
            [
                "CREATE TABLE {t} (id int PRIMARY KEY, ten text NOT NULL, so_tien numeric(14, 2), "
                "luc timestamptz, du_lieu jsonb, ghi_chu text)",
                "ALTER TABLE {t} REPLICA IDENTITY FULL",
            ]
            if first == 1
            else []
        ),
        f"INSERT INTO {{t}} SELECT g, 'Trần Văn ' || g, g, now(), '{{\"a\": 1}}', NULL "  # noqa: S608
        f"FROM generate_series({first}, {last}) g",
        table=table,
    )


def _maria_fill(url: str, table: str, first: int, last: int) -> None:
    execute(
        url,
        *(
            [
                "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(100) NOT NULL, "
                "so_tien decimal(14, 2), luc datetime(6), du_lieu json, ghi_chu text) "
                "CHARSET utf8mb4"
            ]
            if first == 1
            else []
        ),
        f"INSERT INTO {{t}} SELECT seq, CONCAT('Trần Văn ', seq), seq, now(6), '{{\"a\": 1}}', "  # noqa: S608
        f"NULL FROM seq_{first}_to_{last}",
        table=table,
    )


@dataclass(frozen=True)
class Engine:
    """How the scenarios run on one engine."""

    kind: str  # the connector type
    server: str  # the fixture of the private server
    fill: Callable[[str, str, int, int], None]  # (url, table, first id, last id); creates at 1
    shared_sink: bool  # the sink writes to the shared PostgreSQL (else to the private server)


ENGINES = {
    "postgresql": Engine("postgresql", "logical_pg", _pg_fill, True),
    "mysql": Engine("mysql", "binlog_maria", _maria_fill, False),
}


@dataclass
class Pair:
    """Source ``s`` over two log tables (600 and 50 rows, chunks of 20), sink ``d`` of the
    first."""

    url: str  # the source's server
    sink_url: str
    table: str
    other: str
    dst: str
    topic: str


@pytest.fixture(params=list(ENGINES), ids=list(ENGINES))
def engine(request: pytest.FixtureRequest) -> Engine:
    return ENGINES[request.param]


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, engine: Engine, settings: Settings, unique: str
) -> Iterator[Pair]:
    url: str = request.getfixturevalue(engine.server).url
    sink_url = PG_URL if engine.shared_sink else url
    table, other, dst = f"chk_{unique}", f"chk2_{unique}", f"chk_dst_{unique}"
    engine.fill(url, table, 1, 600)
    engine.fill(url, other, 1, 50)
    dataset = f"tthc.c{unique}"
    tables = [
        {"table": table, "dataset": dataset, "mode": "log"},
        {"table": other, "dataset": f"tthc.o{unique}", "mode": "log"},
    ]
    source = register(settings, config(engine.kind, "source", url, tables, name="s", batch_size=20))
    sink = config(engine.kind, "sink", sink_url, [{"table": dst, "dataset": dataset}], name="d")
    register(settings, sink)
    try:
        yield Pair(url, sink_url, table, other, dst, source.tables[0].topic)
    finally:
        if engine.kind == "postgresql":
            drop_log(url, "s", table, other)
            drop_tables(PG_URL, [dst])
        else:
            for name in (table, other, dst):
                execute(url, "DROP TABLE IF EXISTS {t}", table=name)


def chunked(settings: Settings, table: str) -> dict[str, Any] | None:
    """The table's chunked-snapshot progress kept in its position (None: none pending)."""
    held = ConnectorStore(settings).positions("s").get(table)
    return None if held is None or held.position is None else held.position.get("chunked")


def resnapshot_rows(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The re-snapshot's ``r`` rows (the first snapshot's have no position)."""
    return [e for e in events if e["op"] == "r" and e["source"]["position"] is not None]


def check_order(settings: Settings, topic: str) -> int:
    """Apply the topic in order, key by key; every re-snapshot ``r`` row must carry exactly the
    state the changes published before it left (never an older one, never a deleted row), and
    no change published after it may have an older version (``ts_ms``: a sink would keep the
    row). Returns how many re-snapshot rows there were."""
    state: dict[str, Any] = {}
    row_version: dict[str, int] = {}
    resnapshot = 0
    for message in read_topic(settings, topic):
        event = message.value
        key = event["key"]
        if resnapshot_rows([event]):
            resnapshot += 1
            assert event["source"]["position"].endswith(":-1")
            if key in state:
                assert event["after"] == state[key], (
                    f"snapshot row of {key} at {event['source']['position']} differs from the "
                    "state the changes published before it left"
                )
            row_version[key] = int(event["ts_ms"])
        elif key in row_version:
            assert int(event["ts_ms"]) >= row_version[key], (
                f"a change of {key} published after its snapshot row is older than it"
            )
        state[key] = event["after"]
    return resnapshot


def test_resnapshot_while_a_writer_changes_the_table(
    settings: Settings, engine: Engine, pair: Pair
) -> None:
    assert run(settings, "s").status == "ok"
    assert run(settings, "d").status == "ok"
    other_topic = ConnectorStore(settings).get("s").topics[pair.other]
    other_before = len(read_topic(settings, other_topic))
    # the sink lost its rows: the re-snapshot restores them
    execute(pair.sink_url, "DELETE FROM {t}", table=pair.dst)
    writer = Writer(pair.url, pair.table, random.Random(15))
    try:
        writer.start()
        requested = request_snapshot(settings, "s", pair.table)
        assert [(r.table, r.requested) for r in requested] == [(pair.table, True)]
        assert chunked(settings, pair.table) is not None
        assert chunked(settings, pair.other) is None  # --table: only that one
        time.sleep(0.5)  # the writer's changes interleave with the chunks from the start
        kept: list[bool] = []  # after each committed batch: the progress is in the position
        report = run(
            settings, "s", progress=lambda _tr: kept.append(bool(chunked(settings, pair.table)))
        )
        assert report.status == "ok", report.to_dict()
        assert chunked(settings, pair.table) is None  # finished
        # every batch (a chunk's, the stream's, the end's) kept the progress until the last
        assert kept == sorted(kept, reverse=True) and kept.count(True) > 20, kept
    finally:
        writer.halt.set()
        writer.join(30)
    assert writer.transactions > 0
    assert run(settings, "s").status == "ok"
    assert run(settings, "d").status == "ok"
    assert table_rows(pair.sink_url, pair.dst) == table_rows(pair.url, pair.table), (
        "the sink differs from the source"
    )
    assert check_order(settings, pair.topic) > 300
    # --table: the other table was not read again (it had no change either)
    assert len(read_topic(settings, other_topic)) == other_before
    assert not resnapshot_rows([m.value for m in read_topic(settings, other_topic)])


def test_kill9_in_a_chunked_snapshot_resumes_after_the_last_chunk(
    settings: Settings, engine: Engine, cli_env: dict[str, str], pair: Pair, tmp_path: Path
) -> None:
    engine.fill(pair.url, pair.table, 601, 3000)
    assert run(settings, "s").status == "ok"
    assert [r.requested for r in request_snapshot(settings, "s")] == [True, True]
    writer = Writer(pair.url, pair.table, random.Random(9))
    env = {**os.environ, **cli_env}
    try:
        writer.start()
        argv = ("connector", "run", "s", "--follow", "--poll", "0.2")
        proc = Running(env, tmp_path / "logs", argv)
        wait_until(
            lambda: (chunked(settings, pair.table) or {}).get("chunks", 0) >= 5, 120, "5 chunks"
        )
        outcome = proc.kill9()
        assert outcome.killed, outcome.describe()
        at_kill = chunked(settings, pair.table)
        assert at_kill is not None and at_kill["after"] is not None
        last_key = int(at_kill["after"][0])
        assert last_key < 3000, "the chunked snapshot was over before the kill"
        before = {m.value["event_id"] for m in read_topic(settings, pair.topic)}
        time.sleep(0.5)  # the writer goes on while the connector is down
    finally:
        writer.halt.set()
        writer.join(30)
    report = run(settings, "s")
    assert report.status == "ok", report.to_dict()
    assert chunked(settings, pair.table) is None
    again = resnapshot_rows(
        [m.value for m in read_topic(settings, pair.topic) if m.value["event_id"] not in before]
    )
    assert again, "the restarted run read no chunk"
    reread = sorted(
        json.loads(e["key"])["id"] for e in again if json.loads(e["key"])["id"] <= last_key
    )
    assert not reread, f"rows of finished chunks (keys <= {last_key}) read again: {reread[:10]}"
    assert run(settings, "d").status == "ok"
    assert table_rows(pair.sink_url, pair.dst) == table_rows(pair.url, pair.table), (
        "the sink differs from the source"
    )
    check_order(settings, pair.topic)
