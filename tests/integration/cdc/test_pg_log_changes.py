"""``mode: log`` end to end: hard deletes reaching PostgreSQL and SQLite sinks, the polling
hole that ``mode: incremental`` cannot see, TOASTed values, TRUNCATE."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connector_service.registration import register, unregister
from bus.connectors_db import ConnectorStore
from bus.sync import run
from conftest import PG_URL
from tests.helpers import drop_tables
from tests.integration.cdc.helpers import drop_log, events_of, execute, log_source
from tests.integration.cdc.pg_cluster import Cluster
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration


def rows(url: str, table: str, columns: str = "id, ten") -> dict[int, tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            found = conn.exec_driver_sql(f'SELECT {columns} FROM "{table}"')  # noqa: S608
            return {r[0]: tuple(r) for r in found}
    finally:
        engine.dispose()


def test_hard_deletes_reach_postgresql_and_sqlite_sinks(
    settings: Settings, logical_pg: Cluster, unique: str, tmp_path: Path
) -> None:
    url, table, dataset = logical_pg.url, f"xoa_{unique}", f"tthc.x{unique}"
    # default replica identity: a delete carries the key only
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten text NOT NULL, so numeric(10, 2))",
        "INSERT INTO {t} SELECT g, 'Hồ sơ ' || g, g * 1.5 FROM generate_series(1, 6) g",
        table=table,
    )
    dst = f"xoa_dst_{unique}"
    lite = f"sqlite:///{tmp_path / 'sink.db'}"
    try:
        topic = log_source(settings, url, "s", table, dataset)
        register(
            settings,
            config("postgresql", "sink", PG_URL, [{"table": dst, "dataset": dataset}], name="pg"),
        )
        register(
            settings,
            config("sqlite", "sink", lite, [{"table": dst, "dataset": dataset}], name="lite"),
        )
        assert run(settings, "s").rows == 6
        execute(
            url,
            "DELETE FROM {t} WHERE id IN (2, 4)",
            "UPDATE {t} SET ten = 'đổi tên' WHERE id = 5",
            table=table,
        )
        execute(
            url,
            "INSERT INTO {t} VALUES (7, 'Hồ sơ mới', NULL)",
            "DELETE FROM {t} WHERE id = 7",
            table=table,
        )
        assert run(settings, "s").rows == 5
        deletes = [e for e in events_of(settings, topic) if e["op"] == "d"]
        assert sorted(json.loads(e["key"])["id"] for e in deletes) == [2, 4, 7]
        assert all(e["before"] is None and e["after"] is None for e in deletes), (
            "without REPLICA IDENTITY FULL the old row is its key: in 'key', before is null"
        )
        run(settings, "pg")
        run(settings, "lite")
        expected = rows(url, table, "id, ten, so")
        assert sorted(expected) == [1, 3, 5, 6]
        assert rows(PG_URL, dst, "id, ten, so") == expected
        assert rows(lite, dst, "id, ten, so") == expected
    finally:
        drop_log(url, "s", table)
        drop_tables(PG_URL, [dst])


def test_the_polling_hole_lost_by_incremental_captured_by_log(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, table = logical_pg.url, f"lo_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, phien_ban bigint NOT NULL, ten text)",
        table=table,
    )
    try:
        polled = (
            register(
                settings,
                config(
                    "postgresql",
                    "source",
                    url,
                    [{"table": table, "dataset": f"tthc.p{unique}", "cursor": "phien_ban"}],
                    name="poll",
                ),
            )
            .tables[0]
            .topic
        )
        logged = log_source(settings, url, "s", table, f"tthc.l{unique}")
        run(settings, "poll")
        run(settings, "s")
        # a transaction takes cursor value 100 and stays open while another commits 200
        late = psycopg.connect(url.replace("+psycopg", ""))
        late.execute(f"INSERT INTO {table} VALUES (1, 100, 'giao dịch chậm')")  # noqa: S608
        execute(url, "INSERT INTO {t} VALUES (2, 200, 'giao dịch nhanh')", table=table)
        assert run(settings, "poll").rows == 1  # polls 200: the cursor moves past 100
        late.commit()
        late.close()
        assert run(settings, "poll").rows == 0
        # the limit of polling, asserted as documentation: row 1 never reaches its topic
        assert sorted(json.loads(e["key"])["id"] for e in events_of(settings, polled)) == [2]
        assert run(settings, "s").rows == 2
        assert sorted(json.loads(e["key"])["id"] for e in events_of(settings, logged)) == [1, 2]
    finally:
        drop_log(url, "s", table)


def big_text(seed: int) -> str:
    """~22 kB of hex: stored out of line (TOAST), hard to compress below the threshold."""
    import hashlib

    return "".join(hashlib.sha256(f"{seed}-{i}".encode()).hexdigest() for i in range(700))


def insert_then_update_status(url: str, table: str, value: str) -> None:
    """Row 1 inserted with ``noi_dung`` = ``value`` (TOASTed), then an update of its status
    alone (the TOASTed value unchanged), in two transactions."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 'mới', :v)"), {"v": value})  # noqa: S608
    finally:
        engine.dispose()
    execute(url, "UPDATE {t} SET trang_thai = 'đã duyệt' WHERE id = 1", table=table)


def test_a_toasted_value_unchanged_by_an_update_is_published_whole(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, table = logical_pg.url, f"toast_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, trang_thai text, noi_dung text)",
        "ALTER TABLE {t} ALTER COLUMN noi_dung SET STORAGE EXTERNAL",
        "ALTER TABLE {t} REPLICA IDENTITY FULL",
        table=table,
    )
    value = big_text(1)
    try:
        topic = log_source(settings, url, "s", table, f"tthc.t{unique}")
        run(settings, "s")
        insert_then_update_status(url, table, value)
        assert run(settings, "s").rows == 2
        update = [e for e in events_of(settings, topic) if e["op"] == "u"][0]
        assert update["after"]["trang_thai"] == "đã duyệt"
        assert update["after"]["noi_dung"] == value, "the unchanged TOASTed value, not a marker"
        assert update["before"]["noi_dung"] == value
    finally:
        drop_log(url, "s", table)


def test_without_replica_identity_full_an_unchanged_toasted_value_stops_the_read(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, table = logical_pg.url, f"toastk_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, trang_thai text, noi_dung text)",
        "ALTER TABLE {t} ALTER COLUMN noi_dung SET STORAGE EXTERNAL",
        table=table,
    )
    try:
        log_source(settings, url, "s", table, f"tthc.k{unique}")
        run(settings, "s")
        insert_then_update_status(url, table, big_text(2))
        report = run(settings, "s")
        [tr] = report.tables
        assert tr.status == "stopped"
        assert "column 'noi_dung'" in (tr.error or "") and "REPLICA IDENTITY FULL" in (
            tr.error or ""
        )
        assert tr.rows == 1, "the insert before it was published"
        # nothing moved past it: the next run stops at the same update
        [again] = run(settings, "s").tables
        assert again.status == "stopped" and again.rows == 0
    finally:
        drop_log(url, "s", table)


def test_truncate_stops_the_read_before_it_and_names_the_resnapshot(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, table = logical_pg.url, f"trunc_{unique}"
    execute(url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text)", table=table)
    try:
        log_source(settings, url, "s", table, f"tthc.r{unique}")
        run(settings, "s")
        execute(url, "INSERT INTO {t} VALUES (1, 'một'), (2, 'hai')", table=table)
        execute(url, "TRUNCATE {t}", table=table)
        [tr] = run(settings, "s").tables
        assert tr.rows == 2
        assert tr.status == "stopped"
        assert "TRUNCATE at LSN" in (tr.error or "")
        assert "lgsp connector reset s && lgsp connector run s" in (tr.error or "")
        # it stays stopped (the slot may have moved past the TRUNCATE) until the reset it names
        [again] = run(settings, "s").tables
        assert again.status == "stopped" and "stopped earlier: TRUNCATE" in (again.error or "")
        execute(url, "INSERT INTO {t} VALUES (5, 'năm')", table=table)
        ConnectorStore(settings).reset("s")
        [after] = run(settings, "s").tables
        assert (after.status, after.rows) == ("ok", 1)  # a new snapshot: the one row there is
    finally:
        drop_log(url, "s", table)


def test_a_role_with_replication_and_select_uses_a_publication_a_dba_made(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    """The README's DBA set-up: the connector's role does not own the table (so it cannot
    create the publication); a superuser made it, and the connector uses it as it is."""
    url, table = logical_pg.url, f"dba_{unique}"
    execute(
        url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten text)",
        "INSERT INTO {t} VALUES (1, 'Phan Văn Trị')",
        "DROP ROLE IF EXISTS lgsp_cdc",
        "CREATE ROLE lgsp_cdc LOGIN REPLICATION",
        "GRANT SELECT ON {t} TO lgsp_cdc",
        "CREATE PUBLICATION lgsp_s FOR TABLE {t}",
        table=table,
    )
    try:
        topic = log_source(settings, logical_pg.url_for("lgsp_cdc"), "s", table, f"tthc.d{unique}")
        assert run(settings, "s").rows == 1
        execute(url, "DELETE FROM {t} WHERE id = 1", table=table)
        assert run(settings, "s").rows == 1
        assert [e["op"] for e in events_of(settings, topic)] == ["r", "d"]
        # removing the connector drops its slot and leaves the DBA's publication
        dropped = unregister(settings, "s")
        assert dropped is not None
        assert dropped["exists"] and dropped["publication_kept"]
        assert slot_and_publication(url) == (False, True)
    finally:
        drop_log(url, "s", table)
        execute(url, "DROP ROLE lgsp_cdc")


def slot_and_publication(url: str) -> tuple[bool, bool]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            slot = conn.exec_driver_sql(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = 'lgsp_s'"
            ).first()
            publication = conn.exec_driver_sql(
                "SELECT 1 FROM pg_publication WHERE pubname = 'lgsp_s'"
            ).first()
            return slot is not None, publication is not None
    finally:
        engine.dispose()
