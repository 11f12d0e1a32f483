"""kill -9 of a followed ``mode: log`` source while a writer changes the table: first during
its first snapshot (once a snapshot batch is committed), then at random moments. After a final
run the sink equals the source on every column (rows deleted while the snapshot was cut short
included), and the only change events published twice are ones the killed process published
after its last acknowledged (committed) position."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from bus.config import Settings
from bus.connector_service.registration import register
from bus.sync import run
from conftest import PG_URL
from tests.faults.harness import Running, fault_count, fault_rng
from tests.helpers import drop_tables, wait_until
from tests.integration.cdc.helpers import (
    Order,
    Writer,
    acked,
    assert_doubles_after_acked,
    drop_log,
    execute,
    phases,
    published,
    table_rows,
)
from tests.integration.cdc.pg_cluster import Cluster
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


def test_kill9_during_snapshot_and_stream(
    settings: Settings,
    cli_env: dict[str, str],
    logical_pg: Cluster,
    unique: str,
    tmp_path: Path,
) -> None:
    rng = fault_rng("pglog kill -9")
    url, table, dst = logical_pg.url, f"kill_{unique}", f"kill_dst_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten text NOT NULL, so_tien numeric(14, 2), "
        "luc timestamptz, du_lieu jsonb, ghi_chu text)",
        "ALTER TABLE {t} REPLICA IDENTITY FULL",
        "INSERT INTO {t} SELECT g, 'Trần Văn ' || g, g, now(), '{\"a\": 1}', NULL "
        "FROM generate_series(1, 2000) g",
        table=table,
    )
    dataset = f"tthc.k{unique}"
    tables = [{"table": table, "dataset": dataset, "mode": "log"}]
    topic = (
        register(settings, config("postgresql", "source", url, tables, name="s", batch_size=20))
        .tables[0]
        .topic
    )
    register(
        settings,
        config("postgresql", "sink", PG_URL, [{"table": dst, "dataset": dataset}], name="d"),
    )
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
            else:
                time.sleep(rng.uniform(0.5, 4.0))
            outcome = proc.kill9()
            assert outcome.killed, outcome.describe()
            seen = published(settings, topic)
            windows.append((acked(settings, "s"), max(seen, default=(0, -1))))
        writer.halt.set()
        writer.join(30)
        assert writer.transactions > 0
        report = run(settings, "s")
        assert report.status == "ok", report.to_dict()
        run(settings, "d")
        source = table_rows(url, table)
        assert table_rows(PG_URL, dst) == source, "the sink differs from the source"
        assert_doubles_after_acked(Counter(published(settings, topic)), windows)
    finally:
        writer.halt.set()
        drop_log(url, "s", table)
        drop_tables(PG_URL, [dst])
