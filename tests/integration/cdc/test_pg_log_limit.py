"""The ``log:`` limits of a PostgreSQL ``mode: log`` source on a real logical cluster: past
``warn_bytes`` show, status, the API, check and the run warn with the figure and the limit;
past ``max_bytes`` the guard (at a run's start, and in ``lgsp connector check`` with no run at
all) drops the slot, stops the tables with the re-snapshot command and exits non-zero; the
command it names brings the sink back to the source on every column. WAL is made cheaply with
``pg_logical_emit_message`` (written to the WAL, decoded by nobody)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.integration.cdc.helpers import (
    WIDE_DDL,
    connector_file,
    drop_log,
    emit_wal,
    execute,
    lgsp,
    slots,
    table_rows,
)
from tests.integration.cdc.pg_cluster import Cluster

pytestmark = pytest.mark.integration


def test_warning_threshold_in_show_status_check_and_run(
    cli_env: dict[str, str], logical_pg: Cluster, tmp_path: Path, unique: str
) -> None:
    url, table, name = logical_pg.url, f"lw_{unique}", f"lw-{unique}"
    slot = f"lgsp_lw_{unique}"
    holder = sa.create_engine(url)
    held: sa.Connection | None = None
    execute(
        url,
        WIDE_DDL["postgresql"],
        "INSERT INTO {t} VALUES (1, 'Ngô Bảo Châu', 1, now(), '{}', '')",
        table=table,
    )
    try:
        file = connector_file(
            tmp_path / "w.yaml", name, url, table, f"tthc.lw{unique}", log={"warn_bytes": "4MB"}
        )
        assert lgsp("connector", "add", str(file))[0] == 0
        code, out, err = lgsp("connector", "run", name)
        assert code == 0, out + err
        code, out, err = lgsp("connector", "show", name)
        assert "limits (log:): warn at 4.0 MB" in out
        assert "log.warn_bytes" not in err, "below the threshold right after a run"
        # a transaction left open (it wrote, so it has an xid) holds the slot's restart
        # point back whatever the connector confirms
        execute(url, "CREATE TABLE {t} (id int)", table=f"giu_{unique}")
        held = holder.connect()
        held.exec_driver_sql(f"INSERT INTO giu_{unique} VALUES (1)")  # noqa: S608
        emit_wal(url, 6)
        code, out, err = lgsp("connector", "show", name)
        assert code == 0
        assert f"warning: replication slot {slot} retains " in err
        assert "over log.warn_bytes = 4.0 MB" in err
        shown = json.loads(lgsp("connector", "show", name, "--json")[1])["log"]
        assert shown["behind_bytes"] > 5 << 20 and shown["limits"]["warn_bytes"] == 4 << 20
        assert any("over log.warn_bytes" in w for w in shown["warnings"])
        assert shown["over_limit"] is None
        code, out, err = lgsp("connector", "status", name)
        assert "over log.warn_bytes = 4.0 MB" in err
        code, out, err = lgsp("connector", "check", name)
        assert code == 0 and "over log.warn_bytes = 4.0 MB" in err
        # the run warns (its start is judged), reads on, and the slot moves
        code, out, err = lgsp("connector", "run", name, "--json")
        assert code == 0, out + err
        [tr] = json.loads(out)["tables"]
        assert any("over log.warn_bytes = 4.0 MB" in w for w in tr["warnings"]), tr
        # the run confirmed the WAL, but the open transaction holds the slot's restart point:
        # past a hard limit now, the slot is not dropped
        file = connector_file(
            tmp_path / "w.yaml",
            name,
            url,
            table,
            f"tthc.lw{unique}",
            log={"warn_bytes": "4MB", "max_bytes": "5MB"},
        )
        assert lgsp("connector", "add", str(file), "--replace")[0] == 0
        code, out, err = lgsp("connector", "check", name)
        assert code == 0, out + err
        assert "over log.max_bytes = 5.0 MB, but the connector has confirmed all but" in err
        assert "the slot is not dropped" in err and slot in slots(url)
        held.close()  # rolled back
        held = None
        # the restart point moves once the server notes its running transactions (at a
        # checkpoint, or every 15 s) and a run reads that: then the warnings are gone
        execute(url, "CHECKPOINT")
        assert lgsp("connector", "run", name)[0] == 0
        code, out, err = lgsp("connector", "show", name)
        assert "log.warn_bytes" not in err and "log.max_bytes" not in err, err
    finally:
        if held is not None:  # a failure left the transaction open
            held.close()
        holder.dispose()
        drop_log(url, name, table, f"giu_{unique}")


def test_hard_limit_drops_the_slot_stops_and_the_named_command_resumes(
    cli_env: dict[str, str], logical_pg: Cluster, tmp_path: Path, unique: str
) -> None:
    url, table, dst, name = logical_pg.url, f"lh_{unique}", f"lh_dst_{unique}", f"lh-{unique}"
    slot, dataset = f"lgsp_lh_{unique}", f"tthc.lh{unique}"
    resume = f"lgsp connector reset {name} && lgsp connector run {name}"
    execute(
        url,
        WIDE_DDL["postgresql"],
        "INSERT INTO {t} VALUES (1, 'Trịnh Công Sơn', 10.5, '2025-07-01 08:00+07', "
        "'{\"phuong\": \"Tân Định\"}', NULL), (2, 'Lý Thường Kiệt', NULL, NULL, NULL, 'hai')",
        table=table,
    )
    try:
        file = connector_file(
            tmp_path / "h.yaml",
            name,
            url,
            table,
            dataset,
            log={"warn_bytes": "1MB", "max_bytes": "3MB"},
        )
        assert lgsp("connector", "add", str(file))[0] == 0
        sink = connector_file(
            tmp_path / "s.yaml",
            f"{name}-sink",
            url,
            dst,
            dataset,
            role="sink",
            tables=[{"table": dst, "dataset": dataset}],
        )
        assert lgsp("connector", "add", str(sink))[0] == 0
        assert lgsp("connector", "run", name)[0] == 0
        # changes the stream never reads (the slot goes before the next run), then WAL
        execute(
            url,
            "INSERT INTO {t} VALUES (3, 'Hồ Xuân Hương', 3.25, now(), '[1, 2]', 'ba')",
            "UPDATE {t} SET ghi_chu = 'đã sửa', so_tien = 11 WHERE id = 1",
            table=table,
        )
        emit_wal(url, 5)
        code, out, err = lgsp("connector", "show", name)
        assert "over the hard limit log.max_bytes = 3.0 MB" in err and slot in slots(url)
        # at a run's start: the slot is dropped, the table stops, the run exits non-zero
        code, out, err = lgsp("connector", "run", name)
        assert code != 0
        assert slot not in slots(url)
        text = out + err
        assert f"replication slot {slot} retains " in text
        assert "over the hard limit log.max_bytes = 3.0 MB: the slot was dropped" in text
        assert f"resume with a new snapshot: {resume}" in text
        code, out, err = lgsp("connector", "status", name, "--json")
        [position] = json.loads(out)["positions"].values()
        assert position["status"] == "stopped" and resume in position["error"]
        # it stays stopped, saying why, until the named command
        code, out, err = lgsp("connector", "run", name)
        assert code != 0 and "stopped earlier: replication slot" in out + err
        assert resume in out + err
        # the named command resumes: a new slot and snapshot
        assert lgsp("connector", "reset", name)[0] == 0
        code, out, err = lgsp("connector", "run", name)
        assert code == 0, out + err
        assert slot in slots(url)
        # with no run at all, lgsp connector check enforces it (a cron or Airflow task)
        execute(
            url, "UPDATE {t} SET luc = now(), du_lieu = '{\"lan\": 2}' WHERE id = 2", table=table
        )
        emit_wal(url, 5)
        code, out, err = lgsp("connector", "check", name)
        assert code != 0
        assert "over the hard limit log.max_bytes = 3.0 MB: the slot was dropped" in out + err
        assert resume in out + err
        assert slot not in slots(url)
        assert lgsp("connector", "reset", name)[0] == 0
        code, out, err = lgsp("connector", "run", name)
        assert code == 0, out + err
        # a change streamed after the new snapshot, then the sink equals the source
        execute(url, "UPDATE {t} SET ten = 'Hồ Xuân Hương (sửa)' WHERE id = 3", table=table)
        assert lgsp("connector", "run", name)[0] == 0
        code, out, err = lgsp("connector", "run", f"{name}-sink")
        assert code == 0, out + err
        sunk, held = table_rows(url, dst), table_rows(url, table)
        assert set(held) == {1, 2, 3}
        assert sunk == held
    finally:
        drop_log(url, name, table, dst)
