"""``lgsp connector snapshot`` on MariaDB: refused for a ``mode: incremental`` table, with the
reset command. The chunked re-snapshots themselves, on both engines: ``test_log_chunked``."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.sync import run
from tests.integration.cdc.helpers import execute
from tests.integration.cdc.maria_server import MariaServer
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


def test_snapshot_of_a_maria_incremental_table_is_refused_with_the_reset_command(
    settings: Settings, cli_env: dict[str, str], binlog_maria: MariaServer, unique: str
) -> None:
    url, table = binlog_maria.url, f"inc_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(100), sua datetime(6) NOT NULL)",
        "INSERT INTO {t} VALUES (1, 'Phạm Thị Hoa', now(6))",
        table=table,
    )
    tables = [
        {"table": table, "dataset": f"tthc.mi{unique}", "mode": "incremental", "cursor": "sua"}
    ]
    register(settings, config("mysql", "source", url, tables, name="inc"))
    runner = CliRunner()
    try:
        assert run(settings, "inc").status == "ok"
        result = runner.invoke(cli, ["connector", "snapshot", "inc"], env=cli_env)
        assert result.exit_code != 0
        assert "has no table in mode: log" in result.output
        assert "lgsp connector reset inc" in result.output
        result = runner.invoke(cli, ["connector", "snapshot", "inc", "--table", table], env=cli_env)
        assert result.exit_code != 0
        assert f"table {table!r} of connector 'inc' is not in mode: log" in result.output
        assert f"lgsp connector reset inc --table {table}" in result.output
        held = ConnectorStore(settings).positions("inc")[table].position
        assert held is not None and "chunked" not in held
    finally:
        execute(url, "DROP TABLE IF EXISTS {t}", table=table)
