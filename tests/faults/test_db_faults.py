"""Database faults under a running bus process, then the invariant.

The sink writes as a login of the test's own (``harness.Account``), so each fault hits only
its sessions: its backends terminated mid-run (``pg_terminate_backend``, MariaDB ``KILL``), its
target table locked by another session, its INSERT/UPDATE privileges revoked then granted
back. A source table is dropped under a running source and restored. Each fault is first
checked to have landed (a session terminated, the sink seen waiting on the lock, the privilege
gone from the server's tables, the table gone while the run still ran). A run that exits 0 must
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
    full_size,
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


def _terminate_sessions(pipe: Pipeline, login: Account, rng: random.Random) -> int:
    """A sink run whose sessions are terminated at random moments until it ends. A run that
    finished before the first termination reached it (a busy machine) is judged and the fault
    tried again with more rows, up to 5 times: the test needs the fault to have landed."""
    terminated = 0
    for attempt in range(5):
        pipe.change(rng, inserts=rng.randrange(100, 250) * (attempt + 1), updates=20, deletes=5)
        pipe.check_completed("source", pipe.procs.run(*pipe.stages["source"][0]))
        running = pipe.procs.start(*_sink(pipe))
        while running.alive() and not login.sessions():
            time.sleep(0.02)  # until the sink has connected: the first termination hits it
        while running.alive():
            terminated += login.terminate_sessions()
            time.sleep(rng.uniform(0.1, 1.0))
        outcome = running.wait()
        pipe.procs.outcomes.append(outcome)
        _judge(pipe, outcome)
        if terminated:
            break
    assert terminated > 0, "no session of the sink was terminated: the fault hit nothing"
    return terminated


def _lock_table(pipe: Pipeline, login: Account, rng: random.Random) -> None:
    """A sink run that starts while another session holds its table locked for a while."""
    pipe.change(rng, inserts=rng.randrange(50, 150), updates=10, deletes=3)
    pipe.check_completed("source", pipe.procs.run(*pipe.stages["source"][0]))
    with login.table_locked(pipe.dst_table):
        running = pipe.procs.start(*_sink(pipe))
        deadline = time.monotonic() + 30
        waited = False
        while running.alive() and not waited and time.monotonic() < deadline:
            waited = login.waiting_on_lock()
            time.sleep(0.05)  # until the sink waits on the lock (or gave up)
        time.sleep(rng.uniform(0.1, 1.0))  # then held a little longer
    assert waited, "the sink never waited on the locked table: the fault hit nothing"
    outcome = running.wait()
    pipe.procs.outcomes.append(outcome)
    _judge(pipe, outcome)


def _revoke_writes(pipe: Pipeline, login: Account, rng: random.Random) -> None:
    """A sink run without INSERT/UPDATE fails, parks nothing, says so; then granted back."""
    pipe.change(rng, inserts=80, updates=10, deletes=3)
    pipe.check_completed("source", pipe.procs.run(*pipe.stages["source"][0]))
    login.revoke_writes(pipe.dst_table)
    assert not login.can_write(pipe.dst_table), "the revoke did not land"
    refused = pipe.procs.run(*_sink(pipe))
    assert refused.rc != 0, "a sink without INSERT/UPDATE reported success"
    assert pipe.dead_letters() == [], "a permission refusal parked rows in the DLQ"
    assert list_runs(pipe.settings, name=pipe.sink, limit=1)[0].status != "ok"
    login.grant_writes(pipe.dst_table)
    assert login.can_write(pipe.dst_table), "the grant did not land"


def test_sink_sessions_terminated_table_locked_privileges_revoked(
    sink_setup: tuple[Pipeline, Account],
) -> None:
    """The faults in a seeded random order, each more than once with LGSP_FAULT_KILLS."""
    pipe, login = sink_setup
    rng = fault_rng(f"{login.kind} sink faults")
    pipe.change(rng, inserts=60, updates=0, deletes=0)
    pipe.run_all()
    faults = [_terminate_sessions, _lock_table, _revoke_writes]
    faults += [rng.choice(faults) for _ in range(fault_count() - len(faults))]
    rng.shuffle(faults)
    terminated = 0
    for fault in faults:
        terminated += fault(pipe, login, rng) or 0
    print(f"faults: {[f.__name__ for f in faults]}; {terminated} session(s) terminated")
    pipe.assert_invariant()


# the MariaDB source in make test; PostgreSQL too with LGSP_BENCH_FULL=1
@pytest.mark.parametrize("kind", ["mariadb", "postgresql"] if full_size() else ["mariadb"])
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
            pipe.procs.wait_until_running(pipe.source, running)  # past its start-up
            time.sleep(rng.uniform(0.0, 0.3))
            under_a_run = running.alive()
            pipe.table.drop(engine)
            assert not sa.inspect(engine).has_table(pipe.src_table), "the drop did not land"
            assert under_a_run, "the source run ended before the drop: the fault hit nothing"
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


def test_a_seconds_cursor_catches_a_later_change_within_the_same_second(
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
