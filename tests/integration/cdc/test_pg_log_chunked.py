"""``lgsp connector snapshot`` on PostgreSQL: what the command refuses (a table the connector
does not have, a sink, a stopped connector) and what it says before the first run. The
chunked re-snapshots themselves, on both engines: ``test_log_chunked``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.sync import run
from tests.integration.cdc.test_log_chunked import ENGINES, Engine, Pair, chunked, pair  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.fixture
def engine() -> Engine:
    """The shared ``pair`` fixture on PostgreSQL."""
    return ENGINES["postgresql"]


def test_snapshot_command_errors(
    settings: Settings,
    cli_env: dict[str, str],
    pair: Pair,  # noqa: F811 - the fixture imported above
) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["connector", "snapshot", "s", "--table", "khong_co"], env=cli_env)
    assert result.exit_code != 0
    assert "'khong_co' is not a table of connector 's'" in result.output
    result = runner.invoke(cli, ["connector", "snapshot", "d"], env=cli_env)
    assert result.exit_code != 0
    assert "is a sink" in result.output
    result = runner.invoke(cli, ["connector", "snapshot", "s"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert "not read yet" in result.output
    # a stopped connector (here: a TRUNCATE) would stop again at the same place: refused
    assert run(settings, "s").status == "ok"
    store = ConnectorStore(settings)
    table = pair.table
    held = store.positions("s")[table].position
    assert held is not None
    store.save_position("s", table, {**held, "halt": "TRUNCATE at LSN 0/1: ..."})
    result = runner.invoke(cli, ["connector", "snapshot", "s", "--table", table], env=cli_env)
    assert result.exit_code != 0
    assert "is stopped (TRUNCATE at LSN 0/1" in result.output
    assert "lgsp connector reset s && lgsp connector run s" in result.output
    assert chunked(settings, table) is None
