"""``mode: log`` of the MariaDB/MySQL source against a private MariaDB with a ROW binlog and the
real broker: snapshot then stream, before/after, values equal to a snapshot read's, hard
deletes reaching a SQL sink, resume after a crash, a TRUNCATE stopping the table, bad server
settings and missing privileges refused by name."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.sync import run
from connectors.errors import ConnectorConfigError
from tests.integration.cdc.helpers import execute, read_topic
from tests.integration.cdc.maria_server import MariaServer
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

TABLE_DDL = """
CREATE TABLE {t} (
    id int unsigned PRIMARY KEY,
    ten varchar(100) NOT NULL,
    so_tien decimal(14, 2),
    luc datetime(6),
    dau timestamp(3) NULL,
    ghi_chu text,
    ty_le float,
    gia double,
    co tinyint(1),
    loai enum('moi', 'cu'),
    nhan set('a', 'b', 'c'),
    ngay date,
    gio time(3),
    nam year,
    du_lieu json,
    anh varbinary(16),
    lon bigint unsigned
) CHARSET utf8mb4
"""
ROW_3 = (
    "INSERT INTO {t} VALUES (3, 'Lê Hoàng Phúc', 1234567.89, '2025-12-31 23:59:59.123456', "
    "'2025-07-01 08:00:00.250', 'Hồ sơ đăng ký khai sinh ở phường Tân Định', 0.1, 2.5e-7, 1, "
    "'cu', 'c,a', '2025-07-01', '-01:02:03.500', 2025, '{\"ds\": [1, \"hai\"]}', x'00ff10', "
    "18446744073709551615)"
)


def changes(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """The topic's change events (not snapshot reads), in binlog order."""
    values = [m.value for m in read_topic(settings, topic) if m.value["op"] != "r"]
    return sorted(values, key=lambda e: _order(e["source"]["position"]))


def _order(position: str) -> tuple[int, int, int]:
    gtid, _, index = position.rpartition(":")
    domain, server, seq = gtid.split("-")
    return int(domain), int(seq), int(index)


def snapshot_rows(settings: Settings, topic: str) -> dict[int, dict[str, Any]]:
    return {
        json.loads(m.value["key"])["id"]: m.value["after"]
        for m in read_topic(settings, topic)
        if m.value["op"] == "r"
    }


def source(
    settings: Settings, url: str, table: str, dataset: str, name: str = "m", **extra: Any
) -> str:
    tables = [{"table": table, "dataset": dataset, "mode": "log"}]
    return (
        register(settings, config("mysql", "source", url, tables, name=name, **extra))
        .tables[0]
        .topic
    )


@pytest.fixture
def table(binlog_maria: MariaServer, unique: str) -> Iterator[str]:
    name = f"hs_{unique}"
    execute(
        binlog_maria.url,
        TABLE_DDL,
        "INSERT INTO {t} (id, ten, so_tien, luc, ghi_chu) VALUES "
        "(1, 'Nguyễn Văn An', 10.50, '2025-07-01 08:00:00.000001', NULL), "
        "(2, 'Trần Thị Bích', NULL, NULL, 'ghi chú')",
        table=name,
    )
    try:
        yield name
    finally:
        execute(binlog_maria.url, "DROP TABLE IF EXISTS {t}", table=name)


def test_snapshot_then_changes_with_before_after_and_the_snapshots_values(
    settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    url = binlog_maria.url
    topic = source(settings, url, table, f"tthc.ml{unique}")
    assert run(settings, "m").rows == 2
    execute(
        url, ROW_3, "UPDATE {t} SET ghi_chu = 'đã sửa', so_tien = NULL WHERE id = 1", table=table
    )
    execute(url, "DELETE FROM {t} WHERE id = 2", table=table)
    for n in range(1, 4):  # 3 updates of one row between two runs: 3 events
        execute(
            url,
            f"UPDATE {{t}} SET so_tien = so_tien + {n}, gia = NULL WHERE id = 3",  # noqa: S608
            table=table,
        )
    second = run(settings, "m")
    assert second.rows == 6, second.to_dict()
    events = changes(settings, topic)
    assert [(e["op"], json.loads(e["key"])["id"]) for e in events] == [
        ("c", 3), ("u", 1), ("d", 2), ("u", 3), ("u", 3), ("u", 3)
    ]  # fmt: skip
    insert, update, delete = events[:3]
    assert insert["before"] is None and insert["after"]["ten"] == "Lê Hoàng Phúc"
    # the update carries the whole old row (binlog_row_image=FULL) and the new one
    assert update["before"]["so_tien"] == decimal.Decimal("10.50")
    assert update["before"]["ghi_chu"] is None
    assert update["after"]["ghi_chu"] == "đã sửa" and update["after"]["so_tien"] is None
    assert delete["after"] is None and delete["before"]["ghi_chu"] == "ghi chú"
    # the same transaction: one GTID, indexes 0 and 1; positions and event ids unique
    assert insert["source"]["position"].rsplit(":", 1)[1] == "0"
    assert update["source"]["position"].rsplit(":", 1)[1] == "1"
    assert (
        len({e["source"]["position"] for e in events}) == len({e["event_id"] for e in events}) == 6
    )
    assert [e["after"]["so_tien"] for e in events[3:]] == [
        decimal.Decimal("1234568.89"), decimal.Decimal("1234570.89"), decimal.Decimal("1234573.89")
    ]  # fmt: skip
    stamps = [e["ts_ms"] for e in events]
    assert stamps == sorted(stamps)
    assert stamps[0] >= max(e["ts_ms"] for e in read_topic_r(settings, topic))
    assert run(settings, "m").rows == 0  # nothing new: nothing published

    # the same rows read by a snapshot: the very same Avro values, column by column
    snap_tables = [{"table": table, "dataset": f"tthc.ms{unique}", "mode": "snapshot"}]
    snap_topic = (
        register(settings, config("mysql", "source", url, snap_tables, name="snap")).tables[0].topic
    )
    run(settings, "snap")
    snapped = snapshot_rows(settings, snap_topic)
    streamed: dict[int, dict[str, Any]] = {}
    for e in events:
        key = json.loads(e["key"])["id"]
        if e["after"] is None:
            streamed.pop(key, None)
        else:
            streamed[key] = e["after"]
    assert set(snapped) == set(streamed) == {1, 3}
    for key, row in snapped.items():
        assert streamed[key] == row, key
    three = snapped[3]
    assert three["ghi_chu"] == "Hồ sơ đăng ký khai sinh ở phường Tân Định"
    assert three["luc"] == dt.datetime(2025, 12, 31, 23, 59, 59, 123456)
    assert three["ty_le"] == 0.1 and three["nhan"] == "a,c" and three["gia"] is None
    assert three["anh"] == b"\x00\xff\x10" and three["lon"] == decimal.Decimal(2**64 - 1)


def read_topic_r(settings: Settings, topic: str) -> list[dict[str, Any]]:
    return [m.value for m in read_topic(settings, topic) if m.value["op"] == "r"]


def rows_of(url: str, table: str) -> dict[int, tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                f"SELECT id, ten, so_tien, luc, dau, ghi_chu, ty_le, co, loai, nhan, ngay, gio, "  # noqa: S608
                f"nam, du_lieu, anh, lon FROM {table}"
            )
            return {r[0]: tuple(r) for r in found}
    finally:
        engine.dispose()


def test_hard_deletes_and_every_column_reach_the_sql_sink_and_a_crash_resumes(
    settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    url, dataset, dst = binlog_maria.url, f"tthc.mk{unique}", f"dst_{unique}"
    topic = source(settings, url, table, dataset, batch_size=1)
    register(settings, config("mysql", "sink", url, [{"table": dst, "dataset": dataset}], name="k"))
    try:
        assert run(settings, "m").rows == 2
        # one transaction of 5 changes (read in two batches: the first holds 4), then two
        # more; a crash after the first acknowledged batch, in the middle of the transaction
        execute(
            url,
            ROW_3,
            "INSERT INTO {t} (id, ten) VALUES (5, 'năm')",
            "INSERT INTO {t} (id, ten) VALUES (6, 'sáu')",
            "DELETE FROM {t} WHERE id = 2",
            "UPDATE {t} SET co = 0 WHERE id = 1",
            table=table,
        )
        execute(url, "INSERT INTO {t} (id, ten) VALUES (4, 'Phạm Thu Hà')", table=table)
        execute(url, "UPDATE {t} SET ghi_chu = 'lần 2', nhan = '' WHERE id = 3", table=table)

        def crash(_tr: object) -> None:
            raise RuntimeError("crash")

        with pytest.raises(RuntimeError, match="crash"):
            run(settings, "m", progress=crash)
        assert len(changes(settings, topic)) == 4
        assert run(settings, "m").rows == 3  # the rest: nothing lost, nothing twice
        events = changes(settings, topic)
        assert [(e["op"], json.loads(e["key"])["id"]) for e in events] == [
            ("c", 3), ("c", 5), ("c", 6), ("d", 2), ("u", 1), ("c", 4), ("u", 3)
        ]  # fmt: skip
        assert len({e["source"]["position"] for e in events}) == 7
        run(settings, "k")
        sunk, held = rows_of(url, dst), rows_of(url, table)
        assert 2 not in sunk  # the hard delete reached the sink
        # a negative TIME has no Avro form (time of day): the source's -01:02:03.5 is
        # published as the time of day 22:57:56.5, as a snapshot read publishes it
        assert sunk[3][11] == dt.timedelta(hours=22, minutes=57, seconds=56, microseconds=500000)
        sunk[3] = (*sunk[3][:11], held[3][11], *sunk[3][12:])
        assert sunk == held, [
            (i, a, b)
            for k in held
            for i, (a, b) in enumerate(zip(held[k], sunk.get(k, ()), strict=False))
            if a != b
        ]
    finally:
        execute(url, "DROP TABLE IF EXISTS {t}", table=dst)


def test_a_truncate_stops_the_table_with_how_to_resnapshot(
    settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    url = binlog_maria.url
    topic = source(settings, url, table, f"tthc.mt{unique}")
    assert run(settings, "m").rows == 2
    execute(url, "INSERT INTO {t} (id, ten) VALUES (5, 'Võ Minh Khôi')", table=table)
    execute(url, "TRUNCATE TABLE {t}", table=table)
    execute(url, "INSERT INTO {t} (id, ten) VALUES (6, 'sau')", table=table)
    report = run(settings, "m")
    [tr] = report.tables
    assert tr.status == "stopped" and tr.rows == 1  # the insert before it was published
    assert "TRUNCATE" in (tr.error or "") and "lgsp connector reset m" in (tr.error or "")
    assert [json.loads(e["key"])["id"] for e in changes(settings, topic)] == [5]
    again = run(settings, "m").tables[0]  # it stays stopped until reset
    assert again.status == "stopped" and "TRUNCATE" in (again.error or "")
    ConnectorStore(settings).reset("m", table)
    assert run(settings, "m").tables[0].rows == 1  # a new snapshot: row 6 only
    # an ALTER that only adds a nullable column goes on (test_my_log_schema: what stops)
    execute(url, "ALTER TABLE {t} ADD COLUMN them int", table=table)
    execute(url, "INSERT INTO {t} (id, ten, them) VALUES (7, 'bảy', 7)", table=table)
    went_on = run(settings, "m").tables[0]
    assert (went_on.status, went_on.rows) == ("ok", 1), went_on.error


def test_bad_binlog_settings_and_missing_privileges_are_named(
    settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    url = binlog_maria.url
    execute(
        url, "SET GLOBAL binlog_format = 'STATEMENT'", "SET GLOBAL binlog_row_image = 'MINIMAL'"
    )
    try:
        with pytest.raises(ConnectorConfigError) as caught:
            source(settings, url, table, f"tthc.mb{unique}", name="bad")
    finally:
        execute(url, "SET GLOBAL binlog_format = 'ROW'", "SET GLOBAL binlog_row_image = 'FULL'")
    text = str(caught.value)
    assert "binlog_format is 'STATEMENT', expected 'ROW'" in text
    assert "'binlog_format = ROW' under [mysqld] in my.cnf" in text
    assert "binlog_row_image is 'MINIMAL', expected 'FULL'" in text
    user = f"u{unique}"[:16]
    execute(
        url, f"CREATE USER '{user}'@'127.0.0.1'", f"GRANT SELECT ON test.* TO '{user}'@'127.0.0.1'"
    )
    try:
        with pytest.raises(ConnectorConfigError) as caught:
            source(settings, binlog_maria.url_for(user), table, f"tthc.mp{unique}", name="np")
        assert "lacks the privileges REPLICATION SLAVE and REPLICATION CLIENT" in str(caught.value)
        execute(url, f"GRANT REPLICATION SLAVE ON *.* TO '{user}'@'127.0.0.1'")
        with pytest.raises(ConnectorConfigError, match="lacks the privilege REPLICATION CLIENT"):
            source(settings, binlog_maria.url_for(user), table, f"tthc.mp{unique}", name="np")
    finally:
        execute(url, f"DROP USER '{user}'@'127.0.0.1'")


def test_connector_show_gives_the_binlog_position(
    cli_env: dict[str, str], settings: Settings, binlog_maria: MariaServer, table: str, unique: str
) -> None:
    from bus.cli.main import cli

    source(settings, binlog_maria.url, table, f"tthc.mv{unique}")
    run(settings, "m")
    execute(binlog_maria.url, "UPDATE {t} SET ten = 'đổi' WHERE id = 1", table=table)
    run(settings, "m")
    result = CliRunner().invoke(cli, ["connector", "show", "m"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "binlog at mariadb-bin.0000" in result.stdout and "GTID 0-1-" in result.stdout
    assert "binlog: server at mariadb-bin.0000" in result.stdout
    shown = CliRunner().invoke(cli, ["connector", "show", "m", "--json"], catch_exceptions=False)
    answer = json.loads(shown.stdout)
    assert answer["log"]["kind"] == "binlog" and answer["log"]["files"] >= 1
    assert answer["positions"][table]["position"]["gtid"].startswith("0-1-")


def test_changes_during_the_first_snapshot_are_neither_lost_nor_doubled(
    settings: Settings, binlog_maria: MariaServer, unique: str
) -> None:
    url, table, dst = binlog_maria.url, f"snap_{unique}", f"snap_dst_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(60) NOT NULL, so decimal(10, 2)) "
        "CHARSET utf8mb4",
        "INSERT INTO {t} SELECT seq, CONCAT('Bùi Thị ', seq), seq FROM seq_1_to_300",
        table=table,
    )
    dataset = f"tthc.mn{unique}"
    topic = source(settings, url, table, dataset, batch_size=10)
    register(settings, config("mysql", "sink", url, [{"table": dst, "dataset": dataset}], name="k"))
    halt = threading.Event()
    rng = random.Random(15)

    def write() -> None:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            while not halt.is_set():
                key = rng.randint(1, 330)
                kind = rng.random()
                if kind < 0.4:
                    conn.exec_driver_sql(
                        f"INSERT INTO {table} VALUES ({key}, 'mới {key}', 1) "  # noqa: S608
                        "ON DUPLICATE KEY UPDATE so = so + 1"
                    )
                elif kind < 0.85:
                    conn.exec_driver_sql(f"UPDATE {table} SET so = so + 2 WHERE id = {key}")  # noqa: S608
                else:
                    conn.exec_driver_sql(f"DELETE FROM {table} WHERE id = {key}")  # noqa: S608
                conn.commit()
        engine.dispose()

    writer = threading.Thread(target=write, daemon=True)
    try:
        writer.start()  # writes while the first run snapshots (30 batches) and streams
        first = run(settings, "m")
        halt.set()
        writer.join(30)
        second = run(settings, "m")
        assert (first.status, second.status) == ("ok", "ok"), (first.to_dict(), second.to_dict())
        events = [m.value for m in read_topic(settings, topic)]
        stream = [e["source"]["position"] for e in events if e["op"] != "r"]
        assert stream and len(stream) == len(set(stream)), "a change published twice"
        run(settings, "k")
        held = {r[0]: r for r in _rows(url, table)}
        sunk = {r[0]: r for r in _rows(url, dst)}
        assert sunk == held
    finally:
        halt.set()
        execute(url, "DROP TABLE IF EXISTS {t}", table=dst)
        execute(url, "DROP TABLE IF EXISTS {t}", table=table)


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(f"SELECT id, ten, so FROM {table}")]  # noqa: S608
    finally:
        engine.dispose()
