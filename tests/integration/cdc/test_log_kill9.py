"""kill -9 of a followed ``mode: log`` source while a writer changes the table, on PostgreSQL
(a private ``wal_level=logical`` cluster) and MariaDB (a private server with a ROW binlog):
first during its first snapshot (once a snapshot batch is committed), then at random moments
(on MariaDB every other kill once the stream runs). After a final run the sink equals the
source on every column (rows deleted while the snapshot was cut short included), and the only
change events published twice are ones the killed process published after its last
acknowledged (committed) position. ``LGSP_BENCH_FULL=1`` (or ``LGSP_FAULT_KILLS``) sets the
number of kills."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bus.config import Settings
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
    gtid_key,
    log_pair,
    maria_acked_key,
    pg_acked_key,
    phases,
    position_key,
    published,
    table_rows,
    wide_table,
)

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Engine:
    """How the scenario runs on one engine."""

    kind: str  # the connector type
    server: str  # the fixture of the private server
    rows: int  # in the table before the first run
    event_key: Callable[[str], Order]  # orders the published change events
    acked_key: Callable[[dict[str, Any]], Order]  # orders the stored positions
    none_seen: Order  # the "published" position of a kill before any change event
    kill_in_stream: bool  # every other kill waits for the stream phase


ENGINES = {
    "postgresql": Engine(
        "postgresql", "logical_pg", 2000, position_key, pg_acked_key, (0, -1), False
    ),
    "mysql": Engine("mysql", "binlog_maria", 1000, gtid_key, maria_acked_key, (), True),
}


@pytest.mark.parametrize("engine", list(ENGINES.values()), ids=list(ENGINES))
def test_kill9_during_snapshot_and_stream(
    request: pytest.FixtureRequest,
    engine: Engine,
    settings: Settings,
    cli_env: dict[str, str],
    unique: str,
    tmp_path: Path,
) -> None:
    rng = fault_rng(f"{engine.kind} log kill -9")
    url: str = request.getfixturevalue(engine.server).url
    # the PostgreSQL sink writes to the shared server, the MariaDB one to the private server
    sink_url = PG_URL if engine.kind == "postgresql" else url
    table, dst = f"kill_{unique}", f"kill_dst_{unique}"
    wide_table(url, table, engine.rows)
    topic = log_pair(settings, engine.kind, url, table, f"tthc.k{unique}", sink_url, dst)
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
            elif engine.kill_in_stream and n % 2:
                # in the stream (the snapshot, redone after the first kill, is over)
                wait_until(lambda: phases(settings, "s") == {"stream"}, 60, "the stream")
                time.sleep(rng.uniform(0.2, 2.5))
            else:  # anywhere
                time.sleep(rng.uniform(0.5, 4.0))
            outcome = proc.kill9()
            assert outcome.killed, outcome.describe()
            seen = published(settings, topic, engine.event_key)
            windows.append(
                (acked(settings, "s", engine.acked_key), max(seen, default=engine.none_seen))
            )
        writer.halt.set()
        writer.join(30)
        assert writer.transactions > 0
        report = run(settings, "s")
        assert report.status == "ok", report.to_dict()
        assert run(settings, "d").status == "ok"
        source = table_rows(url, table)
        assert len(source) > 100
        assert table_rows(sink_url, dst) == source, "the sink differs from the source"
        assert_doubles_after_acked(Counter(published(settings, topic, engine.event_key)), windows)
    finally:
        writer.halt.set()
        if engine.kind == "postgresql":
            drop_log(url, "s", table)
            drop_tables(PG_URL, [dst])
        else:
            execute(url, "DROP TABLE IF EXISTS {t}", table=dst)
            execute(url, "DROP TABLE IF EXISTS {t}", table=table)
