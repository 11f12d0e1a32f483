"""kill -9 of every bus process at seeded random points, then the invariant.

Each round changes the source table (inserts, updates, soft deletes) and runs the stages in
order as separate ``lgsp`` processes; one of them, drawn at random, is killed -9 after a
random delay (a run that ends before is a completed run, checked as such). After the rounds
every stage runs once more to the end and ``Pipeline.assert_invariant`` holds.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bus.config import Settings
from conftest import MYSQL_URL, PG_URL
from tests.faults.harness import Running, fault_count, fault_rng, full_size, pipeline

pytestmark = pytest.mark.integration


def _url(kind: str, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/faults.db"
    return PG_URL if kind == "postgresql" else MYSQL_URL


# one dialect pair in make test; the others with LGSP_BENCH_FULL=1
PAIRS = [("postgresql", "mariadb")]
if full_size():
    PAIRS += [("mariadb", "postgresql"), ("sqlite", "postgresql"), ("postgresql", "sqlite")]


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{s}-route-{d}" for s, d in PAIRS])
def test_kill9_bounded_runs_of_every_stage(
    settings: Settings, tmp_path: Path, unique: str, src: str, dst: str
) -> None:
    rng = fault_rng(f"kill -9 {src} -> route -> {dst}")
    with pipeline(settings, tmp_path, unique, _url(src, tmp_path), _url(dst, tmp_path)) as pipe:
        pipe.change(rng, inserts=120, updates=0, deletes=0)
        pipe.run_all()  # the typical duration of each stage, and a first state
        kills = 0
        for _ in range(fault_count()):
            pipe.change(rng, inserts=rng.randrange(40, 160), updates=20, deletes=5)
            victim = rng.choice(list(pipe.stages))
            for stage, (args, _) in pipe.stages.items():
                if stage != victim:
                    pipe.check_completed(stage, pipe.procs.run(*args))
                    continue
                outcome = pipe.procs.run_or_kill(rng, *args)
                if outcome.killed:
                    kills += 1
                    pipe.after_kill(stage)
                else:
                    pipe.check_completed(stage, outcome)
        print(f"{kills} process(es) killed -9 mid-run")
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
        for _ in range(fault_count()):
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
