"""A sink target that disappears after the sink's first run stops the table (clear message,
offsets kept) instead of being created again empty; a record schema that refers to a named
record again (a recursive record) is stored as JSON text, like any nested record, instead of
failing every row with a bare driver error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus import sync
from bus.config import Settings
from bus.connector_service.registration import register
from conftest import MYSQL_URL, PG_URL
from connectors.base import Batch
from connectors.plugins import build
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config, sqlite_codes

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("url", [PG_URL, MYSQL_URL], ids=["postgresql", "mariadb"])
def test_a_target_dropped_after_the_first_run_stops_the_table(
    settings: Settings, tmp_path: Path, unique: str, url: str
) -> None:
    src = sqlite_codes(tmp_path / "src.db", {"ma": ["A1", "B2", "C3"]})
    target, dataset = f"gone_dst_{unique}", f"kho.g{unique}"
    kind = "postgresql" if url == PG_URL else "mariadb"
    try:
        register(settings, config("sqlite", "source", src, [{"table": "ma", "dataset": dataset}]))
        register(
            settings, config(kind, "sink", url, [{"table": target, "dataset": dataset}], name="d")
        )
        sync.run(settings, "test-connector")
        assert sync.run(settings, "d").rows == 3
        drop_tables(url, [target])
        engine = sa.create_engine(src)
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO ma (id, code) VALUES (4, 'D4')"))
        engine.dispose()
        sync.run(settings, "test-connector")
        report = sync.run(settings, "d")
        [table] = report.tables
        assert (report.status, table.status, report.rows) == ("partial", "stopped", 0)
        assert "the target table is gone after the sink's first run" in str(table.error)
        assert not sa.inspect(sa.create_engine(url)).has_table(target)  # not created again
        again = sync.run(settings, "d")  # still stopped: the offsets did not move
        assert again.tables[0].status == "stopped"
    finally:
        drop_tables(url, [target])


RECURSIVE: dict[str, Any] = {
    "type": "record",
    "name": "Node",
    "namespace": "kho",
    "primary_key": ["id"],
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "next", "type": ["null", "kho.Node"], "default": None},
    ],
}


@pytest.mark.parametrize("url", [PG_URL, MYSQL_URL], ids=["postgresql", "mariadb"])
def test_a_recursive_record_is_stored_as_json_text(url: str, unique: str) -> None:
    target = f"rec_dst_{unique}"
    kind = "postgresql" if url == PG_URL else "mariadb"
    connector = build(config(kind, "sink", url, [{"table": target, "dataset": "kho.node"}]))
    chain = {"id": 2, "next": {"id": 3, "next": None}}
    events = [
        {
            "event_id": f"e{i}",
            "op": "u",
            "ts_ms": 1000,
            "source": {},
            "key": f'{{"id":{i}}}',
            "before": None,
            "after": {"id": i, "next": nxt},
        }
        for i, nxt in ((1, chain), (5, None))
    ]
    try:
        connector.prepare(target, RECURSIVE)
        report = connector.write(Batch(target, events))
        assert (report.applied, report.rejected) == (2, [])
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            t = sa.Table(target, sa.MetaData(), autoload_with=conn)
            stored = dict(conn.execute(sa.select(t.c.id, t.c.next)).all())
        engine.dispose()
        assert stored == {1: json.dumps(chain, sort_keys=True, separators=(",", ":")), 5: None}
    finally:
        connector.close()
        drop_tables(url, [target])
