"""Bad input against the real databases: clear errors, nothing half-registered."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.errors import ConfigurationError, NotFoundError, RetriableError
from bus.registry import Registry
from conftest import MYSQL_URL, PG_URL
from connectors.base import Batch
from connectors.errors import (
    AuthenticationError,
    ColumnNotFoundError,
    ConnectorConfigError,
    ConnectorUnavailableError,
    CursorTypeError,
    MissingPrimaryKeyError,
    TableNotFoundError,
)
from connectors.plugins import build
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

DIALECTS = ["sqlite", "postgresql", "mariadb"]


@pytest.fixture
def db(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(connector type, URL) of the dialect under test."""
    kind = request.param
    if kind == "sqlite":
        return kind, f"sqlite:///{tmp_path}/bad.db"
    return kind, PG_URL if kind == "postgresql" else MYSQL_URL


def _create(url: str, table: sa.Table) -> None:
    engine = sa.create_engine(url)
    try:
        table.metadata.create_all(engine)
    finally:
        engine.dispose()


@pytest.fixture
def plain_table(db: tuple[str, str], unique: str) -> Iterator[str]:
    """``bad_<unique>``: id PK, name, flag boolean, note text, changed_at timestamp."""
    _, url = db
    name = f"bad_{unique}"
    meta = sa.MetaData()
    _create(
        url,
        sa.Table(
            name,
            meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(50)),
            sa.Column("flag", sa.Boolean),
            sa.Column("note", sa.Text),
            sa.Column("changed_at", sa.DateTime, nullable=False),
        ),
    )
    try:
        yield name
    finally:
        drop_tables(url, [name])


def _register_fails(settings: Settings, data: dict, error: type[Exception]) -> Exception:
    with pytest.raises(error) as caught:
        register(settings, data)
    assert ConnectorStore(settings).list() == []  # nothing half-registered
    assert Registry(settings).subjects() == []
    return caught.value


@pytest.mark.parametrize("db", DIALECTS, indirect=True)
def test_unknown_tables_columns_and_cursor_types_all_at_once(
    db: tuple[str, str], plain_table: str, offline_settings: Settings
) -> None:
    kind, url = db
    data = config(
        kind,
        "source",
        url,
        [
            {"table": f"{plain_table}_nope", "dataset": "tthc.one"},
            {"table": plain_table, "dataset": "tthc.two", "cursor": "updated"},
        ],
    )
    error = _register_fails(offline_settings, data, ConnectorConfigError)
    assert len(error.errors) == 2  # type: ignore[attr-defined]
    assert "does not exist" in error.errors[0] and "did you mean" in error.errors[0]  # type: ignore[attr-defined]
    assert "column 'updated' does not exist" in error.errors[1]  # type: ignore[attr-defined]
    causes = error.causes  # type: ignore[attr-defined]
    assert isinstance(causes[0], TableNotFoundError)
    assert isinstance(causes[1], ColumnNotFoundError)

    for column, expected in (("flag", "cannot order"), ("note", "cannot order")):
        bad = config(
            kind, "source", url, [{"table": plain_table, "dataset": "tthc.x", "cursor": column}]
        )
        error = _register_fails(offline_settings, bad, ConnectorConfigError)
        assert expected in str(error)
        assert isinstance(error.causes[0], CursorTypeError)

    bad = config(
        kind, "source", url, [{"table": plain_table, "dataset": "tthc.x", "columns": ["id", "nam"]}]
    )
    error = _register_fails(offline_settings, bad, ConnectorConfigError)
    assert "did you mean 'name'" in str(error)


@pytest.mark.parametrize("db", DIALECTS, indirect=True)
def test_table_without_primary_key(
    db: tuple[str, str], unique: str, offline_settings: Settings
) -> None:
    kind, url = db
    name = f"nopk_{unique}"
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("msg", sa.String(50)),
    )
    _create(url, table)
    try:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            rows = [{"seq": 1, "msg": "a"}, {"seq": 1, "msg": "b"}, {"seq": 2, "msg": "c"}]
            conn.execute(table.insert(), rows)
        engine.dispose()
        # a source: allowed (append-only), with a warning
        source = config(
            kind, "source", url, [{"table": name, "dataset": "tthc.log", "cursor": "seq"}]
        )
        plan = register(offline_settings, source, dry_run=True)
        assert any("no primary key" in w for w in plan.warnings)
        with build(source, batch_size=1) as connector:
            [stream] = connector.discover()
            batches = list(connector.read_stream(stream, None))
            # rows sharing a cursor value stay in one batch (no key to break the tie)
            assert [len(b.events) for b in batches] == [2, 1]
            assert {e["key"] for b in batches for e in b.events} == {"{}"}
            assert len({e["event_id"] for b in batches for e in b.events}) == 3
            assert (
                list(connector.read_stream(stream, batches[0].state))[0].events[0]["after"]["msg"]
                == "c"
            )
        # a sink: refused
        sink = config(kind, "sink", url, [{"table": name, "dataset": "tthc.log"}], name="a-sink")
        error = _register_fails(offline_settings, sink, ConnectorConfigError)
        assert isinstance(error.causes[0], MissingPrimaryKeyError)
        assert "upserts by primary key" in str(error)
    finally:
        drop_tables(url, [name])


@pytest.mark.parametrize("db", DIALECTS, indirect=True)
def test_identifiers_with_quotes_semicolons_and_vietnamese(
    db: tuple[str, str], unique: str, offline_settings: Settings
) -> None:
    kind, url = db
    source_name = f'hồ sơ "{unique}"; DROP TABLE x; --'
    target_name = f"bản sao '{unique}';"
    meta = sa.MetaData()
    table = sa.Table(
        source_name,
        meta,
        sa.Column("mã", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column('họ tên"; --', sa.String(100)),
        sa.Column("cập nhật", sa.DateTime, nullable=False),
        mysql_charset="utf8mb4",
    )
    _create(url, table)
    try:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {"mã": 1, 'họ tên"; --': "Võ Thị Sáu", "cập nhật": dt.datetime(2025, 1, 1)},
                    {"mã": 2, 'họ tên"; --': "Lý Tự Trọng", "cập nhật": dt.datetime(2025, 1, 2)},
                ],
            )
        engine.dispose()
        source = config(
            kind,
            "source",
            url,
            [{"table": source_name, "dataset": "tthc.hoso", "cursor": "cập nhật"}],
        )
        plan = register(offline_settings, source, dry_run=True)
        fields = [c["field"] for c in plan.tables[0].columns]
        assert fields == ["ma", "ho_ten", "cap_nhat"]
        sink_cfg = config(
            kind, "sink", url, [{"table": target_name, "dataset": "tthc.hoso"}], name="s"
        )
        with build(source) as src, build(sink_cfg) as sink:
            [stream] = src.discover()
            batches = list(src.read_stream(stream, None))
            for batch in batches:
                sink.write(Batch(target_name, batch.events, schema=stream.record_schema))
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            copy = sa.Table(target_name, sa.MetaData(), autoload_with=conn)
            rows = conn.execute(sa.select(copy).order_by(copy.c["mã"])).mappings().all()
            assert [r['họ tên"; --'] for r in rows] == ["Võ Thị Sáu", "Lý Tự Trọng"]
            assert sa.inspect(conn).has_table(source_name)
        engine.dispose()
    finally:
        drop_tables(url, [source_name, target_name])


def test_wrong_credentials(offline_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGSP_TEST_WRONG_PW", "not-the-password")
    cases = [
        ("postgresql", "postgresql+psycopg://lgsp_no_such_role@127.0.0.1:5432/test"),
        ("mariadb", "mysql+pymysql://root:${LGSP_TEST_WRONG_PW}@127.0.0.1:3306/test"),
        ("mariadb", "mysql+pymysql://lgsp_no_such_user@127.0.0.1:3306/test"),
    ]
    for kind, url in cases:
        data = config(kind, "source", url, [{"table": "t", "dataset": "tthc.x"}])
        error = _register_fails(offline_settings, data, AuthenticationError)
        assert isinstance(error, ConfigurationError)
        assert "refused the credentials" in str(error)
        assert "not-the-password" not in str(error)


def test_unknown_database(offline_settings: Settings) -> None:
    for kind, url in (
        ("postgresql", "postgresql+psycopg://postgres@127.0.0.1:5432/lgsp_no_such_db"),
        ("mariadb", "mysql+pymysql://root@127.0.0.1:3306/lgsp_no_such_db"),
    ):
        data = config(kind, "source", url, [{"table": "t", "dataset": "tthc.x"}])
        error = _register_fails(offline_settings, data, NotFoundError)
        assert "lgsp_no_such_db" in str(error)


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("postgresql", "postgresql+psycopg://postgres@127.0.0.1:1/test"),
        ("mariadb", "mysql+pymysql://root@127.0.0.1:1/test"),
    ],
)
def test_unreachable_host_within_the_timeout(
    kind: str, url: str, offline_settings: Settings
) -> None:
    data = config(kind, "source", url, [{"table": "t", "dataset": "tthc.x"}])
    started = time.monotonic()
    error = _register_fails(offline_settings, data, ConnectorUnavailableError)
    assert time.monotonic() - started < 3 + 2
    assert isinstance(error, RetriableError)
    assert "cannot reach 127.0.0.1:1 within 3 s" in str(error)


def test_sqlite_source_file_must_exist(offline_settings: Settings, tmp_path: Path) -> None:
    data = config(
        "sqlite", "source", f"sqlite:///{tmp_path}/none.db", [{"table": "t", "dataset": "a.b"}]
    )
    error = _register_fails(offline_settings, data, ConnectorConfigError)
    assert "does not exist" in str(error)
    assert not (tmp_path / "none.db").exists()


def test_url_of_another_dialect(offline_settings: Settings) -> None:
    data = config("postgresql", "source", MYSQL_URL, [{"table": "t", "dataset": "a.b"}])
    error = _register_fails(offline_settings, data, ConnectorConfigError)
    assert "expects a postgresql URL, got 'mysql'" in str(error)


def test_a_second_publisher_for_a_topic_is_refused(
    offline_settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/one.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
    engine.dispose()
    first = config("sqlite", "source", url, [{"table": "t", "dataset": "tthc.one"}], name="one")
    register(offline_settings, first)
    second = {**first, "name": "two"}
    with pytest.raises(ConnectorConfigError, match="already published by connector 'one'"):
        register(offline_settings, second)
    assert [c.name for c in ConnectorStore(offline_settings).list()] == ["one"]
    stored = ConnectorStore(offline_settings).get("one")
    assert json.dumps(stored.config)  # stored as plain JSON
