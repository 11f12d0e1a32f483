"""A sink run's read of its topics: the broker guard judged once per read; ``connector reset``
forgets where a connector stands (a sink's committed offsets, a source's position marks)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus import broker_guard, consume
from bus.cli.main import cli
from bus.config import Settings
from bus.connector_service.reset import reset_connector
from bus.connectors_db import ConnectorStore
from bus.errors import NotFoundError
from bus.sync import run
from connectors.errors import ConnectorBusyError
from tests.integration.connectors.test_roundtrip import T0, Pair, _row, _rows

pytestmark = pytest.mark.integration


@pytest.fixture
def pair(settings: Settings, tmp_path: Path, unique: str) -> Iterator[Pair]:
    made = Pair(settings, "sqlite", "sqlite", tmp_path, unique)
    try:
        yield made
    finally:
        made.drop()


def test_a_sink_run_consults_the_broker_guard_once(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.insert([_row(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 26)])
    run(pair.settings, pair.source_name)
    asked: list[list[str] | None] = []
    known = broker_guard.known

    def counted(settings: Settings, topics: list[str] | None = None) -> broker_guard.Known:
        asked.append(None if topics is None else sorted(topics))
        return known(settings, topics)

    monkeypatch.setattr(broker_guard, "known", counted)
    assert run(pair.settings, pair.sink_name).rows == 25
    assert asked == [[pair.topic]]
    pair.assert_equal()


def test_a_sink_read_that_stops_short_is_not_reported_ok(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bounded read that gives up before the end it set out to reach (the broker answered no
    fetch for a while) leaves records unread: the run says so (partial), never "ok"."""
    pair.insert([_row(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 26)])
    run(pair.settings, pair.source_name)
    with monkeypatch.context() as m:
        m.setattr(consume, "IDLE_GIVE_UP_S", -1.0)  # gives up after its first poll
        m.setattr(pair.settings, "batch_size", 1)  # which reads one record
        short = run(pair.settings, pair.sink_name)
    assert short.rows < 25
    assert short.status == "partial", short.to_dict()
    (table,) = short.tables
    assert table.status == "behind" and "not read" in (table.error or "")
    store = ConnectorStore(pair.settings)  # ``connector status`` shows it too
    assert store.positions(pair.sink_name)[table.table].status == "behind"
    rest = run(pair.settings, pair.sink_name)  # the next run reads the rest
    assert rest.status == "ok" and short.rows + rest.rows == 25
    assert store.positions(pair.sink_name)[table.table].status == "ok"
    pair.assert_equal()


def _empty_target(pair: Pair) -> None:
    engine = sa.create_engine(pair.dst_url)
    with engine.begin() as conn:
        conn.execute(sa.Table(pair.dst_table, sa.MetaData(), autoload_with=conn).delete())
    engine.dispose()


def test_a_reset_sink_reads_its_topic_again(pair: Pair) -> None:
    pair.insert([_row(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 26)])
    pair.sync()
    pair.assert_equal()
    _empty_target(pair)  # a target to fill again from the topic
    assert run(pair.settings, pair.sink_name).rows == 0  # the committed offsets hold
    assert reset_connector(pair.settings, pair.sink_name) == 1
    assert run(pair.settings, pair.sink_name).rows == 25  # re-delivered from the start
    pair.assert_equal()
    # one table's reset names the table; an unknown one is refused, nothing forgotten
    _empty_target(pair)
    assert reset_connector(pair.settings, pair.sink_name, pair.dst_table) == 1
    assert run(pair.settings, pair.sink_name).rows == 25
    with pytest.raises(NotFoundError, match=r"--table: 'nope' is not a table of connector"):
        reset_connector(pair.settings, pair.sink_name, "nope")
    assert len(_rows(pair.dst_url, pair.dst_table, live_only=False)) == 25


def test_a_reset_source_forgets_its_position_marks(pair: Pair) -> None:
    pair.insert([_row(i, T0 + dt.timedelta(seconds=i)) for i in range(1, 26)])
    run(pair.settings, pair.source_name)
    store = ConnectorStore(pair.settings)
    assert len(store.marks(pair.source_name, pair.src_table)) == 3  # batches of 10
    assert reset_connector(pair.settings, pair.source_name) == 1
    assert store.marks(pair.source_name, pair.src_table) == []
    assert store.positions(pair.source_name) == {}
    assert run(pair.settings, pair.source_name).rows == 25  # from the start


def test_a_reset_waits_for_no_run(pair: Pair) -> None:
    pair.insert([_row(1, T0)])
    run(pair.settings, pair.source_name)
    store = ConnectorStore(pair.settings)
    store.acquire_lock(pair.source_name, "elsewhere:1:1:-:r", 600)  # a run going on
    with pytest.raises(ConnectorBusyError, match="is already running"):
        reset_connector(pair.settings, pair.source_name)
    assert pair.src_table in store.positions(pair.source_name)  # nothing forgotten
    store.release_lock(pair.source_name, "elsewhere:1:1:-:r")


def test_lgsp_connector_reset(pair: Pair, cli_env: dict[str, str]) -> None:
    """The command says what it forgot; a bad --table exits non-zero naming it."""
    pair.insert([_row(1, T0)])
    pair.sync()
    _empty_target(pair)
    result = CliRunner().invoke(cli, ["connector", "reset", pair.sink_name])
    assert result.exit_code == 0, result.stderr
    assert f"connector {pair.sink_name}: 1 position(s) forgotten" in result.stdout
    assert run(pair.settings, pair.sink_name).rows == 1
    result = CliRunner().invoke(cli, ["connector", "reset", pair.sink_name, "--table", "nope"])
    assert result.exit_code != 0
    assert "--table: 'nope' is not a table of connector" in result.stderr
