"""``mode: log`` of the PostgreSQL source against a real ``wal_level=logical`` server and the
real broker: snapshot then stream, every kind of change, in commit order."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import random
from collections.abc import Iterator

import pytest

from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.sync import run
from conftest import PG_URL
from tests.helpers import drop_tables
from tests.integration.cdc.helpers import (
    WIDE_DDL,
    Writer,
    confirmed_flush,
    drop_log,
    events_of,
    execute,
    log_pair,
    log_source,
    position_key,
    read_topic,
    table_rows,
    wide_table,
)
from tests.integration.cdc.pg_cluster import Cluster
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


@pytest.fixture
def source(settings: Settings, logical_pg: Cluster, unique: str) -> Iterator[tuple[str, str]]:
    """A registered log source over table ``hs_<unique>`` (2 rows before it starts):
    (table, topic)."""
    name = f"hs_{unique}"
    execute(
        logical_pg.url,
        WIDE_DDL["postgresql"],
        "ALTER TABLE {t} REPLICA IDENTITY FULL",
        "INSERT INTO {t} VALUES (1, 'Nguyễn Văn An', 10.50, '2025-07-01 08:00+07', "
        """'{"a": 1}', NULL), (2, 'Trần Thị Bích', NULL, NULL, NULL, 'ghi chú')""",
        table=name,
    )
    topic = log_source(settings, logical_pg.url, "s", name, f"tthc.log{unique}")
    try:
        yield name, topic
    finally:
        drop_log(logical_pg.url, "s", name)


def test_snapshot_then_every_change_in_commit_order(
    settings: Settings, logical_pg: Cluster, source: tuple[str, str]
) -> None:
    table, topic = source
    first = run(settings, "s")
    assert first.rows == 2
    snap = events_of(settings, topic)
    assert [e["op"] for e in snap] == ["r", "r"]
    assert snap[0]["after"]["ten"] == "Nguyễn Văn An"
    assert snap[0]["after"]["so_tien"] == decimal.Decimal("10.50")

    url = logical_pg.url
    execute(  # one transaction: 3 inserts
        url,
        "INSERT INTO {t} VALUES (3, 'Lê Hoàng Phúc', 1234567.89, "
        "'2025-12-31 23:59:59.123456+07', '{\"ds\": [1, \"hai\"]}', NULL)",
        "INSERT INTO {t} (id, ten) VALUES (4, 'Phạm Thu Hà')",
        "INSERT INTO {t} (id, ten) VALUES (5, 'Võ Minh Khôi')",
        table=table,
    )
    execute(url, "UPDATE {t} SET ghi_chu = 'đã sửa', so_tien = NULL WHERE id = 1", table=table)
    execute(url, "DELETE FROM {t} WHERE id = 2", table=table)
    execute(  # one transaction updating the same row 5 times
        url,
        *[
            "UPDATE {t} SET so_tien = {n}, ghi_chu = 'lần {n}' WHERE id = 4".replace("{n}", str(n))
            for n in range(1, 6)
        ],
        table=table,
    )
    commit_before = dt.datetime.now(dt.UTC)
    second = run(settings, "s")
    assert second.rows == 10, second.to_dict()
    events = events_of(settings, topic)[2:]
    assert [e["op"] for e in events] == ["c", "c", "c", "u", "d"] + ["u"] * 5
    keys = [json.loads(e["key"])["id"] for e in events]
    assert keys == [3, 4, 5, 1, 2, 4, 4, 4, 4, 4]
    three = events[0]["after"]
    assert three["ten"] == "Lê Hoàng Phúc"
    assert three["so_tien"] == decimal.Decimal("1234567.89")
    assert three["luc"] == dt.datetime(2025, 12, 31, 16, 59, 59, 123456, tzinfo=dt.UTC)
    assert json.loads(three["du_lieu"]) == {"ds": [1, "hai"]}
    assert three["ghi_chu"] is None
    # the update carries the whole old row (REPLICA IDENTITY FULL) and the new one
    update = events[3]
    assert update["before"]["ghi_chu"] is None and update["before"]["so_tien"] == decimal.Decimal(
        "10.50"
    )
    assert update["after"]["ghi_chu"] == "đã sửa" and update["after"]["so_tien"] is None
    # the delete: the whole old row in before, nothing after
    delete = events[4]
    assert delete["before"]["ten"] == "Trần Thị Bích" and delete["after"] is None
    # all 5 states of row 4, in order, with one commit time and increasing positions
    five = events[5:]
    assert [e["after"]["ghi_chu"] for e in five] == [f"lần {n}" for n in range(1, 6)]
    assert len({e["ts_ms"] for e in five}) == 1
    lsns = {e["source"]["position"].split(":")[0] for e in five}
    assert len(lsns) == 1
    assert [int(e["source"]["position"].split(":")[1]) for e in five] == [0, 1, 2, 3, 4]
    assert len({e["event_id"] for e in events}) == 10
    # the same transaction's 3 inserts share a commit LSN; ts_ms is the commit time
    assert len({e["source"]["position"].split(":")[0] for e in events[:3]}) == 1
    assert all(e["ts_ms"] <= commit_before.timestamp() * 1000 + 1 for e in events)
    # nothing new: nothing published
    assert run(settings, "s").rows == 0


def test_the_slot_moves_only_past_what_the_broker_acknowledged(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, table = logical_pg.url, f"ack_{unique}"
    execute(url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text)", table=table)
    topic = log_source(settings, url, "s", table, f"tthc.a{unique}", batch_size=1)
    try:
        assert run(settings, "s").rows == 0  # the snapshot of an empty table; the slot exists
        for n in range(1, 6):  # 5 transactions
            execute(
                url,
                "INSERT INTO {t} VALUES ({n}, 'Lý Thị Mai {n}')".replace("{n}", str(n)),
                table=table,
            )
        calls: list[int] = []

        def crash_after_second_batch(_tr: object) -> None:
            calls.append(1)
            if len(calls) == 2:  # batch 2 acknowledged and its position stored: then a crash
                raise RuntimeError("crash")

        with pytest.raises(RuntimeError, match="crash"):
            run(settings, "s", progress=crash_after_second_batch)
        events = events_of(settings, topic)
        assert len(events) == 2
        first, second = (position_key(e["source"]["position"])[0] for e in events)
        flushed = confirmed_flush(url, "lgsp_s")
        # the first batch was acknowledged and the read went on: the server was told; the
        # second was acknowledged too but the read never resumed after it
        assert first < flushed <= second
        # the next run re-reads from the slot and skips what was acknowledged: no duplicate
        assert run(settings, "s").rows == 3
        later = events_of(settings, topic)
        positions = [e["source"]["position"] for e in later]
        assert len(positions) == len(set(positions)) == 5
        third = position_key(later[2]["source"]["position"])[0]
        assert flushed < third, "the slot never moved past an unacknowledged transaction"
        assert confirmed_flush(url, "lgsp_s") > max(position_key(p)[0] for p in positions)
    finally:
        drop_log(url, "s", table)


def test_changes_during_the_first_snapshot_are_neither_lost_nor_doubled(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, table, dst = logical_pg.url, f"snap_{unique}", f"snap_dst_{unique}"
    wide_table(url, table, 400, name="Bùi Thị ", doc="[1]")
    topic = log_pair(
        settings, "postgresql", url, table, f"tthc.n{unique}", PG_URL, dst, batch_size=10
    )
    writer = Writer(url, table, random.Random(15))
    try:
        writer.start()  # writes while the first run snapshots (40 batches) and streams
        first = run(settings, "s")
        writer.halt.set()
        writer.join(30)
        second = run(settings, "s")
        assert (first.status, second.status) == ("ok", "ok"), (first.to_dict(), second.to_dict())
        events = [m.value for m in read_topic(settings, topic)]
        snapshot = [e for e in events if e["op"] == "r"]
        changes = [e for e in events if e["op"] != "r"]
        assert snapshot and changes, (len(snapshot), len(changes))
        positions = [e["source"]["position"] for e in changes]
        assert len(positions) == len(set(positions)), "a change published twice"
        # every change sorts after the snapshot rows by the sinks' version rule (ts_ms)
        assert max(e["ts_ms"] for e in snapshot) <= min(e["ts_ms"] for e in changes)
        run(settings, "d")
        sunk, held = table_rows(PG_URL, dst), table_rows(url, table)
        wrong = [k for k in held if sunk.get(k) != held[k]]
        assert sunk == held, [
            (e["op"], e["ts_ms"], e["source"]["position"], (e["after"] or {}).get("so_tien"))
            for e in events
            if wrong and json.loads(e["key"])["id"] == wrong[0]
        ]
    finally:
        writer.halt.set()
        drop_log(url, "s", table)
        drop_tables(PG_URL, [dst])


def test_a_table_added_or_reset_snapshots_the_connector_again(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, one, two = logical_pg.url, f"mot_{unique}", f"hai_{unique}"
    for table in (one, two):
        execute(url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text)", table=table)
        execute(url, "INSERT INTO {t} VALUES (1, 'một'), (2, 'hai')", table=table)
    first = [{"table": one, "dataset": f"tthc.m{unique}", "mode": "log"}]
    both = [*first, {"table": two, "dataset": f"tthc.h{unique}", "mode": "log"}]
    try:
        topic_one = (
            register(settings, config("postgresql", "source", url, first, name="s")).tables[0].topic
        )
        assert run(settings, "s").rows == 2
        execute(url, "UPDATE {t} SET ten = 'đổi' WHERE id = 1", table=one)
        # a second table joins the connector: both are read again in a new snapshot, then the
        # stream goes on where the slot was (the update of table one, already in the
        # snapshot, comes after it with an older ts_ms: the sinks' version rule drops it)
        register(settings, config("postgresql", "source", url, both, name="s"), replace=True)
        report = run(settings, "s")
        assert {t.table: t.rows for t in report.tables} == {one: 3, two: 2}
        events = events_of(settings, topic_one)
        snapshot_ts = max(e["ts_ms"] for e in events if e["op"] == "r")
        [update] = [e for e in events if e["op"] == "u"]
        assert update["ts_ms"] <= snapshot_ts
        execute(url, "INSERT INTO {t} VALUES (3, 'ba')", table=two)
        assert {t.table: t.rows for t in run(settings, "s").tables} == {one: 0, two: 1}
        # forgetting one table's position: the connector snapshots again
        ConnectorStore(settings).reset("s", two)
        assert {t.table: t.rows for t in run(settings, "s").tables} == {one: 2, two: 3}
    finally:
        drop_log(url, "s", one, two)
