"""Refused rows go to the DLQ and the rest is applied; the HTTP connector through the broker."""

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
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config, sqlite_codes
from tests.unit.connectors.http_server import JsonHandler, serve

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("kind", "sink_url"), [("mariadb", MYSQL_URL), ("postgresql", PG_URL)], ids=["mariadb", "pg"]
)
def test_rows_the_sink_refuses_go_to_the_dlq(
    settings: Settings, tmp_path: Path, unique: str, kind: str, sink_url: str
) -> None:
    """On PostgreSQL the batch goes through the COPY path; the refused row is found all the
    same."""
    url = sqlite_codes(tmp_path / "src.db", {"ma": ["A1", "much-too-long", "C3"]})
    target = f"dlq_dst_{unique}"
    engine = sa.create_engine(sink_url)
    with engine.begin() as conn:  # an existing target whose column is too short for one row
        sa.Table(
            target,
            sa.MetaData(),
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("code", sa.String(5)),
        ).create(conn)
    engine.dispose()
    dataset = f"kho.d{unique}"
    try:
        register(
            settings,
            config("sqlite", "source", url, [{"table": "ma", "dataset": dataset}], name="s"),
        )
        register(
            settings,
            config(kind, "sink", sink_url, [{"table": target, "dataset": dataset}], name="d"),
        )
        run(settings, "s")
        report = run(settings, "d")
        assert (report.rows, report.dlq) == (2, 1)
        engine = sa.create_engine(sink_url)
        with engine.connect() as conn:
            table = sa.Table(target, sa.MetaData(), autoload_with=conn)
            codes = conn.execute(sa.select(table.c.code).order_by(table.c.id)).scalars().all()
            columns = [c.name for c in table.columns]
        engine.dispose()
        assert codes == ["A1", "C3"]
        assert columns[-4:] == ["_lgsp_ts_ms", "_lgsp_event_id", "_lgsp_deleted", "_lgsp_unit"]
        topic = ConnectorStore(settings).get("s").topics["ma"]
        [parked] = list_dead_letters(settings, topic)
        assert parked.stage == "sink" and parked.error_class == "RowRejectedError"
        assert "much-too-long" not in parked.error  # the value is never in the reason
        assert run(settings, "d").rows == 0  # the offsets moved past the parked row
    finally:
        drop_tables(sink_url, [target])


class _Receiver:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.reject: set[str] = set()
        self.items: list[Any] = []


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, str]]:
    state = _Receiver()

    class Handler(JsonHandler):
        def do_GET(self) -> None:
            self.answer(200, {"data": state.items})

        def do_POST(self) -> None:
            body = self.read_json()
            events = body if isinstance(body, list) else [body]
            if any(json.loads(e["key"])["id"] in state.reject for e in events):
                self.answer(422, {"error": "refused"})
                return
            state.posted.extend(events)
            self.answer(202, {})

    with serve(Handler) as url:
        yield state, url


def test_sql_source_to_http_sink(
    settings: Settings, tmp_path: Path, unique: str, receiver: tuple[_Receiver, str]
) -> None:
    state, base = receiver
    state.reject = {2}
    url = sqlite_codes(tmp_path / "src.db", {"ma": ["A", "B", "C"]})
    dataset = f"kho.h{unique}"
    register(settings, config("sqlite", "source", url, [{"table": "ma", "dataset": dataset}]))
    sink = config(
        "http",
        "sink",
        base,
        [{"table": "partner", "dataset": dataset, "path": "events"}],
        name="web",
    )
    sink["connection"] = {"url": base, "retries": 0}
    register(settings, sink)
    run(settings, "test-connector")
    report = run(settings, "web")
    assert (report.rows, report.dlq) == (2, 1)
    assert sorted(json.loads(e["key"])["id"] for e in state.posted) == [1, 3]
    assert {e["after"]["code"] for e in state.posted} == {"A", "C"}


def test_http_source_to_sql_sink(
    settings: Settings, tmp_path: Path, unique: str, receiver: tuple[_Receiver, str]
) -> None:
    state, base = receiver
    state.items = [
        {"id": 1, "title": "Đèn đường hỏng", "updated_at": "2025-07-01T08:00:00+07:00"},
        {"id": 2, "title": "Rác thải", "updated_at": "2025-07-01T09:00:00+07:00"},
    ]
    schema = _report_schema(tmp_path)
    dataset = f"phananh.h{unique}"
    source = config(
        "http",
        "source",
        base,
        [
            {
                "table": "reports",
                "dataset": dataset,
                "schema": str(schema),
                "cursor": "updated_at",
                "records_path": "data",
            }
        ],
        name="api",
    )
    source["connection"] = {"url": base}
    register(settings, source)
    target = f"sqlite:///{tmp_path}/dst.db"
    register(settings, config("sqlite", "sink", target, [{"table": "copy", "dataset": dataset}]))
    assert run(settings, "api").rows == 2
    assert run(settings, "api").rows == 0  # the position holds
    assert run(settings, "test-connector").rows == 2
    engine = sa.create_engine(target)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id, title FROM copy ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, "Đèn đường hỏng"), (2, "Rác thải")]


def _report_schema(tmp_path: Path) -> Path:
    schema = tmp_path / "kit.Report.avsc"
    schema.write_text(
        json.dumps(
            {
                "type": "record",
                "name": "Report",
                "namespace": "kit",
                "primary_key": ["id"],
                "fields": [
                    {"name": "id", "type": "long"},
                    {"name": "title", "type": "string"},
                    {
                        "name": "updated_at",
                        "type": {"type": "long", "logicalType": "timestamp-millis"},
                    },
                ],
            }
        ),
        encoding="utf-8",
    )
    return schema


def test_an_http_record_that_is_not_an_object_is_parked_and_the_run_goes_on(
    settings: Settings, tmp_path: Path, unique: str, receiver: tuple[_Receiver, str]
) -> None:
    state, base = receiver
    state.items = [
        {"id": 1, "title": "Đèn đường hỏng", "updated_at": "2025-07-01T08:00:00+07:00"},
        "079203004512",
        {"id": 2, "title": "Rác thải", "updated_at": "2025-07-01T09:00:00+07:00"},
    ]
    tables = [
        {
            "table": "reports",
            "dataset": f"phananh.o{unique}",
            "schema": str(_report_schema(tmp_path)),
            "cursor": "updated_at",
            "records_path": "data",
        }
    ]
    source = config("http", "source", base, tables, name="api")
    source["connection"] = {"url": base}
    register(settings, source)
    report = run(settings, "api")
    assert (report.status, report.rows, report.dlq) == ("ok", 3, 1)
    topic = ConnectorStore(settings).get("api").topics["reports"]
    [parked] = list_dead_letters(settings, topic)
    assert parked.stage == "source" and parked.error_class == "DataError"
    assert "JSON string, not an object" in parked.error and "079203004512" not in parked.error
