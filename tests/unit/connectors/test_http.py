"""The HTTP connector against a real local HTTP server (http.server in a thread)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bus.errors import NotFoundError, RetriableError
from connectors.base import Batch, Connector
from connectors.errors import (
    AuthenticationError,
    ConnectorConfigError,
    EndpointUnavailableError,
    HttpClientError,
)
from connectors.plugins import build
from tests.unit.connectors.http_server import JsonHandler, serve

STAMP = "2025-07-01T08:00:00+07:00"


class Api:
    """The server's state: records, scripted failures, and what it received."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.fail_next = 0
        self.fail_status = 503
        self.status: int | None = None
        self.delay_s = 0.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.posted: list[Any] = []
        self.reject_ids: set[str] = set()
        self.raw: list[Any] = []


def _handler(api: Api) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def _scripted(self) -> bool:
            api.requests.append((self.command, self.path, dict(self.headers)))
            if api.delay_s:
                time.sleep(api.delay_s)
            if api.fail_next > 0:
                api.fail_next -= 1
                self.answer(api.fail_status, {"error": "try later"})
                return True
            if api.status is not None:
                self.answer(api.status, {"error": "no"})
                return True
            return False

        def do_GET(self) -> None:
            if self._scripted():
                return
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            rows = sorted(api.records, key=lambda r: (r["updated_at"], r["id"]))
            if "since" in query:
                rows = [r for r in rows if r["updated_at"] >= query["since"]]
            limit = int(query.get("limit", 1000))
            if url.path == "/linked":
                start = int(query.get("page", 0))
                page = rows[start : start + limit]
                more = start + limit < len(rows)
                nxt = f"http://{self.headers['Host']}/linked?page={start + limit}&limit={limit}"
                if "since" in query:
                    nxt += f"&since={query['since']}"
                self.answer(200, {"data": page, "links": {"next": nxt if more else None}})
            elif url.path == "/offset":
                start = int(query.get("offset", 0))
                self.answer(200, rows[start : start + limit])
            elif url.path == "/cursor":
                self.answer(200, {"items": rows[:limit]})
            elif url.path == "/raw":  # records as they are, objects or not
                self.answer(200, api.raw)
            else:
                self.answer(404, {"error": "no such endpoint"})

        def do_POST(self) -> None:
            if self._scripted():
                return
            body = self.read_json()
            events = body if isinstance(body, list) else [body]
            if any(e.get("event_id") in api.reject_ids for e in events):
                self.answer(422, {"error": "rejected"})
                return
            api.posted.append(body)
            self.answer(202, {"accepted": len(events)})

    return Handler


@pytest.fixture
def api() -> Iterator[tuple[Api, str]]:
    state = Api()
    with serve(_handler(state)) as url:
        yield state, url


@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "kit.Report.avsc"
    path.write_text(
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
                    {"name": "deleted", "type": ["null", "boolean"], "default": None},
                ],
            }
        ),
        encoding="utf-8",
    )
    return path


def records(first: int, count: int, stamp: str = STAMP) -> list[dict[str, Any]]:
    return [
        {"id": i, "title": f"Phản ánh số {i}", "updated_at": stamp, "extra": "ignored"}
        for i in range(first, first + count)
    ]


def source(url: str, schema: Path, **table: Any) -> Connector:
    connection = table.pop("connection", {})
    return build(
        {
            "name": "api-source",
            "type": "http",
            "role": "source",
            "agency": "ubnd-phuong-ben-nghe",
            "unit": "26740",
            "batch_size": table.pop("batch_size", 2),
            "connection": {"url": url, "retries": 2, "backoff_s": 0.01, **connection},
            "tables": [
                {
                    "table": "reports",
                    "dataset": "phananh.report",
                    "schema": str(schema),
                    **table,
                }
            ],
        }
    )


def read_all(connector: Connector, position: dict[str, Any] | None = None) -> list[Batch]:
    [stream] = connector.discover()
    return list(connector.read_stream(stream, position))


def ids(batches: list[Batch]) -> list[int]:
    return [e["after"]["id"] for b in batches for e in b.events]


def test_incremental_with_next_links_keeps_ties(api: tuple[Api, str], schema_file: Path) -> None:
    state, url = api
    state.records = records(1, 7)  # seven records share one cursor value
    src = source(
        url,
        schema_file,
        path="linked",
        cursor="updated_at",
        cursor_param="since",
        records_path="data",
        next_path="links.next",
        page_size=3,
    )
    first = read_all(src)
    assert ids(first) == [1, 2, 3, 4, 5, 6, 7]
    assert [len(b.events) for b in first] == [2, 2, 2, 1]
    event = first[0].events[0]
    assert event["op"] == "r" and event["key"] == '{"id":1}'
    assert event["source"]["agency"] == "ubnd-phuong-ben-nghe"
    assert "extra" not in event["after"]
    # stopped after the second batch: the rest comes once, nothing repeated
    assert ids(read_all(src, first[1].state)) == [5, 6, 7]
    # new records with the same cursor value as the position are not skipped
    state.records += records(8, 2)
    later = read_all(src, first[-1].state)
    assert ids(later) == [8, 9] and {e["op"] for b in later for e in b.events} == {"u"}
    assert read_all(src, later[-1].state) == []
    since = [parse_qs(urlsplit(p).query).get("since") for _, p, _ in state.requests]
    assert ["2025-07-01T01:00:00+00:00"] in since  # asked from the last cursor value on


def test_snapshot_with_offset_paging(api: tuple[Api, str], schema_file: Path) -> None:
    state, url = api
    state.records = records(1, 5)
    src = source(url, schema_file, path="offset", offset_param="offset", page_size=2)
    batches = read_all(src)
    assert ids(batches) == [1, 2, 3, 4, 5]
    assert {e["op"] for b in batches for e in b.events} == {"r"}
    assert batches[-1].state is not None and batches[-1].state["done"] is True
    offsets = [parse_qs(urlsplit(p).query)["offset"][0] for _, p, _ in state.requests]
    assert offsets == ["0", "2", "4"]


def test_cursor_paging(api: tuple[Api, str], schema_file: Path) -> None:
    state, url = api
    state.records = [
        {**r, "updated_at": f"2025-07-0{r['id']}T08:00:00+00:00"} for r in records(1, 7)
    ]
    src = source(
        url,
        schema_file,
        path="cursor",
        cursor="updated_at",
        cursor_param="since",
        records_path="items",
        page_size=3,
        batch_size=10,
    )
    assert ids(read_all(src)) == [1, 2, 3, 4, 5, 6, 7]


def test_soft_delete(api: tuple[Api, str], schema_file: Path) -> None:
    state, url = api
    state.records = records(1, 2)
    state.records[1]["deleted"] = True
    src = source(url, schema_file, path="offset", deleted_flag="deleted", batch_size=10)
    [batch] = read_all(src)
    assert [e["op"] for e in batch.events] == ["r", "d"]
    assert batch.events[1]["before"]["id"] == 2 and batch.events[1]["after"] is None


def test_a_record_that_does_not_match_is_left_for_the_dlq(
    api: tuple[Api, str], schema_file: Path
) -> None:
    state, url = api
    state.records = [{"id": 1, "title": 42, "updated_at": STAMP}]
    [batch] = read_all(source(url, schema_file, path="offset"))
    assert batch.events[0]["after"]["title"] == 42  # unconverted: the publisher parks it


def test_retries_5xx_with_backoff(api: tuple[Api, str], schema_file: Path) -> None:
    state, url = api
    state.records = records(1, 1)
    state.fail_next = 2
    assert ids(read_all(source(url, schema_file, path="offset"))) == [1]
    assert len(state.requests) == 3
    state.requests.clear()
    state.fail_next = 5
    with pytest.raises(EndpointUnavailableError, match="after 3 attempt") as caught:
        read_all(source(url, schema_file, path="offset"))
    assert "HTTP 503" in str(caught.value) and isinstance(caught.value, RetriableError)
    assert len(state.requests) == 3


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, HttpClientError), (422, HttpClientError), (401, AuthenticationError)],
)
def test_no_retry_on_4xx(
    api: tuple[Api, str], schema_file: Path, status: int, error: type[Exception]
) -> None:
    state, url = api
    state.status = status
    with pytest.raises(error, match=f"HTTP {status}"):
        read_all(source(url, schema_file, path="offset"))
    assert len(state.requests) == 1


def test_unknown_endpoint(api: tuple[Api, str], schema_file: Path) -> None:
    _, url = api
    with pytest.raises(NotFoundError, match="no such endpoint"):
        source(url, schema_file, path="nowhere").check()


def test_timeout_is_retried_then_reported(api: tuple[Api, str], schema_file: Path) -> None:
    state, url = api
    state.delay_s = 0.6
    src = source(url, schema_file, path="offset", connection={"timeout_s": 0.2, "retries": 1})
    with pytest.raises(EndpointUnavailableError, match=r"no answer within 0\.2 s"):
        src.check()
    assert len(state.requests) == 2  # the first call and one retry, each cut by the timeout


def test_unreachable_host(schema_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    src = source(f"http://127.0.0.1:{port}", schema_file, connection={"retries": 2})
    with (
        caplog.at_level(logging.WARNING, logger="connectors.http.connector"),
        pytest.raises(EndpointUnavailableError, match=r"after 3 attempt\(s\) \(connection refused"),
    ):
        src.check()
    retries = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert len(retries) == 2 and all("connection refused or unreachable" in m for m in retries)


def test_a_record_that_is_not_an_object_is_left_for_the_dlq(
    api: tuple[Api, str], schema_file: Path
) -> None:
    state, url = api
    state.raw = [*records(1, 1), "079203004512", 42, None, *records(2, 1)]
    [batch] = read_all(source(url, schema_file, path="raw", batch_size=10))
    assert ids([batch]) == [1, 2]
    reasons = [str(item.error) for item in batch.invalid]
    assert reasons == [
        "endpoint 'reports': a record is a JSON string, not an object",
        "endpoint 'reports': a record is a JSON number, not an object",
        "endpoint 'reports': a record is a JSON null, not an object",
    ]
    assert [item.event["after"] for item in batch.invalid] == ["079203004512", 42, None]
    assert batch.invalid[0].event["source"]["connector"] == "api-source"


def test_request_parameters_resolve_their_references(
    api: tuple[Api, str], schema_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = api
    monkeypatch.setenv("LGSP_TEST_API_KEY", "k3y")
    src = source(url, schema_file, path="offset", params={"api_key": "${LGSP_TEST_API_KEY}"})
    read_all(src)
    assert parse_qs(urlsplit(state.requests[0][1]).query)["api_key"] == ["k3y"]


def test_token_is_a_reference(
    api: tuple[Api, str], schema_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, url = api
    monkeypatch.setenv("LGSP_TEST_TOKEN", "t0ken")
    src = source(url, schema_file, path="offset", connection={"token": "${LGSP_TEST_TOKEN}"})
    src.check()
    assert state.requests[0][2]["Authorization"] == "Bearer t0ken"
    with pytest.raises(ConnectorConfigError) as caught:
        source(url, schema_file, connection={"token": "t0ken"})
    assert caught.value.errors[0].startswith("connection.token: ")
    assert "t0ken" not in str(caught.value)


def test_bad_configs(schema_file: Path) -> None:
    with pytest.raises(ConnectorConfigError) as caught:
        source("ftp://x", schema_file, page_size=0)
    errors = caught.value.errors
    assert [e.split(":")[0] for e in errors] == ["connection.url", "tables[0].page_size"]
    with pytest.raises(ConnectorConfigError, match=r"tables\[0\].offset_param: use either"):
        source("http://x", schema_file, next_path="a", offset_param="o")
    src = source("http://127.0.0.1:1", schema_file, cursor="missing_field")
    with pytest.raises(ConnectorConfigError, match="cursor: field 'missing_field'"):
        src.discover()
    src = source("http://127.0.0.1:1", schema_file, cursor="title")
    with pytest.raises(ConnectorConfigError, match="cannot order"):
        src.discover()


def sink(url: str, **table: Any) -> Connector:
    return build(
        {
            "name": "api-sink",
            "type": "http",
            "role": "sink",
            "agency": "cong-an-tp",
            "unit": "79",
            "connection": {"url": url, "retries": 1, "backoff_s": 0.01},
            "tables": [{"table": "events", "dataset": "dancu.resident", "path": "post", **table}],
        }
    )


def sample_events(n: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"e{i}",
            "op": "u",
            "ts_ms": 1000 + i,
            "source": {"agency": "a", "unit": "79", "system": "s"},
            "key": json.dumps({"id": i}),
            "before": None,
            "after": {"id": i, "full_name": "Lê Thị Hoa"},
        }
        for i in range(n)
    ]


def test_sink_posts_batches_with_an_idempotency_key(api: tuple[Api, str]) -> None:
    state, url = api
    report = sink(url).write(Batch("events", sample_events(3)))
    assert report.applied == 3 and not report.rejected
    assert len(state.posted) == 1 and [e["event_id"] for e in state.posted[0]] == ["e0", "e1", "e2"]
    key = state.requests[-1][2]["Idempotency-Key"]
    sink(url).write(Batch("events", sample_events(3)))
    assert state.requests[-1][2]["Idempotency-Key"] == key  # the same batch, the same key


def test_sink_isolates_refused_events(api: tuple[Api, str]) -> None:
    state, url = api
    state.reject_ids = {"e1"}
    report = sink(url).write(Batch("events", sample_events(3)))
    assert report.applied == 2
    assert [r.index for r in report.rejected] == [1]
    assert "HTTP 422" in str(report.rejected[0].error)
    single = sink(url, batch=False).write(Batch("events", sample_events(3)))
    assert single.applied == 2 and [r.index for r in single.rejected] == [1]


def test_sink_stops_on_refused_credentials(api: tuple[Api, str]) -> None:
    state, url = api
    state.status = 403
    with pytest.raises(AuthenticationError):
        sink(url).write(Batch("events", sample_events(1)))
    assert len(state.requests) == 1
