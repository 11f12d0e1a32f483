"""kill -9 of every bus process and broker restarts at seeded random points, then the invariant.

Each round changes the source table (inserts, updates, soft deletes) and runs the stages in
order as separate ``lgsp`` processes; one of them, drawn at random, is killed -9 after a
random delay (a run that ends before is a completed run, checked as such). In the broker
scenario a round's fault may instead be a restart of the test's own embedded broker between
two stages: then every stage must refuse to run until ``lgsp broker restore``. After the
rounds every stage runs once more to the end and ``Pipeline.assert_invariant`` holds.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from bus.config import Settings
from conftest import MYSQL_URL, PG_URL
from tests.faults.harness import (
    Pipeline,
    Running,
    assert_refused,
    fault_count,
    fault_rng,
    full_size,
    pipeline,
    recover_broker,
    restart_broker,
)
from tests.helpers import own_broker

pytestmark = pytest.mark.integration


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/faults.db"
    return PG_URL if kind == "postgresql" else MYSQL_URL


# one dialect pair in make test; the others with LGSP_BENCH_FULL=1
PAIRS = [("postgresql", "mariadb")]
if full_size():
    PAIRS += [("mariadb", "postgresql"), ("sqlite", "postgresql"), ("postgresql", "sqlite")]


def _kill_round(pipe: Pipeline, rng: random.Random) -> bool:
    """The stages in order, one of them (drawn) killed -9 at a random moment; whether it was
    killed (rather than done before)."""
    victim = rng.choice(list(pipe.stages))
    killed = False
    for stage, (args, _) in pipe.stages.items():
        if stage != victim:
            pipe.check_completed(stage, pipe.procs.run(*args))
            continue
        outcome = pipe.procs.run_or_kill(rng, *args)
        if outcome.killed:
            killed = True
            pipe.after_kill(stage)
        else:
            pipe.check_completed(stage, outcome)
    return killed


def _restart_round(pipe: Pipeline, rng: random.Random) -> None:
    """The stages before a drawn one run, the broker restarts, then every stage refuses to run
    (exit 4, one line naming the command) until ``lgsp broker restore``; after it each stage
    runs to the end and is complete (the source rerun publishes again what the archive lacked)."""
    stages = list(pipe.stages.items())
    cut = rng.randrange(len(stages))
    for stage, (args, _) in stages[:cut]:
        pipe.check_completed(stage, pipe.procs.run(*args))
    restart_broker(pipe)
    for _stage, (args, _) in stages:
        assert_refused(pipe.procs.run(*args))
    recover_broker(pipe)
    for stage, (args, _) in stages:
        pipe.check_completed(stage, pipe.procs.run(*args))


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-route-{d}" for s, d in PAIRS])
def test_kill9_and_broker_restarts_between_bounded_runs(
    tmp_path: Path, unique: str, src: str, dst: str
) -> None:
    """Rounds of bounded runs on a broker of the test's own (never the session's), each with
    one fault drawn between a kill -9 of a stage and a broker restart (at least one of each)."""
    rng = fault_rng(f"kill -9 and broker restarts {src} -> route -> {dst}")
    faults = ["restart", "kill"]
    faults += [rng.choice(faults) for _ in range(max(0, fault_count() - len(faults)))]
    rng.shuffle(faults)
    with (
        own_broker(tmp_path / "own-broker-home") as settings,
        pipeline(settings, tmp_path, unique, _url(src, tmp_path), _url(dst, tmp_path)) as pipe,
    ):
        pipe.change(rng, inserts=120, updates=0, deletes=0)
        pipe.run_all()  # the typical duration of each stage, and a first state
        kills = 0
        for fault in faults:
            pipe.change(rng, inserts=rng.randrange(40, 160), updates=20, deletes=5)
            if fault == "restart":
                _restart_round(pipe, rng)
            else:
                kills += _kill_round(pipe, rng)
        print(f"faults {faults}: {kills} process(es) killed -9 mid-run")
        pipe.assert_invariant()


def test_kill9_followed_source_and_sink_while_rows_change(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    """A source and a sink with ``--follow`` run side by side while the source table
    changes; each is killed -9 and restarted at random moments."""
    rng = fault_rng("kill -9 --follow postgresql -> mariadb")
    with pipeline(settings, tmp_path, unique, PG_URL, MYSQL_URL, route=False) as pipe:
        pipe.change(rng, inserts=200, updates=0, deletes=0)
        follow = ("--follow", "--poll", "0.3")
        args = {
            "source": ("connector", "run", pipe.source, *follow),
            "sink": ("connector", "run", pipe.sink, "--follow"),
        }
        names = {"source": pipe.source, "sink": pipe.sink}

        def start(stage: str) -> Running:
            proc = pipe.procs.start(*args[stage])
            pipe.procs.wait_until_running(names[stage], proc)
            return proc

        running = {stage: start(stage) for stage in args}
        for _ in range(fault_count(2)):
            until = time.monotonic() + rng.uniform(0.5, 3.0)
            while time.monotonic() < until:
                pipe.change(rng, inserts=rng.randrange(1, 15), updates=3, deletes=1)
                time.sleep(0.1)
            victim = rng.choice(list(running))
            outcome = running[victim].kill9()
            assert outcome.killed, outcome.describe()  # a followed run does not end by itself
            pipe.procs.outcomes.append(outcome)
            pipe.after_kill(victim)
            running[victim] = start(victim)
        for proc in running.values():
            outcome = proc.stop()
            assert outcome.rc == 0, outcome.describe()  # SIGTERM: the batch in hand, then exit
        pipe.assert_invariant()
