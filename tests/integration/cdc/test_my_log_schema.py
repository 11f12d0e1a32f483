"""``mode: log`` on MariaDB: a column change read from the binlog's Table_map events goes
through the same rule as PostgreSQL's (``connectors.sql.logschema``): an added nullable column
or a widened type goes on and registers a new schema version; a dropped column or a narrowed
type stops the table before its first row after the ALTER, naming the table, the column, the
change, the ALTER's binlog position and the re-snapshot command, and keeps its position."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.registry.store import Registry, subject_for
from bus.sync import run
from tests.integration.cdc.helpers import execute
from tests.integration.cdc.maria_server import MariaServer
from tests.integration.cdc.test_my_log import changes, source
from tests.integration.cdc.test_pg_log_cli import lgsp

pytestmark = pytest.mark.integration

RESNAPSHOT = "lgsp connector reset m && lgsp connector run m"


@pytest.fixture
def table(binlog_maria: MariaServer, unique: str) -> Iterator[str]:
    name = f"sc_{unique}"
    execute(
        binlog_maria.url,
        "CREATE TABLE {t} (id bigint PRIMARY KEY, ten varchar(100) NOT NULL, ghi_chu text, "
        "n int) CHARSET utf8mb4",
        "INSERT INTO {t} VALUES (1, 'Nguyễn Văn An', NULL, 1)",
        table=name,
    )
    try:
        yield name
    finally:
        execute(binlog_maria.url, "DROP TABLE IF EXISTS {t}", table=name)


def _started(settings: Settings, url: str, table: str, dataset: str) -> str:
    """The connector registered, snapshotted, and one change read (the table's columns in the
    binlog are known from its Table_map)."""
    topic = source(settings, url, table, dataset)
    assert run(settings, "m").rows == 1
    execute(url, "INSERT INTO {t} VALUES (2, 'Trần Thị Bích', 'trước', 2)", table=table)
    [tr] = run(settings, "m").tables
    assert (tr.status, tr.rows) == ("ok", 1)
    return topic


def test_an_added_nullable_column_and_a_widened_type_go_on_with_a_new_version(
    settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    url = binlog_maria.url
    topic = _started(settings, url, table, f"tthc.sa{unique}")
    subject = subject_for(topic)
    versions = len(Registry(settings).versions(subject))
    execute(
        url,
        "INSERT INTO {t} VALUES (3, 'Lê Hoàng Phúc', 'trước ALTER', 3)",
        "ALTER TABLE {t} ADD COLUMN so_ho_so varchar(30) NULL, MODIFY ten varchar(200) NOT NULL",
        "INSERT INTO {t} VALUES (4, 'Phạm Minh Đức', 'sau ALTER', 4, 'HS-0004')",
        "UPDATE {t} SET so_ho_so = 'HS-0003' WHERE id = 3",
        table=table,
    )
    [tr] = run(settings, "m").tables
    assert (tr.status, tr.rows, tr.error) == ("ok", 3, None)
    events = changes(settings, topic)
    assert [(json.loads(e["key"])["id"], e["op"]) for e in events] == [
        (2, "c"),
        (3, "c"),
        (4, "c"),
        (3, "u"),
    ]
    assert "so_ho_so" not in events[0]["after"]  # read before the ALTER, with the old schema
    assert events[1]["after"]["so_ho_so"] is None  # before the ALTER, read after it: null
    assert events[2]["after"]["so_ho_so"] == "HS-0004"
    assert events[3]["after"]["so_ho_so"] == "HS-0003" and events[3]["before"]["so_ho_so"] is None
    registered = Registry(settings).versions(subject)
    assert len(registered) == versions + 1
    assert "so_ho_so" in json.dumps(registered[-1].schema)
    # and the next run goes on from the new columns
    execute(url, "INSERT INTO {t} VALUES (5, 'năm', NULL, 5, 'HS-0005')", table=table)
    assert run(settings, "m").tables[0].rows == 1


def test_a_dropped_column_stops_the_table_keeps_its_position_and_check_shows_it(
    settings: Settings,
    cli_env: dict[str, str],
    binlog_maria: MariaServer,
    table: str,
    unique: str,
) -> None:
    url = binlog_maria.url
    topic = _started(settings, url, table, f"tthc.sd{unique}")
    execute(
        url,
        "INSERT INTO {t} VALUES (3, 'Lê Hoàng Phúc', 'trước', 3)",
        "ALTER TABLE {t} DROP COLUMN ghi_chu",
        "INSERT INTO {t} VALUES (4, 'Phạm Minh Đức', 4)",
        table=table,
    )
    [tr] = run(settings, "m").tables
    assert (tr.status, tr.rows) == ("stopped", 1), tr.error  # row 3 was published
    error = tr.error or ""
    assert f"incompatible schema change of table test.{table}" in error
    assert "column 'ghi_chu': column dropped" in error
    assert "(ALTER TABLE)" in error and "binlog 0-1-" in error  # the ALTER's GTID
    assert RESNAPSHOT in error
    assert [json.loads(e["key"])["id"] for e in changes(settings, topic)] == [2, 3]
    kept = ConnectorStore(settings).positions("m")[table].position or {}
    assert kept["index"] == 0 and "column dropped" in kept["halt"]
    [again] = run(settings, "m").tables
    assert (again.status, again.rows) == ("stopped", 0)
    assert "stopped earlier: incompatible schema change" in (again.error or "")
    assert (ConnectorStore(settings).positions("m")[table].position or {})["pos"] == kept["pos"]
    code, out, err = lgsp("connector", "check", "m")
    assert code == 0, err
    assert f"table {table} stopped: incompatible schema change of table test.{table}" in out
    assert "column 'ghi_chu': column dropped" in out
    ConnectorStore(settings).reset("m", table)  # the re-snapshot goes on with the new columns
    [resumed] = run(settings, "m").tables
    assert (resumed.status, resumed.rows) == ("ok", 4)


@pytest.mark.parametrize(
    ("alter", "what"),
    [
        (
            "MODIFY ten varchar(20) NOT NULL",
            "column 'ten': type changed from varchar(100) to varchar(20) (narrower)",
        ),
        ("MODIFY n smallint", "column 'n': type changed from int to smallint (narrower)"),
    ],
)
def test_a_narrowed_type_stops_the_table(
    settings: Settings,
    binlog_maria: MariaServer,
    table: str,
    unique: str,
    alter: str,
    what: str,
) -> None:
    url = binlog_maria.url
    _started(settings, url, table, f"tthc.sn{unique}")
    execute(
        url,
        f"ALTER TABLE {{t}} {alter}",
        "INSERT INTO {t} VALUES (3, 'ba', NULL, 3)",
        table=table,
    )
    [tr] = run(settings, "m").tables
    assert (tr.status, tr.rows) == ("stopped", 0)
    assert what in (tr.error or "") and RESNAPSHOT in (tr.error or "")


def test_a_column_dropped_right_after_the_snapshot_stops_the_table(
    settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    """No row of the table was read from the binlog yet: its columns at the snapshot (read
    from the catalog in the snapshot's transaction) are what the ALTER is compared with."""
    url = binlog_maria.url
    source(settings, url, table, f"tthc.sf{unique}")
    assert run(settings, "m").rows == 1
    execute(
        url,
        "ALTER TABLE {t} DROP COLUMN n",
        "INSERT INTO {t} VALUES (2, 'hai', NULL)",
        table=table,
    )
    [tr] = run(settings, "m").tables
    assert (tr.status, tr.rows) == ("stopped", 0)
    assert "column 'n': column dropped" in (tr.error or "")


def test_the_catalogs_columns_are_the_binlogs(
    binlog_maria: MariaServer, table: str, unique: str
) -> None:
    """The snapshot's columns (information_schema) and a Table_map's describe every type of the
    wide test table alike, so that the first row after a snapshot is no change."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import TableMapEvent

    from connectors.sql.logschema import binlog_columns
    from connectors.sql.mylog import catalog_columns
    from tests.integration.cdc.test_my_log import ROW_3, TABLE_DDL

    url, wide = binlog_maria.url, f"wide_{unique}"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            file, pos = conn.exec_driver_sql("SHOW MASTER STATUS").one()[:2]
        execute(url, TABLE_DDL, ROW_3, table=wide)
        with engine.connect() as conn:
            catalog = catalog_columns(conn, "test", wide)
        reader = BinLogStreamReader(
            connection_settings={"host": "127.0.0.1", "port": binlog_maria.port, "user": "root"},
            server_id=4242,
            log_file=file,
            log_pos=pos,
            resume_stream=True,
            blocking=False,
            only_events=[TableMapEvent],
            only_tables=[wide],
        )
        try:
            [mapped] = [binlog_columns(e.columns, e.null_bitmask) for e in reader]
        finally:
            reader.close()
        assert mapped == catalog
        assert [c.label for c in mapped][:4] == [
            "int unsigned",
            "varchar(100)",
            "decimal(14,2)",
            "datetime(6)",
        ]
    finally:
        engine.dispose()
        execute(url, "DROP TABLE IF EXISTS {t}", table=wide)


def test_a_column_added_after_the_runs_discovery_is_read_by_the_next_run(
    settings: Settings,
    binlog_maria: MariaServer,
    table: str,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ALTER lands between the run's discovery (its schema) and the binlog read: the read
    ends before the first row with the new column, and the next run publishes it with it."""
    from connectors.sql.mylog import MyLogReader

    url = binlog_maria.url
    topic = _started(settings, url, table, f"tthc.sr{unique}")
    stream = MyLogReader._stream

    def altered_first(self: MyLogReader, file: str, pos: int) -> Iterator[Any]:
        execute(
            url,
            "INSERT INTO {t} VALUES (3, 'ba', NULL, 3)",
            "ALTER TABLE {t} ADD COLUMN so_ho_so varchar(30)",
            "INSERT INTO {t} VALUES (4, 'bốn', NULL, 4, 'HS-0004')",
            table=table,
        )
        return stream(self, file, pos)

    monkeypatch.setattr(MyLogReader, "_stream", altered_first)
    [tr] = run(settings, "m").tables
    assert (tr.status, tr.rows, tr.error) == ("ok", 1, None)  # row 3; row 4 waits
    monkeypatch.setattr(MyLogReader, "_stream", stream)
    [tr] = run(settings, "m").tables
    assert (tr.status, tr.rows, tr.error) == ("ok", 1, None)
    events = changes(settings, topic)
    assert [json.loads(e["key"])["id"] for e in events] == [2, 3, 4]
    assert "so_ho_so" not in events[1]["after"] and events[2]["after"]["so_ho_so"] == "HS-0004"


def test_an_alter_that_renames_the_table_stops_it(
    settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    """(Kept behaviour: the rows after it are another table's.)"""
    url = binlog_maria.url
    _started(settings, url, table, f"tthc.sm{unique}")
    try:
        execute(
            url,
            "ALTER TABLE {t} RENAME TO {t}_cu",
            "INSERT INTO {t}_cu VALUES (3, 'ba', NULL, 3)",  # another table's row
            "ALTER TABLE {t}_cu RENAME TO {t}",  # back: the run's discovery finds it
            table=table,
        )
        [tr] = run(settings, "m").tables
        assert tr.status == "stopped" and "ALTER TABLE" in (tr.error or "")
        assert RESNAPSHOT in (tr.error or "")
    finally:
        execute(url, "DROP TABLE IF EXISTS {t}_cu", table=table)
