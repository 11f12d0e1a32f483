"""One sync run of a connector at a time: a second run meanwhile is refused as retriable; a
crashed run's lock expires; a run that lost its lock stops before it moves a position."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.db.engine import dispose_engines
from bus.errors import RetriableError
from bus.sync import SyncReport, TableReport, run
from conftest import PG_URL
from connectors.errors import ConnectorBusyError
from tests.helpers import wait_until
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

NAME = "test-connector"


@pytest.fixture
def source(settings: Settings, tmp_path: Path, unique: str) -> str:
    """A registered SQLite source of six rows read two at a time."""
    url = f"sqlite:///{tmp_path}/src.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE ma (id INTEGER PRIMARY KEY, code TEXT, ver INTEGER NOT NULL)")
        )
        conn.execute(
            sa.text("INSERT INTO ma VALUES (:id, :code, :id)"),
            [{"id": i, "code": f"C{i}"} for i in range(1, 7)],
        )
    engine.dispose()
    tables = [{"table": "ma", "dataset": f"kho.l{unique}", "cursor": "ver"}]
    data = config("sqlite", "source", url, tables)
    register(settings, {**data, "batch_size": 2})
    return NAME


class Paused:
    """A run in a thread that stops inside its first batch until ``go`` is set."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.inside = threading.Event()
        self.go = threading.Event()
        self.report: SyncReport | None = None
        self.error: BaseException | None = None

        def progress(tr: TableReport) -> None:
            if not self.inside.is_set():
                self.inside.set()
                assert self.go.wait(30)

        def work() -> None:
            try:
                self.report = run(settings, NAME, progress=progress, **kwargs)
            except BaseException as exc:  # checked by the test
                self.error = exc

        self.thread = threading.Thread(target=work, daemon=True)
        self.thread.start()
        assert self.inside.wait(30)

    def finish(self) -> None:
        self.go.set()
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_a_second_run_meanwhile_is_refused_as_retriable(settings: Settings, source: str) -> None:
    first = Paused(settings)
    try:
        with pytest.raises(ConnectorBusyError, match="is already running \\(since ") as caught:
            run(settings, source)
        assert isinstance(caught.value, RetriableError)
        assert ConnectorStore(settings).lock(source) is not None
    finally:
        first.finish()
    assert first.error is None and first.report is not None and first.report.rows == 6
    assert ConnectorStore(settings).lock(source) is None  # released at the end
    assert run(settings, source).rows == 0  # and the next run may go


def test_a_crashed_runs_lock_expires(settings: Settings, source: str) -> None:
    store = ConnectorStore(settings)
    store.acquire_lock(source, "gone:1:dead", ttl_s=-1)  # a crashed run's, already expired
    assert run(settings, source).rows == 6
    store.acquire_lock(source, "gone:2:dead", ttl_s=600)
    with pytest.raises(ConnectorBusyError, match="gone:2:dead"):
        run(settings, source)
    held = store.lock(source)  # lgsp connector unlock: the holder shown, then released
    assert held is not None
    store.release_lock(source, held.owner)
    assert run(settings, source).rows == 0


def test_a_run_that_lost_its_lock_stops_before_moving_the_position(
    settings: Settings, source: str
) -> None:
    first = Paused(settings, lock_ttl_s=0.5)  # holds the lock, paused after its first batch
    try:
        held = ConnectorStore(settings).lock(source)
        assert held is not None
        # its lock expires: another run takes it over and reads the rest
        wait_until(lambda: dt.datetime.now(dt.UTC) > held.expires_at, 10, "expiry of its lock")
        assert run(settings, source, lock_ttl_s=0.5).rows == 4
        end = ConnectorStore(settings).positions(source)["ma"].position
    finally:
        first.finish()
    assert isinstance(first.error, ConnectorBusyError) and "lost its lock" in str(first.error)
    assert ConnectorStore(settings).positions(source)["ma"].position == end  # not moved back


@pytest.fixture
def pg_control(home: Path, unique: str) -> Iterator[Settings]:
    """Settings whose control database is PostgreSQL (a schema of its own)."""
    schema = f"lgsp_lock_{unique}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield Settings(home=home, database_url=url.render_as_string(hide_password=False))
    dispose_engines()
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.mark.parametrize("control", ["sqlite", "postgresql"])
def test_of_concurrent_takers_exactly_one_gets_the_lock(
    control: str, offline_settings: Settings, request: pytest.FixtureRequest
) -> None:
    settings = offline_settings if control == "sqlite" else request.getfixturevalue("pg_control")
    store = ConnectorStore(settings)
    store.add(
        name="locked",
        type="sqlite",
        role="source",
        agency="a",
        unit="79",
        config={},
        topics={},
    )
    for round_ in range(3):  # a new lock, then twice the take-over of an expired one
        if round_:
            held = store.lock("locked")
            assert held is not None
            store.release_lock("locked", held.owner)
            store.acquire_lock("locked", "crashed", ttl_s=-1)
        owners = [f"t{round_}-{i}" for i in range(8)]
        won, refused = _race(store, owners)
        assert len(won) == 1 and len(refused) == len(owners) - 1, (round_, won, refused)
        held = store.lock("locked")
        assert held is not None and held.owner == won[0]


def _race(store: ConnectorStore, owners: list[str]) -> tuple[list[str], list[str]]:
    barrier = threading.Barrier(len(owners))
    won: list[str] = []
    refused: list[str] = []

    def take(owner: str) -> None:
        barrier.wait(10)
        try:
            store.acquire_lock("locked", owner, ttl_s=60)
        except ConnectorBusyError:
            refused.append(owner)
        else:
            won.append(owner)

    threads = [threading.Thread(target=take, args=(owner,)) for owner in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return won, refused


def test_cli_shows_refuses_and_unlocks(
    cli_env: dict[str, str], settings: Settings, source: str
) -> None:
    from click.testing import CliRunner

    from bus.cli.main import cli

    def lgsp(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout + result.stderr

    ConnectorStore(settings).acquire_lock(source, "host-a:4242:cafe", ttl_s=600)
    code, out = lgsp("connector", "show", source)
    assert code == 0 and "running since" in out and "host-a:4242:cafe" in out
    code, out = lgsp("connector", "run", source)
    assert code == RetriableError.exit_code and "is already running" in out
    code, out = lgsp("connector", "unlock", source, "--yes")
    assert code == 0 and "run lock of host-a:4242:cafe released" in out
    code, out = lgsp("connector", "run", source)
    assert code == 0 and "rows 6" in out
    assert lgsp("connector", "unlock", source, "--yes")[1].strip().endswith("no run lock held")


def _lgsp(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen:
    """``lgsp ARGS`` as a process of its own (killable like a real run)."""
    return subprocess.Popen(
        [sys.executable, "-c", "from bus.cli.main import main; main()", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def test_a_killed_runs_lock_is_taken_over_at_once(
    cli_env: dict[str, str], settings: Settings, source: str
) -> None:
    """A run killed with SIGKILL leaves its lock; the next run on the same host sees that its
    holder's process is gone and takes the lock over at once, saying so (not in 15 minutes)."""
    store = ConnectorStore(settings)
    holder = _lgsp(cli_env, "connector", "run", source, "--follow", "--poll", "30")
    try:
        deadline = time.monotonic() + 60
        while store.lock(source) is None:
            assert holder.poll() is None, holder.communicate()
            assert time.monotonic() < deadline, "the followed run never took its lock"
            time.sleep(0.2)
        held = store.lock(source)
        assert held is not None and f":{holder.pid}:" in held.owner
    finally:
        holder.kill()  # SIGKILL: no cleanup, the lock stays
        holder.communicate(timeout=30)
    assert store.lock(source) is not None
    started = time.monotonic()
    after = _lgsp(cli_env, "connector", "run", source)
    out, err = after.communicate(timeout=120)
    assert after.returncode == 0, err
    assert "took over the run lock of a crashed run" in err and held.owner in err
    assert "test-connector: rows" in out
    assert time.monotonic() - started < 60
    assert store.lock(source) is None  # and released at its end
    assert run(settings, source).rows == 0  # between them the two runs read every row


def test_a_live_holders_lock_is_not_taken_over(settings: Settings, source: str) -> None:
    """The holder's process is alive (this test's): the lock stays its, refused as busy."""
    from bus.connectors_db.store import lock_owner

    store = ConnectorStore(settings)
    store.acquire_lock(source, lock_owner(), ttl_s=600)
    with pytest.raises(ConnectorBusyError, match="is already running"):
        run(settings, source)


def test_unlock_without_a_terminal_asks_for_yes(
    cli_env: dict[str, str], settings: Settings, source: str
) -> None:
    """Run from CI or cron (stdin not a terminal), unlock refuses naming --yes, exit 2, and
    keeps the lock; with --yes it releases it."""
    ConnectorStore(settings).acquire_lock(source, "host-b:4242:cafe", ttl_s=600)
    proc = _lgsp(cli_env, "connector", "unlock", source, stdin=subprocess.DEVNULL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert err.strip().splitlines() == [err.strip()] and "--yes" in err
    assert "unexpected" not in err
    assert ConnectorStore(settings).lock(source) is not None
    proc = _lgsp(cli_env, "connector", "unlock", source, "--yes", stdin=subprocess.DEVNULL)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "released" in out and ConnectorStore(settings).lock(source) is None
