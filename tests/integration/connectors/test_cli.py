"""``lgsp connector ...`` as IT staff run it: one file, one command, clear errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from bus.config import Settings, get_settings
from bus.db import session_scope
from bus.db.models import Run
from conftest import PG_URL
from tests.helpers import drop_tables
from tests.helpers import run_cli as lgsp

pytestmark = pytest.mark.integration


@pytest.fixture
def tables(unique: str) -> Iterator[tuple[str, str]]:
    src, dst = f"cli_src_{unique}", f"cli_dst_{unique}"
    engine = sa.create_engine(PG_URL)
    table = sa.Table(
        src,
        sa.MetaData(),
        sa.Column("ma_ho_so", sa.String(20), primary_key=True),
        sa.Column("nguoi_nop", sa.String(100), nullable=False),
        sa.Column("cap_nhat", sa.DateTime(timezone=True), nullable=False),
    )
    table.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "ma_ho_so": f"HS{i:04d}",
                    "nguoi_nop": "Bùi Thị Xuân",
                    "cap_nhat": dt.datetime(2025, 7, 1, tzinfo=dt.UTC),
                }
                for i in range(12)
            ],
        )
    engine.dispose()
    try:
        yield src, dst
    finally:
        drop_tables(PG_URL, [src, dst])


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_register_run_show_remove(
    cli_env: dict[str, str],
    tables: tuple[str, str],
    tmp_path: Path,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, dst = tables
    monkeypatch.setenv("LGSP_TEST_PG_PASSWORD", "pw-never-shown")
    url = PG_URL.replace("postgres@", "postgres:${LGSP_TEST_PG_PASSWORD}@")
    dataset = f"tthc.c{unique}"
    source = write(
        tmp_path / "source.yaml",
        {
            "name": f"src-{unique}",
            "type": "postgresql",
            "role": "source",
            "agency": "ubnd-phuong-tan-dinh",
            "unit": "26734",
            "connection": {"url": url},
            "schedule": "*/5 * * * *",
            "batch_size": 5,
            "tables": [{"table": src, "dataset": dataset, "cursor": "cap_nhat"}],
        },
    )
    code, out, err = lgsp("connector", "add", str(source), "--dry-run")
    assert code == 0, err
    assert f"lgsp.79.760.26734.{dataset}" in out and "new subject, version 1" in out
    assert "dry run: nothing stored" in out
    assert "pw-never-shown" not in out + err
    assert lgsp("connector", "list")[1].count("\n") == 1  # the header only

    code, out, err = lgsp("connector", "add", str(source))
    assert code == 0, err
    assert "registered connector" in out and "version 1" in out
    code, out, _ = lgsp("connector", "list")
    assert f"src-{unique}" in out and "postgresql" in out
    code, out, _ = lgsp("connector", "show", f"src-{unique}")
    assert code == 0 and "postgres:***@127.0.0.1" in out and "never run" in out
    assert "pw-never-shown" not in out and "LGSP_TEST_PG_PASSWORD" not in out
    code, out, err = lgsp("connector", "add", str(source))
    assert code == 2 and "already registered" in err
    assert lgsp("connector", "check", f"src-{unique}")[0] == 0

    code, out, err = lgsp("connector", "run", f"src-{unique}")
    assert code == 0, err
    assert f"src-{unique}: rows 12, batches 3, DLQ 0, time" in out

    sink = write(
        tmp_path / "sink.yaml",
        {
            "name": f"dst-{unique}",
            "type": "postgresql",
            "role": "sink",
            "agency": "so-tttt",
            "unit": "26734",
            "connection": {"url": PG_URL},
            "tables": [{"table": dst, "dataset": dataset}],
        },
    )
    code, out, err = lgsp("connector", "add", str(sink))
    assert code == 0, err
    assert "create table" in out and "ma_ho_so" in out
    code, out, err = lgsp("connector", "run", f"dst-{unique}", "--json")
    assert code == 0, err
    assert '"rows": 12' in out and '"status": "ok"' in out
    engine = sa.create_engine(PG_URL)
    with engine.connect() as conn:
        count = conn.execute(sa.text(f'SELECT count(*) FROM "{dst}"')).scalar()  # noqa: S608
    engine.dispose()
    assert count == 12

    settings = get_settings()
    with session_scope(settings) as s:
        runs = s.query(Run).filter(Run.kind == "sync").order_by(Run.id).all()
        assert [(r.name, r.status, r.rows_out) for r in runs] == [
            (f"src-{unique}", "ok", 12),
            (f"dst-{unique}", "ok", 12),
        ]

    code, out, _ = lgsp("connector", "remove", f"src-{unique}", "--yes")
    assert code == 0 and "removed" in out
    code, _, err = lgsp("connector", "show", f"src-{unique}")
    assert code == 2 and "is not registered" in err


def test_bad_files_are_refused_with_every_error(cli_env: dict[str, str], tmp_path: Path) -> None:
    bad = write(
        tmp_path / "bad.yaml",
        {
            "name": "Bad_Name",
            "type": "postgresql",
            "role": "source",
            "agency": "",
            "unit": "26734",
            "connection": {"url": "postgresql://app:hunter2@db/x"},
            "tables": [{"table": "t", "dataset": "tthc.x", "mode": "incremental"}],
        },
    )
    code, out, err = lgsp("connector", "add", str(bad))
    assert code == 2
    assert err.startswith("error: connector 'Bad_Name': 3 invalid fields: ")
    for field in ("name:", "agency:", "connection.url:"):
        assert field in err
    assert "hunter2" not in err
    unknown = write(tmp_path / "unknown.yaml", {"type": "oracle"})
    code, _, err = lgsp("connector", "add", str(unknown))
    assert code == 2 and "unknown connector type 'oracle'" in err and "sqlite" in err
    assert "name: required" in err
    code, _, err = lgsp("connector", "run", "nobody")
    assert code == 2 and "none is registered" in err
    code, out, _ = lgsp("connector", "types")
    assert code == 0 and "connectors.sql.dialects:MySQLConnector" in out


def test_incompatible_change_stops_one_table_and_the_others_go_on(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    from bus.connector_service.registration import register
    from bus.connectors_db import ConnectorStore
    from bus.errors import IncompatibleSchemaError
    from bus.sync import run
    from tests.integration.connectors.helpers import config

    url = f"sqlite:///{tmp_path}/change.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE a (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL)"))
        conn.execute(sa.text("CREATE TABLE b (id INTEGER PRIMARY KEY, note TEXT)"))
        conn.execute(sa.text("INSERT INTO a VALUES (1, 5)"))
        conn.execute(sa.text("INSERT INTO b VALUES (1, 'x')"))
    name = f"chg-{unique}"
    data = config(
        "sqlite",
        "source",
        url,
        [
            {"table": "a", "dataset": f"kho.a{unique}"},
            {"table": "b", "dataset": f"kho.b{unique}"},
        ],
        name=name,
    )
    register(settings, data)
    assert run(settings, name).rows == 2
    with engine.begin() as conn:  # a: qty becomes text (incompatible); b: a nullable column
        conn.execute(sa.text("ALTER TABLE a RENAME TO a_old"))
        conn.execute(sa.text("CREATE TABLE a (id INTEGER PRIMARY KEY, qty TEXT NOT NULL)"))
        conn.execute(sa.text("INSERT INTO a VALUES (1, 'five')"))
        conn.execute(sa.text("ALTER TABLE b ADD COLUMN extra TEXT"))
    engine.dispose()
    report = run(settings, name)
    by_table = {t.table: t for t in report.tables}
    assert by_table["a"].status == "stopped" and "schema refused" in (by_table["a"].error or "")
    assert by_table["b"].status == "ok" and by_table["b"].rows == 1
    assert by_table["b"].schema_version == 2
    assert report.status == "partial"
    positions = ConnectorStore(settings).positions(name)
    assert positions["a"].status == "stopped" and positions["b"].status == "ok"
    # registering a second connector for a changed table shows the problem before storing
    with pytest.raises(IncompatibleSchemaError):
        register(settings, data, replace=True)


def test_show_prints_no_key_value_of_a_position(
    cli_env: dict[str, str], tmp_path: Path, unique: str
) -> None:
    ids = [f"0792030045{i:02d}" for i in range(7)]
    url = f"sqlite:///{tmp_path}/resident.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE resident (citizen_id TEXT PRIMARY KEY, updated_at TIMESTAMP)")
        )
        conn.execute(
            sa.text("INSERT INTO resident VALUES (:id, '2025-07-01 08:00:00')"),
            [{"id": i} for i in ids],
        )
    engine.dispose()
    name = f"res-{unique}"
    source = write(
        tmp_path / "resident.yaml",
        {
            "name": name,
            "type": "sqlite",
            "role": "source",
            "agency": "cong-an-tp",
            "unit": "79",
            "connection": {"url": url},
            "batch_size": 3,
            "tables": [
                {"table": "resident", "dataset": f"dancu.r{unique}", "cursor": "updated_at"}
            ],
        },
    )
    assert lgsp("connector", "add", str(source))[0] == 0
    code, _, err = lgsp("connector", "run", name)
    assert code == 0, err
    code, text, _ = lgsp("connector", "show", name)
    assert code == 0 and "after 2025-07-01 08:00:00, key sha256:" in text  # SQLite keeps text
    code, raw, _ = lgsp("connector", "show", name, "--json")
    assert code == 0
    import json

    shown = json.loads(raw)["positions"]["resident"]["position"]
    assert shown["after"]["cursor"] == "2025-07-01 08:00:00"
    assert shown["after"]["key"].startswith("sha256:")
    for value in ids:
        assert value not in text and value not in raw
    # the control database keeps the full position: the next run continues after it
    code, out, err = lgsp("connector", "run", name)
    assert code == 0 and f"{name}: rows 0," in out, err
