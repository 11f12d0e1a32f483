"""``mode: log`` on PostgreSQL: a column change seen in the stream's Relation messages; an
incompatible one stops the table before it and names the column, the change and the
re-snapshot command."""

from __future__ import annotations

import pytest

from bus.config import Settings
from bus.sync import run
from tests.integration.cdc.helpers import drop_log, events_of, execute, lgsp, log_source
from tests.integration.cdc.pg_cluster import Cluster

pytestmark = pytest.mark.integration


def test_a_narrowed_column_stops_the_table_before_the_change(
    settings: Settings, cli_env: dict[str, str], logical_pg: Cluster, unique: str
) -> None:
    url, table = logical_pg.url, f"narrow_{unique}"
    execute(url, "CREATE TABLE {t} (id bigint PRIMARY KEY, ten varchar(100), n int)", table=table)
    try:
        log_source(settings, url, "s", table, f"tthc.n{unique}")
        run(settings, "s")
        execute(url, "INSERT INTO {t} VALUES (1, 'một', 1)", table=table)
        execute(url, "ALTER TABLE {t} ALTER COLUMN ten TYPE varchar(10)", table=table)
        execute(url, "INSERT INTO {t} VALUES (2, 'hai', 2)", table=table)
        [tr] = run(settings, "s").tables
        assert tr.status == "stopped"
        assert tr.rows == 1, "the insert before the change was published"
        error = tr.error or ""
        assert table in error and "column 'ten'" in error
        assert "varchar(100) to varchar(10)" in error
        assert "lgsp connector reset s && lgsp connector run s" in error
        [again] = run(settings, "s").tables
        assert again.status == "stopped" and again.rows == 0
        assert "stopped earlier: incompatible schema change" in (again.error or "")
        code, out, err = lgsp("connector", "check", "s")
        assert code == 0, err
        assert f"stopped: incompatible schema change of table public.{table}" in out
        assert "column 'ten'" in out
    finally:
        drop_log(url, "s", table)


def test_a_dropped_column_stops_and_an_added_one_goes_on(
    settings: Settings, logical_pg: Cluster, unique: str
) -> None:
    url, table = logical_pg.url, f"dropc_{unique}"
    execute(url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text NOT NULL)", table=table)
    try:
        topic = log_source(settings, url, "s", table, f"tthc.d{unique}")
        run(settings, "s")
        execute(url, "ALTER TABLE {t} ADD COLUMN ghi_chu text", table=table)
        execute(url, "INSERT INTO {t} VALUES (1, 'một', 'x')", table=table)
        [added] = run(settings, "s").tables
        assert (added.status, added.rows) == ("ok", 1)
        # added between runs: the run's discovery (the catalog of now) derives the schema with
        # it, so a row written before the ALTER but read in this run carries it as null
        execute(url, "INSERT INTO {t} VALUES (2, 'hai', 'y')", table=table)
        execute(url, "ALTER TABLE {t} ADD COLUMN so int", table=table)
        execute(url, "INSERT INTO {t} VALUES (3, 'ba', 'z', 3)", table=table)
        [tr] = run(settings, "s").tables
        assert (tr.status, tr.rows) == ("ok", 2)
        events = events_of(settings, topic)
        assert [e["after"] for e in events] == [
            {"id": 1, "ten": "một", "ghi_chu": "x"},
            {"id": 2, "ten": "hai", "ghi_chu": "y", "so": None},
            {"id": 3, "ten": "ba", "ghi_chu": "z", "so": 3},
        ]
        execute(url, "INSERT INTO {t} VALUES (4, 'bốn', 'w', 4)", table=table)
        execute(url, "ALTER TABLE {t} DROP COLUMN ten", table=table)
        execute(url, "INSERT INTO {t} VALUES (5, 'v', 5)", table=table)
        [tr] = run(settings, "s").tables
        assert tr.status == "stopped" and tr.rows == 1
        assert "column 'ten': column dropped" in (tr.error or "")
    finally:
        drop_log(url, "s", table)
