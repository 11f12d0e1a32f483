"""kill -9 of a followed MariaDB ``mode: log`` source (the private server with a ROW binlog)
while a writer changes the table: first during its first snapshot (once a snapshot batch is
committed), then at random moments of the stream. After a final run the sink equals the source
on every column (rows deleted while the snapshot was cut short included), and the only change
events published twice are ones the killed process published after its last acknowledged
position (the PostgreSQL twin: ``test_pg_log_kill9``)."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from bus.config import Settings
from bus.connector_service.registration import register
from bus.sync import run
from tests.faults.harness import Running, fault_count, fault_rng
from tests.helpers import wait_until
from tests.integration.cdc.helpers import (
    Order,
    Writer,
    acked,
    assert_doubles_after_acked,
    execute,
    gtid_key,
    maria_acked_key,
    phases,
    published,
    table_rows,
)
from tests.integration.cdc.maria_server import MariaServer
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


def test_kill9_during_snapshot_and_stream(
    settings: Settings,
    cli_env: dict[str, str],
    binlog_maria: MariaServer,
    unique: str,
    tmp_path: Path,
) -> None:
    rng = fault_rng("mylog kill -9")
    url, table, dst = binlog_maria.url, f"kill_{unique}", f"kill_dst_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(100) NOT NULL, "
        "so_tien decimal(14, 2), luc datetime(6), du_lieu json, ghi_chu text) CHARSET utf8mb4",
        "INSERT INTO {t} SELECT seq, CONCAT('Trần Văn ', seq), seq, now(6), '{\"a\": 1}', NULL "
        "FROM seq_1_to_1000",
        table=table,
    )
    dataset = f"tthc.mk{unique}"
    tables = [{"table": table, "dataset": dataset, "mode": "log"}]
    topic = (
        register(settings, config("mysql", "source", url, tables, name="s", batch_size=20))
        .tables[0]
        .topic
    )
    register(settings, config("mysql", "sink", url, [{"table": dst, "dataset": dataset}], name="d"))
    env = {**os.environ, **cli_env}
    writer = Writer(url, table, rng)
    windows: list[tuple[Order, Order]] = []  # (acked, published) at kills
    try:
        writer.start()
        for n in range(fault_count(3)):
            proc = Running(
                env, tmp_path / "logs", ("connector", "run", "s", "--follow", "--poll", "0.2")
            )
            if n == 0:  # the first kill falls in the first snapshot, once a batch of it is in
                wait_until(lambda: phases(settings, "s") == {"snapshot"}, 60, "snapshot batch")
            elif n % 2:  # in the stream (the snapshot, redone after the first kill, is over)
                wait_until(lambda: phases(settings, "s") == {"stream"}, 60, "the stream")
                time.sleep(rng.uniform(0.2, 2.5))
            else:  # anywhere
                time.sleep(rng.uniform(0.5, 4.0))
            outcome = proc.kill9()
            assert outcome.killed, outcome.describe()
            seen = published(settings, topic, gtid_key)
            windows.append((acked(settings, "s", maria_acked_key), max(seen, default=())))
        writer.halt.set()
        writer.join(30)
        assert writer.transactions > 0
        report = run(settings, "s")
        assert report.status == "ok", report.to_dict()
        assert run(settings, "d").status == "ok"
        source = table_rows(url, table)
        assert len(source) > 100
        assert table_rows(url, dst) == source, "the sink differs from the source"
        assert_doubles_after_acked(Counter(published(settings, topic, gtid_key)), windows)
    finally:
        writer.halt.set()
        execute(url, "DROP TABLE IF EXISTS {t}", table=dst)
        execute(url, "DROP TABLE IF EXISTS {t}", table=table)
