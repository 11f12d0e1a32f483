"""Database faults under a running bus process, then the invariant.

The sink writes as a login of the test's own (``harness.Account``), so each fault hits only
its sessions: its backends terminated mid-run (``pg_terminate_backend``, MariaDB ``KILL``), its
target table locked by another session, its INSERT/UPDATE privileges revoked then granted
back. A source table is dropped under a running source and restored. A run that exits 0 must
have done all its work (``Pipeline.check_completed``); one that failed must say so in the run
history; after the faults every stage runs to the end and ``Pipeline.assert_invariant``
holds (sink = source on every column, no dead letter; the archive is left to the kill -9
scenarios, which verify it).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.runs import list_runs
from conftest import MYSQL_URL, PG_URL
from tests.faults.harness import (
    Account,
    Outcome,
    Pipeline,
    account,
    fault_count,
    fault_rng,
    pipeline,
)

pytestmark = pytest.mark.integration

ADMIN = {"postgresql": PG_URL, "mariadb": MYSQL_URL}
OTHER = {"postgresql": MYSQL_URL, "mariadb": PG_URL}


@pytest.fixture(params=["postgresql", "mariadb"])
def sink_setup(
    request: pytest.FixtureRequest, settings: Settings, tmp_path: Path, unique: str
) -> Iterator[tuple[Pipeline, Account]]:
    """A source on the other server, a sink on ``param`` writing as its own login."""
    kind = request.param
    with (
        account(kind, ADMIN[kind], unique) as login,
        pipeline(
            settings, tmp_path, unique, OTHER[kind], login.url, route=False, archive=False
        ) as pipe,
    ):
        yield pipe, login


def _sink(pipe: Pipeline) -> tuple[str, ...]:
    return pipe.stages["sink"][0]


def _judge(pipe: Pipeline, outcome: Outcome) -> None:
    """Exit 0: complete now. Otherwise: the run history does not say ``ok``."""
    if outcome.rc == 0:
        pipe.check_completed("sink", outcome)
    else:
        latest = list_runs(pipe.settings, name=pipe.sink, limit=1)
        assert latest and latest[0].status != "ok", (outcome.describe(), latest)
        pipe.after_kill("sink")


def test_sink_backends_terminated_mid_run(sink_setup: tuple[Pipeline, Account]) -> None:
    pipe, login = sink_setup
    rng = fault_rng(f"terminate {login.kind} sink sessions")
    pipe.change(rng, inserts=100, updates=0, deletes=0)
    pipe.run_all()
    terminated = 0
    for _ in range(max(2, fault_count() // 3)):
        pipe.change(rng, inserts=rng.randrange(100, 250), updates=20, deletes=5)
        pipe.check_completed("source", pipe.procs.run(*pipe.stages["source"][0]))
        running = pipe.procs.start(*_sink(pipe))
        while running.alive():
            time.sleep(rng.uniform(0.1, 1.0))
            terminated += login.terminate_sessions()
        outcome = running.wait()
        pipe.procs.outcomes.append(outcome)
        _judge(pipe, outcome)
    print(f"{terminated} sink session(s) terminated")
    pipe.assert_invariant()


def test_sink_target_table_locked(sink_setup: tuple[Pipeline, Account]) -> None:
    pipe, login = sink_setup
    rng = fault_rng(f"lock the {login.kind} sink table")
    pipe.change(rng, inserts=60, updates=0, deletes=0)
    pipe.run_all()
    for _ in range(2):
        pipe.change(rng, inserts=rng.randrange(50, 150), updates=10, deletes=3)
        pipe.check_completed("source", pipe.procs.run(*pipe.stages["source"][0]))
        with login.table_locked(pipe.dst_table):
            running = pipe.procs.start(*_sink(pipe))
            time.sleep(rng.uniform(1.0, 4.0))
        outcome = running.wait()
        pipe.procs.outcomes.append(outcome)
        _judge(pipe, outcome)
    pipe.assert_invariant()


def test_sink_privileges_revoked_then_granted(sink_setup: tuple[Pipeline, Account]) -> None:
    pipe, login = sink_setup
    rng = fault_rng(f"revoke {login.kind} sink privileges")
    pipe.change(rng, inserts=60, updates=0, deletes=0)
    pipe.run_all()
    pipe.change(rng, inserts=80, updates=10, deletes=3)
    pipe.check_completed("source", pipe.procs.run(*pipe.stages["source"][0]))
    login.revoke_writes(pipe.dst_table)
    refused = pipe.procs.run(*_sink(pipe))
    assert refused.rc != 0, "a sink without INSERT/UPDATE reported success"
    assert pipe.dead_letters() == [], "a permission refusal parked rows in the DLQ"
    assert list_runs(pipe.settings, name=pipe.sink, limit=1)[0].status != "ok"
    login.grant_writes(pipe.dst_table)
    pipe.assert_invariant()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_source_table_dropped_and_restored_under_a_run(
    settings: Settings, tmp_path: Path, unique: str, kind: str
) -> None:
    rng = fault_rng(f"drop the {kind} source table")
    with pipeline(
        settings, tmp_path, unique, ADMIN[kind], OTHER[kind], route=False, archive=False
    ) as pipe:
        pipe.change(rng, inserts=50, updates=0, deletes=0)
        pipe.run_all()
        pipe.change(rng, inserts=400, updates=10, deletes=3)
        engine = sa.create_engine(pipe.src_url)
        try:
            with engine.connect() as conn:
                saved = [dict(r) for r in conn.execute(sa.select(pipe.table)).mappings()]
            running = pipe.procs.start(*pipe.stages["source"][0])
            time.sleep(rng.uniform(0.5, 2.5))
            pipe.table.drop(engine)
            time.sleep(rng.uniform(0.1, 1.0))
            pipe.table.create(engine)  # restored as from a backup
            with engine.begin() as conn:
                conn.execute(pipe.table.insert(), saved)
        finally:
            engine.dispose()
        outcome = running.wait()
        pipe.procs.outcomes.append(outcome)
        print(f"source run during the drop: {outcome.describe()}")
        if outcome.rc == 0:
            pipe.check_completed("source", outcome)
        else:
            pipe.after_kill("source")
        pipe.change(random.Random(rng.random()), inserts=20, updates=5, deletes=1)
        pipe.assert_invariant()


@pytest.mark.xfail(
    strict=True,
    reason="issue 13 hole 4 (cursor lookback, another helper's part): a MariaDB DATETIME "
    "cursor has seconds; a row updated later within the second of the last position, with a "
    "lower key, is never read and the source run still exits 0",
)
def test_a_seconds_cursor_misses_a_later_change_within_the_same_second(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    with pipeline(
        settings,
        tmp_path,
        unique,
        MYSQL_URL,
        PG_URL,
        route=False,
        archive=False,
        seconds_cursor=True,
    ) as pipe:
        rng = random.Random(13)
        pipe.change(rng, inserts=5, updates=0, deletes=0)  # all within one second
        pipe.run_all()
        pipe.change(rng, inserts=0, updates=1, deletes=0)  # a lower key, the same second
        pipe.assert_invariant()
