"""``lgsp connector add|show|run|remove`` of a ``mode: log`` source: the server's settings and
the role's grant checked at add, the slot shown with its retained WAL, a lost slot reported
with the command to re-snapshot, the slot dropped on remove unless --keep-slot."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.cdc.helpers import connector_file, drop_log, execute, lgsp, slots
from tests.integration.cdc.pg_cluster import Cluster

pytestmark = pytest.mark.integration


def test_add_names_wal_level_and_the_replication_attribute(
    cli_env: dict[str, str], logical_pg: Cluster, replica_pg: Cluster, tmp_path: Path, unique: str
) -> None:
    table = f"cli_{unique}"
    # a server with wal_level=replica: add names the setting
    execute(replica_pg.url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text)", table=table)
    file = connector_file(tmp_path / "a.yaml", "wal", replica_pg.url, table, f"tthc.w{unique}")
    code, out, err = lgsp("connector", "add", str(file))
    assert code != 0
    assert "server setting wal_level is 'replica', expected 'logical'" in err + out
    # a role without REPLICATION on a logical server: add names the attribute
    execute(
        logical_pg.url,
        "CREATE TABLE {t} (id int PRIMARY KEY, ten text)",
        "DROP ROLE IF EXISTS khong_sao_chep",
        "CREATE ROLE khong_sao_chep LOGIN",
        "GRANT SELECT ON {t} TO khong_sao_chep",
        table=table,
    )
    try:
        url = logical_pg.url_for("khong_sao_chep")
        file = connector_file(tmp_path / "b.yaml", "norepl", url, table, f"tthc.n{unique}")
        code, out, err = lgsp("connector", "add", str(file))
        assert code != 0
        assert "role 'khong_sao_chep' lacks the REPLICATION attribute" in err + out
        assert "wal_level" not in err + out
        code, out, _ = lgsp("connector", "list")
        assert "norepl" not in out, "nothing stored"
    finally:
        execute(logical_pg.url, "DROP TABLE {t}", "DROP ROLE khong_sao_chep", table=table)
    # a table without a primary key (REPLICA IDENTITY DEFAULT): PostgreSQL would refuse its
    # updates once published, so add refuses it and names both ways out
    execute(logical_pg.url, "CREATE TABLE {t} (id int, ten text)", table=table)
    try:
        file = connector_file(
            tmp_path / "c.yaml", "nokey", logical_pg.url, table, f"tthc.k{unique}"
        )
        code, out, err = lgsp("connector", "add", str(file))
        assert code != 0
        assert f"table '{table}' has REPLICA IDENTITY DEFAULT and no primary key" in err + out
        assert "primary key or REPLICA IDENTITY FULL" in err + out
        # with a key it registers, warning that the identity is not FULL
        execute(logical_pg.url, "ALTER TABLE {t} ADD PRIMARY KEY (id)", table=table)
        code, out, err = lgsp("connector", "add", str(file))
        assert code == 0, out + err
        assert f"table '{table}' is not REPLICA IDENTITY FULL" in err
    finally:
        execute(logical_pg.url, "DROP TABLE {t}", table=table)


def test_show_run_lost_slot_and_remove(
    cli_env: dict[str, str], logical_pg: Cluster, tmp_path: Path, unique: str
) -> None:
    url, table, name = logical_pg.url, f"cli_{unique}", f"log-{unique}"
    slot = f"lgsp_log_{unique}"
    execute(url, "CREATE TABLE {t} (id int PRIMARY KEY, ten text)", table=table)
    try:
        file = connector_file(tmp_path / "c.yaml", name, url, table, f"tthc.s{unique}")
        code, out, err = lgsp("connector", "add", str(file))
        assert code == 0, out + err
        assert "DELETE" not in err, "no note about invisible hard deletes: the log sees them"
        code, out, err = lgsp("connector", "show", name)
        assert f"replication slot {slot} (publication {slot}): not created yet" in out
        execute(url, "INSERT INTO {t} VALUES (1, 'Đặng Văn Lâm')", table=table)
        code, out, err = lgsp("connector", "run", name)
        assert code == 0, out + err
        execute(
            url,
            "INSERT INTO {t} SELECT g, repeat('x', 100) FROM generate_series(2, 500) g",
            table=table,
        )
        code, out, _ = lgsp("connector", "show", name, "--json")
        shown = json.loads(out)["log"]
        assert shown["exists"] and shown["wal_status"] in ("reserved", "extended")
        assert shown["retained_wal_bytes"] > 0
        code, out, _ = lgsp("connector", "show", name)
        assert re.search(rf"replication slot {slot} .*: (reserved|extended)", out)
        assert re.search(r"retains [1-9][0-9]* bytes of WAL", out), out
        # the slot is lost (dropped by hand): the run stops and says how to re-snapshot
        execute(url, f"SELECT pg_drop_replication_slot('{slot}')")
        code, out, err = lgsp("connector", "run", name)
        assert code != 0
        assert f"replication slot {slot} is missing" in out + err
        assert f"lgsp connector reset {name} && lgsp connector run {name}" in out + err
        code, out, err = lgsp("connector", "show", name)
        assert f"replication slot {slot} does not exist" in err
        # the command it names works: a new snapshot, then the stream again
        assert lgsp("connector", "reset", name)[0] == 0
        code, out, err = lgsp("connector", "run", name)
        assert code == 0, out + err
        assert slot in slots(url)
        # --keep-slot keeps it; a plain remove drops slot and publication
        code, out, _ = lgsp("connector", "remove", name, "--yes", "--keep-slot")
        assert code == 0 and slot in slots(url)
        assert lgsp("connector", "add", str(file))[0] == 0
        code, out, _ = lgsp("connector", "remove", name, "--yes")
        assert code == 0
        assert f"dropped slot {slot} and publication {slot}" in out
        assert slot not in slots(url)
    finally:
        drop_log(url, name, table)
