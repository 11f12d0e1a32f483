"""The broker unreachable for a while (30 s at full size, 8 s in ``make test``) while a followed
``mode: log`` source streams a table a writer keeps changing: every connection to the broker
is closed and new ones are refused (a relay the broker advertises, cut; the broker itself keeps
its data). The slot must hold: its confirmed LSN never passes a change the broker did not
acknowledge. Then the run resumes by itself (or, had it exited non-zero, a rerun does), no run
reports success while losing data, and after a final run the sink equals the source on every
column."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus.config import Settings
from bus.db.engine import dispose_engines
from bus.runs import list_runs
from bus.sync import run
from conftest import PG_URL
from connectors.sql import pgoutput as pg
from connectors.sql.pglog import slot_name
from tests.faults.harness import Running, fault_rng, full_size
from tests.helpers import drop_tables, wait_until
from tests.integration.cdc.helpers import (
    Writer,
    acked,
    confirmed_flush,
    drop_log,
    log_pair,
    published,
    table_rows,
    wide_table,
)
from tests.integration.cdc.pg_cluster import Cluster
from tests.integration.cdc.relay import Relay, broker_behind_relay

pytestmark = pytest.mark.integration


def outage_seconds() -> float:
    return 30.0 if full_size() else 8.0


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    with broker_behind_relay(tmp_path / "broker") as made:
        yield made


def test_broker_outage_while_streaming(
    home: Path, relay: Relay, logical_pg: Cluster, unique: str, tmp_path: Path
) -> None:
    rng = fault_rng("pglog broker outage")
    settings = Settings(home=home, kafka_bootstrap=relay.address)
    env = {**os.environ, "LGSP_HOME": str(home), "LGSP_KAFKA_BOOTSTRAP": relay.address}
    env.pop("LGSP_DATABASE_URL", None)
    url, table, dst = logical_pg.url, f"out_{unique}", f"out_dst_{unique}"
    wide_table(url, table, 300)
    topic = log_pair(settings, "postgresql", url, table, f"tthc.o{unique}", PG_URL, dst)
    writer = Writer(url, table, rng)
    proc: Running | None = None
    try:
        writer.start()
        proc = Running(
            env, tmp_path / "logs", ("connector", "run", "s", "--follow", "--poll", "0.2")
        )
        wait_until(lambda: len(acked(settings, "s")) > 0, 60, "a change acknowledged")
        time.sleep(rng.uniform(0.2, 1.5))

        relay.cut()
        outage_started = time.monotonic()
        before = acked(settings, "s")
        slot = slot_name("s")
        confirmed_at_cut = confirmed_flush(url, slot)
        exited: int | None = None
        while time.monotonic() - outage_started < outage_seconds():
            if exited is None and not proc.alive():
                exited = proc.proc.returncode
            time.sleep(0.2)
        assert writer.transactions > 0
        confirmed = confirmed_flush(url, slot)  # nothing can reach the broker: frozen now
        assert confirmed >= confirmed_at_cut
        # what the broker holds, read with the connector stopped (SIGSTOP) so that nothing
        # more reaches it: every change the slot confirmed must be in it
        if proc.alive():
            os.killpg(proc.proc.pid, signal.SIGSTOP)
        relay.reopen()
        held = Counter(published(settings, topic))
        if proc.alive():
            os.killpg(proc.proc.pid, signal.SIGCONT)

        outcome = None
        if proc.alive():  # it rode out the outage: it must go on by itself
            wait_until(
                lambda: acked(settings, "s") > before or not proc.alive(),
                60,
                "the followed run publishing again after the outage",
            )
            assert proc.alive(), proc.wait().describe()
            writer.halt.set()
            writer.join(30)
            outcome = proc.stop()
            assert outcome.rc == 0, outcome.describe()
        else:  # it gave up: not with success, and a rerun resumes
            outcome = proc.wait()
            assert outcome.rc not in (0, None), outcome.describe()
            writer.halt.set()
            writer.join(30)
        assert exited is None or exited != 0, outcome.describe()

        report = run(settings, "s")
        assert report.status == "ok", report.to_dict()
        assert run(settings, "d").status == "ok"
        source = table_rows(url, table)
        assert table_rows(PG_URL, dst) == source, "the sink differs from the source"

        # the slot held: no change at or before its confirmed LSN was published only after the
        # outage (it was confirmed before the broker had it)
        late = [
            p for p in Counter(published(settings, topic)) if p not in held and p[0] < confirmed
        ]
        assert not late, (
            f"the slot was confirmed to {pg.lsn_text(confirmed)} during the outage, but "
            f"{len(late)} changes before it reached the broker only afterwards: {late[:5]}"
        )
        for info in list_runs(settings, name="s", limit=1000):
            if info.status in ("ok", "success"):
                assert not (info.detail or {}).get("error"), info
    finally:
        writer.halt.set()
        if proc is not None and proc.alive():
            os.killpg(proc.proc.pid, signal.SIGCONT)
            proc.kill9()
        dispose_engines()
        drop_log(url, "s", table)
        drop_tables(PG_URL, [dst])
