"""Refused rows go to the DLQ and the rest is applied; the HTTP connector through the broker."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.dlq_ops import list_dead_letters
from bus.sync import run
from conftest import MYSQL_URL
from connectors.registration import register
from tests.integration.connectors.helpers import config, drop_tables

pytestmark = pytest.mark.integration


def _sqlite_source(path: Path, rows: list[tuple[int, str]]) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ma (id INTEGER PRIMARY KEY, code TEXT NOT NULL)"))
        conn.execute(
            sa.text("INSERT INTO ma (id, code) VALUES (:id, :code)"),
            [{"id": i, "code": c} for i, c in rows],
        )
    engine.dispose()
    return url


def test_rows_the_sink_refuses_go_to_the_dlq(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    url = _sqlite_source(tmp_path / "src.db", [(1, "A1"), (2, "much-too-long"), (3, "C3")])
    target = f"dlq_dst_{unique}"
    engine = sa.create_engine(MYSQL_URL)
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
            config("mariadb", "sink", MYSQL_URL, [{"table": target, "dataset": dataset}], name="d"),
        )
        run(settings, "s")
        report = run(settings, "d")
        assert (report.rows, report.dlq) == (2, 1)
        engine = sa.create_engine(MYSQL_URL)
        with engine.connect() as conn:
            table = sa.Table(target, sa.MetaData(), autoload_with=conn)
            codes = conn.execute(sa.select(table.c.code).order_by(table.c.id)).scalars().all()
            columns = [c.name for c in table.columns]
        engine.dispose()
        assert codes == ["A1", "C3"]
        assert columns[-3:] == ["_lgsp_ts_ms", "_lgsp_event_id", "_lgsp_deleted"]  # added
        topic = ConnectorStore(settings).get("s").topics["ma"]
        [parked] = list_dead_letters(settings, topic)
        assert parked.stage == "sink" and parked.error_class == "RowRejectedError"
        assert "much-too-long" not in parked.error  # the value is never in the reason
        assert run(settings, "d").rows == 0  # the offsets moved past the parked row
    finally:
        drop_tables(MYSQL_URL, [target])


class _Receiver:
    def __init__(self) -> None:
        self.posted: list[dict[str, Any]] = []
        self.reject: set[str] = set()
        self.items: list[dict[str, Any]] = []


@pytest.fixture
def receiver() -> Iterator[tuple[_Receiver, str]]:
    state = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"data": state.items})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            events = body if isinstance(body, list) else [body]
            if any(json.loads(e["key"])["id"] in state.reject for e in events):
                self._send(422, {"error": "refused"})
                return
            state.posted.extend(events)
            self._send(202, {})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_sql_source_to_http_sink(
    settings: Settings, tmp_path: Path, unique: str, receiver: tuple[_Receiver, str]
) -> None:
    state, base = receiver
    state.reject = {2}
    url = _sqlite_source(tmp_path / "src.db", [(1, "A"), (2, "B"), (3, "C")])
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
