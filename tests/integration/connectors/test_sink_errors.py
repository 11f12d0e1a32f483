"""A sink whose target refuses the statement (permission, a dropped column) or every row stops
the table with a clear error, parks nothing and keeps its offsets; a bad row among good ones
is parked alone (``test_dlq_and_http``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.dlq_ops import list_dead_letters
from bus.sync import run
from conftest import MYSQL_URL, PG_URL
from connectors.base import Batch
from connectors.errors import TableStoppedError
from connectors.plugins import build
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config, sqlite_codes

pytestmark = pytest.mark.integration


def _target(url: str, name: str, width: int = 20) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        sa.Table(
            name,
            sa.MetaData(),
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("code", sa.String(width)),
            sa.Column("_lgsp_ts_ms", sa.BigInteger),
            sa.Column("_lgsp_event_id", sa.String(64)),
            sa.Column("_lgsp_deleted", sa.Boolean),
            sa.Column("_lgsp_unit", sa.String(16)),
        ).create(conn)
    engine.dispose()


def _codes(url: str, name: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        table = sa.Table(name, sa.MetaData(), autoload_with=conn)
        out = list(conn.execute(sa.select(table.c.code).order_by(table.c.id)).scalars())
    engine.dispose()
    return out


@pytest.fixture
def pg_role(unique: str) -> Iterator[str]:
    """A login role of the test PostgreSQL (trust authentication) with no grant yet."""
    role = f"lgsp_ro_{unique}"
    engine = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        yield role
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        engine.dispose()


def test_permission_denied_stops_the_table_parks_nothing_and_keeps_the_offsets(
    settings: Settings, tmp_path: Path, unique: str, pg_role: str
) -> None:
    target = f"perm_dst_{unique}"
    _target(PG_URL, target)
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'GRANT SELECT ON "{target}" TO "{pg_role}"'))
    url = sqlite_codes(tmp_path / "src.db", {"ma": ["A1", "B2", "C3"]})
    dataset = f"kho.p{unique}"
    sink_url = sa.engine.make_url(PG_URL).set(username=pg_role).render_as_string(False)
    try:
        register(settings, config("sqlite", "source", url, [{"table": "ma", "dataset": dataset}]))
        tables = [{"table": target, "dataset": dataset}]
        register(settings, config("postgresql", "sink", sink_url, tables, name="d"))
        run(settings, "test-connector")
        report = run(settings, "d")
        [table] = report.tables
        assert (report.status, table.status) == ("partial", "stopped")
        assert (report.rows, report.dlq) == (0, 0)
        assert "SQLSTATE 42501" in str(table.error) and "permission denied" in str(table.error)
        topic = ConnectorStore(settings).get("d").topics[target]
        assert list_dead_letters(settings, topic) == []
        with engine.begin() as conn:  # the DBA grants the write: the same rows are applied
            conn.execute(sa.text(f'GRANT INSERT, UPDATE, DELETE ON "{target}" TO "{pg_role}"'))
        again = run(settings, "d")
        assert (again.status, again.rows, again.dlq) == ("ok", 3, 0)
        assert _codes(PG_URL, target) == ["A1", "B2", "C3"]
    finally:
        engine.dispose()
        drop_tables(PG_URL, [target])


@pytest.mark.parametrize(
    ("kind", "sink_url"), [("mariadb", MYSQL_URL), ("postgresql", PG_URL)], ids=["mariadb", "pg"]
)
def test_a_batch_whose_every_row_is_refused_stops_instead_of_parking_the_topic(
    settings: Settings, tmp_path: Path, unique: str, kind: str, sink_url: str
) -> None:
    target = f"narrow_dst_{unique}"
    _target(sink_url, target, width=2)  # every code is longer than the column
    url = sqlite_codes(tmp_path / "src.db", {"ma": ["AAA", "BBB", "CCC", "DDD"]})
    dataset = f"kho.n{unique}"
    try:
        register(settings, config("sqlite", "source", url, [{"table": "ma", "dataset": dataset}]))
        tables = [{"table": target, "dataset": dataset}]
        register(settings, config(kind, "sink", sink_url, tables, name="d"))
        run(settings, "test-connector")
        report = run(settings, "d")
        [table] = report.tables
        assert (table.status, report.rows, report.dlq) == ("stopped", 0, 0)
        assert "refused every row of a batch of 4" in str(table.error)
        assert "AAA" not in str(table.error)
        topic = ConnectorStore(settings).get("d").topics[target]
        assert list_dead_letters(settings, topic) == []
        assert _codes(sink_url, target) == []
    finally:
        drop_tables(sink_url, [target])


RECORD: dict[str, Any] = {
    "type": "record",
    "name": "Code",
    "namespace": "kho",
    "primary_key": ["id"],
    "fields": [{"name": "id", "type": "long"}, {"name": "code", "type": "string"}],
}


def _event(i: int) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "op": "u",
        "ts_ms": 1000,
        "source": {},
        "key": json.dumps({"id": i}),
        "before": None,
        "after": {"id": i, "code": f"C{i}"},
    }


@pytest.mark.parametrize(
    ("kind", "url", "code"),
    [("postgresql", PG_URL, "SQLSTATE 42703"), ("mariadb", MYSQL_URL, "MySQL 1054")],
)
def test_a_dropped_column_stops_the_table(kind: str, url: str, code: str, unique: str) -> None:
    target = f"drop_dst_{unique}"
    _target(url, target)
    connector = build(config(kind, "sink", url, [{"table": target, "dataset": "kho.code"}]))
    try:
        connector.prepare(target, RECORD)
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            quoted = engine.dialect.identifier_preparer.quote(target)
            conn.execute(sa.text(f"ALTER TABLE {quoted} DROP COLUMN code"))
        engine.dispose()
        with pytest.raises(TableStoppedError, match="a column does not exist") as caught:
            connector.write(Batch(target, [_event(1), _event(2)]))
        assert code in str(caught.value) and "C1" not in str(caught.value)
    finally:
        connector.close()
        drop_tables(url, [target])
