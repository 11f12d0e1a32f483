"""``lgsp connector run --follow``: a sink that consumes continuously and a source that reads
again once caught up, against the real broker and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.connector_service.registration import register
from bus.sync import Follow, SyncReport, run
from conftest import PG_URL
from tests.helpers import drop_tables, wait_until
from tests.integration.connectors.helpers import config, sqlite_codes

pytestmark = pytest.mark.integration


def _source_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("ma", sa.String(20), primary_key=True),
        sa.Column("ten", sa.String(100), nullable=False),
        sa.Column("cap_nhat", sa.DateTime(timezone=True), nullable=False),
    )


def _insert(table: sa.Table, start: int, count: int) -> None:
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "ma": f"HS{i:04d}",
                    "ten": f"Lê Thị Hồng Gấm {i}",
                    "cap_nhat": dt.datetime(2025, 7, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i),
                }
                for i in range(start, start + count)
            ],
        )
    engine.dispose()


def _count(name: str) -> int:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(name):
                return 0
            counted = sa.select(sa.func.count()).select_from(sa.table(name))
            return int(conn.execute(counted).scalar() or 0)
    finally:
        engine.dispose()


@pytest.fixture
def pair(settings: Settings, unique: str) -> Iterator[tuple[sa.Table, str]]:
    """A registered PostgreSQL source (5 rows) and sink; (source table, sink table name)."""
    src, dst = f"follow_src_{unique}", f"follow_dst_{unique}"
    table = _source_table(src)
    engine = sa.create_engine(PG_URL)
    table.metadata.create_all(engine)
    engine.dispose()
    _insert(table, 0, 5)
    dataset = f"tthc.f{unique}"
    source = [{"table": src, "dataset": dataset, "cursor": "cap_nhat"}]
    register(settings, config("postgresql", "source", PG_URL, source, name="s", batch_size=2))
    sink = [{"table": dst, "dataset": dataset}]
    register(settings, config("postgresql", "sink", PG_URL, sink, name="d"))
    try:
        yield table, dst
    finally:
        drop_tables(PG_URL, [src, dst])


def _in_thread(target: object) -> tuple[threading.Thread, list[SyncReport]]:
    out: list[SyncReport] = []
    thread = threading.Thread(target=lambda: out.append(target()))  # type: ignore[operator]
    thread.start()
    return thread, out


def test_a_followed_sink_applies_what_is_published_while_it_runs(
    settings: Settings, pair: tuple[sa.Table, str]
) -> None:
    table, dst = pair
    # the sink follows before the source has ever published: its topic does not exist yet
    following = threading.Event()

    def asked_to_stop() -> bool:  # asked by the sink's consume loop, once it runs
        following.set()
        return False

    follow = Follow(should_stop=asked_to_stop, idle_exit_s=8)
    thread, out = _in_thread(lambda: run(settings, "d", follow=follow))
    try:
        wait_until(following.is_set, 30, "followed sink consuming")
        assert run(settings, "s").rows == 5
        # found within seconds (not at the next 30 s partition refresh)
        wait_until(lambda: _count(dst) == 5, 15, "first 5 rows in the sink")
        _insert(table, 5, 3)  # published while the sink is following
        assert run(settings, "s").rows == 3
        wait_until(lambda: _count(dst) == 8, 60, "3 rows published later in the sink")
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive(), "the follow did not end after --idle-exit"
    [report] = out
    assert (report.status, report.rows) == ("ok", 8)
    assert run(settings, "d").rows == 0, "the follow committed its offsets"


def test_a_followed_source_publishes_rows_added_after_it_caught_up(
    settings: Settings, pair: tuple[sa.Table, str]
) -> None:
    table, _ = pair
    published: list[int] = []  # rows published so far, after each batch
    follow = Follow(idle_exit_s=3, poll_s=0.2)
    thread, out = _in_thread(
        lambda: run(settings, "s", follow=follow, progress=lambda tr: published.append(tr.rows))
    )
    try:
        wait_until(lambda: published[-1:] == [5], 60, "first pass publishing the 5 rows")
        time.sleep(0.5)  # caught up: the source now waits between passes
        _insert(table, 5, 4)
        wait_until(lambda: published[-1:] == [9], 60, "later pass publishing the 4 rows added")
    finally:
        thread.join(timeout=60)
    assert not thread.is_alive()
    [report] = out
    [tr] = report.tables
    assert (report.status, tr.rows) == ("ok", 9)
    assert published == [2, 4, 5, 7, 9]  # batches of 2: a pass over 5 rows, one over 4
    assert run(settings, "s").rows == 0, "the positions moved with every pass"


def test_idle_exit_needs_follow(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["connector", "run", "any", "--idle-exit", "1"])
    assert result.exit_code == 2
    assert "--idle-exit: only with --follow" in result.stderr


def test_follow_from_the_command_line(cli_env: dict[str, str], unique: str) -> None:
    settings = Settings()
    src = f"follow_cli_{unique}"
    table = _source_table(src)
    engine = sa.create_engine(PG_URL)
    table.metadata.create_all(engine)
    engine.dispose()
    _insert(table, 0, 3)
    tables = [{"table": src, "dataset": f"tthc.g{unique}", "cursor": "cap_nhat"}]
    try:
        register(settings, config("postgresql", "source", PG_URL, tables, name="cli-src"))
        args = ["connector", "run", "cli-src", "--follow", "--idle-exit", "1", "--poll", "0.2"]
        result = CliRunner().invoke(cli, [*args, "--json"])
        assert result.exit_code == 0, result.stderr
        assert '"rows": 3' in result.stdout
    finally:
        drop_tables(PG_URL, [src])


def test_a_followed_table_that_stops_keeps_its_offsets_while_the_others_go_on(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    url = sqlite_codes(tmp_path / "src.db", {"ma": ["A1", "B2", "C3"], "mb": ["XXX", "YYY"]})
    good, narrow = f"fw_good_{unique}", f"fw_narrow_{unique}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:  # every code of "mb" is too long for this target
        conn.execute(sa.text(f"CREATE TABLE {narrow} (id BIGINT PRIMARY KEY, code VARCHAR(2))"))
    engine.dispose()
    da, db = f"kho.fa{unique}", f"kho.fb{unique}"
    tables = [{"table": "ma", "dataset": da}, {"table": "mb", "dataset": db}]
    try:
        register(settings, config("sqlite", "source", url, tables, name="s"))
        sinks = [{"table": good, "dataset": da}, {"table": narrow, "dataset": db}]
        register(settings, config("postgresql", "sink", PG_URL, sinks, name="d"))
        assert run(settings, "s").rows == 5
        told: list[tuple[str, str]] = []
        report = run(
            settings,
            "d",
            follow=Follow(idle_exit_s=3),
            progress=lambda tr: told.append((tr.table, tr.status)),
        )
        status = {t.table: t.status for t in report.tables}
        assert status == {good: "ok", narrow: "stopped"}
        assert told.count((narrow, "stopped")) == 1  # said while the run went on
        assert _count(good) == 3 and _count(narrow) == 0
        engine = sa.create_engine(PG_URL)
        with engine.begin() as conn:  # fixed: the stopped table's records are still there
            conn.execute(sa.text(f"ALTER TABLE {narrow} ALTER COLUMN code TYPE VARCHAR(10)"))
        engine.dispose()
        again = run(settings, "d")
        assert {t.table: t.rows for t in again.tables} == {good: 0, narrow: 2}
        assert _count(narrow) == 2
    finally:
        drop_tables(PG_URL, [good, narrow])


def test_a_snapshot_table_is_read_once_by_a_followed_source(
    settings: Settings, tmp_path: Path
) -> None:
    url = sqlite_codes(tmp_path / "src.db", {"ma": ["A1", "B2", "C3"]})
    register(settings, config("sqlite", "source", url, [{"table": "ma", "dataset": "kho.snap"}]))
    report = run(settings, "test-connector", follow=Follow(idle_exit_s=1.5, poll_s=0.2))
    assert (report.status, report.rows) == ("ok", 3)


def test_poll_needs_follow(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(cli, ["connector", "run", "any", "--poll", "2"])
    assert result.exit_code == 2
    assert "--poll: only with --follow" in result.stderr
