"""The HTTP connector (requests) for systems that only offer a REST API.

Source: polls a JSON endpoint page by page (``next_path`` links or tokens, ``offset_param``,
or cursor paging with ``cursor_param``), converts each record with the table's Avro schema,
and keeps a (cursor, key) position: the endpoint is asked for records from the last cursor
value on (inclusive) and records at or before the position are dropped, so ties are neither
lost nor repeated. The endpoint must return records in ascending cursor order. A record that
is not a JSON object comes back in ``Batch.invalid`` (parked in the DLQ before the position
moves), and the read goes on.

Sink: posts events as JSON (a list per batch, or one per request) with an
``Idempotency-Key`` header; the receiver deduplicates by ``event_id``.

Every request has a timeout; 5xx answers, timeouts and refused connections are retried with
exponential backoff; 4xx answers are not retried.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from bus.envelope import load_record_schema, stable_event_id, to_jsonable
from bus.errors import DataError, LgspError, NotFoundError
from bus.serde.jsoncodec import JsonToAvro
from connectors import positions
from connectors.base import (
    Batch,
    Column,
    Connector,
    Invalid,
    Rejected,
    Stream,
    WriteReport,
    now_ms,
)
from connectors.errors import (
    AuthenticationError,
    ColumnNotFoundError,
    ConnectorConfigError,
    CursorTypeError,
    EndpointUnavailableError,
    FieldError,
    HttpClientError,
    RowRejectedError,
)
from connectors.http.config import HttpConnectorConfig, HttpTable
from connectors.secrets import resolve
from connectors.soft_delete import is_deleted
from connectors.sql.typemap import unwrap
from connectors.sql.types import ts_ms

log = logging.getLogger(__name__)

_ORDERABLE = {"int", "long"}
_ORDERABLE_LOGICAL = {
    "decimal",
    "date",
    "timestamp-millis",
    "timestamp-micros",
    "local-timestamp-millis",
    "local-timestamp-micros",
}


def dig(body: Any, path: str | None) -> Any:
    """The value at a dotted path of a JSON body (``data.items``); None when absent."""
    if not path:
        return body
    for part in path.split("."):
        if not isinstance(body, dict):
            return None
        body = body.get(part)
    return body


def _orderable(avro_type: Any) -> bool:
    branch, _ = unwrap(avro_type)
    if isinstance(branch, dict):
        return branch.get("logicalType") in _ORDERABLE_LOGICAL or (
            branch.get("type") in _ORDERABLE and not branch.get("logicalType")
        )
    return branch in _ORDERABLE


class HttpConnector(Connector):
    """A JSON API as a source (polling with paging and a cursor) or a sink (posting events)."""

    type_name = "http"
    config_model = HttpConnectorConfig
    can_source = True
    can_sink = True
    supports_incremental = True
    supports_soft_delete = True
    supports_upsert = False
    streams_rows = True

    config: HttpConnectorConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._session: requests.Session | None = None
        self._schemas: dict[str, dict[str, Any]] = {}

    @classmethod
    def normalize(cls, data: dict[str, Any], base_dir: Path) -> dict[str, Any]:
        """Schema files named relative to the connector file are stored absolute."""
        tables = data.get("tables")
        if not isinstance(tables, list):
            return data
        out = []
        for t in tables:
            if isinstance(t, dict) and isinstance(t.get("schema"), str):
                path = Path(t["schema"]).expanduser()
                if not path.is_absolute():
                    t = {**t, "schema": str((base_dir / path).resolve())}
            out.append(t)
        return {**data, "tables": out}

    # ---- requests ------------------------------------------------------------------------
    @property
    def session(self) -> requests.Session:
        if self._session is None:
            session = requests.Session()
            conn = self.config.connection
            for name, value in conn.headers.items():
                session.headers[name] = resolve(value, f"connection.headers.{name}")
            if conn.token is not None:
                token = resolve(conn.token.get_secret_value(), "connection.token")
                session.headers["Authorization"] = f"Bearer {token}"
            session.headers.setdefault("Accept", "application/json")
            session.verify = conn.verify_tls
            self._session = session
        return self._session

    def close(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None

    def endpoint(self, table: HttpTable) -> str:
        base = resolve(self.config.connection.url, "connection.url")
        path = table.path.strip()
        if not path:
            return base
        return f"{base}/{path.lstrip('/')}"

    def params(self, table: HttpTable) -> dict[str, Any]:
        """The table's request parameters with their ``${ENV}`` references resolved."""
        where = f"tables[{self.config.tables.index(table)}].params"
        return {name: resolve(value, f"{where}.{name}") for name, value in table.params.items()}

    @staticmethod
    def display(url: str) -> str:
        """A URL without its query string and user info (they may carry secrets)."""
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """One call with timeout; 5xx and transport errors retried with backoff, 4xx not."""
        conn = self.config.connection
        attempts = conn.retries + 1
        reason = ""
        for attempt in range(attempts):
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    headers=headers,
                    timeout=conn.timeout_s,
                )
            except requests.Timeout:
                reason = f"no answer within {conn.timeout_s:g} s"
            except requests.ConnectionError:
                reason = "connection refused or unreachable"
            else:
                if response.status_code < 400:
                    return response
                if response.status_code < 500:
                    raise self._client_error(method, url, response)
                reason = f"HTTP {response.status_code}"
            if attempt + 1 < attempts:
                delay = min(conn.backoff_s * (2**attempt), 30.0)
                log.warning(
                    "%s %s: %s; retry %d/%d in %.1f s",
                    method,
                    self.display(url),
                    reason,
                    attempt + 1,
                    conn.retries,
                    delay,
                )
                time.sleep(delay)
        raise EndpointUnavailableError(
            f"connection.url: {method} {self.display(url)} failed after {attempts} attempt(s) "
            f"({reason})"
        )

    def _client_error(self, method: str, url: str, response: requests.Response) -> LgspError:
        code = response.status_code
        where = f"connection.url: {method} {self.display(url)} answered HTTP {code}"
        if code in (401, 403):
            return AuthenticationError(f"{where}: the API refused the credentials")
        if code == 404:
            return NotFoundError(f"{where}: no such endpoint")
        return HttpClientError(f"{where} {response.reason or ''}".rstrip(), code)

    # ---- check and discover --------------------------------------------------------------
    def check(self) -> None:
        table = self.config.tables[0]
        url = self.endpoint(table)
        if self.role == "source":
            params = self.params(table)
            if table.page_size_param:
                params[table.page_size_param] = 1
            self.request("GET", url, params=params)
            return
        try:
            self.request("GET", url)
        except (HttpClientError, NotFoundError):
            pass  # the endpoint answers; a sink's endpoint need not accept GET

    def _schema(self, table: HttpTable) -> dict[str, Any]:
        found = self._schemas.get(table.table)
        if found is None:
            assert table.schema_file is not None
            found = load_record_schema(Path(table.schema_file))
            self._schemas[table.table] = found
        return found

    def discover(self) -> list[Stream]:
        streams: list[Stream] = []
        problems: list[FieldError] = []
        causes: list[Exception] = []
        for i, table in enumerate(self.config.tables):
            try:
                streams.append(self._discover(table))
            except LgspError as exc:
                problems.append(FieldError(f"tables[{i}]", f"({table.table}) {exc}"))
                causes.append(exc)
        if problems:
            raise ConnectorConfigError(problems, name=self.name, causes=causes)
        return streams

    def discover_stream(self, table: str) -> Stream:
        return self._discover(self.table_config(table))  # type: ignore[arg-type]

    def _discover(self, table: HttpTable) -> Stream:
        if self.role == "sink":
            return Stream(table.table, table.dataset, [], list(table.key or []), {}, table)
        schema = self._schema(table)
        fields = {f["name"]: f for f in schema["fields"]}
        key = list(table.key or schema.get("primary_key") or [])
        for name, what in [(k, "key") for k in key] + [
            (table.cursor, "cursor"),
            (table.deleted_flag, "deleted_flag"),
        ]:
            if name and name not in fields:
                raise ColumnNotFoundError(
                    f"{what}: field {name!r} is not in the schema {schema.get('name')!r}"
                )
        if table.cursor and not _orderable(fields[table.cursor]["type"]):
            raise CursorTypeError(
                f"cursor: field {table.cursor!r} cannot order changes; expected an integer, "
                "decimal, date or timestamp field"
            )
        warnings = []
        if not key:
            warnings.append(f"endpoint {table.table!r} has no key: read as an append-only source")
        columns = [
            Column(
                name=n,
                field=n,
                sql_type="json",
                avro_type=unwrap(f["type"])[0],
                nullable=unwrap(f["type"])[1],
                primary_key=n in key,
            )
            for n, f in fields.items()
        ]
        if key and schema.get("primary_key") != key:
            schema = {**schema, "primary_key": key}
        return Stream(table.table, table.dataset, columns, key, schema, table, warnings)

    # ---- source --------------------------------------------------------------------------
    def read_stream(self, stream: Stream, position: dict[str, Any] | None) -> Iterator[Batch]:
        table: HttpTable = stream.config  # type: ignore[assignment]
        mode = table.effective_mode
        if position and position.get("mode") == mode and not position.get("done"):
            state = dict(position)
        elif mode == "snapshot":
            state = {"mode": "snapshot", "snapshot_ms": now_ms(), "done": False}
        else:
            state = {"mode": "incremental", "after": (position or {}).get("after")}
        after = tuple(positions.load(state["after"])) if state.get("after") is not None else None
        initial = mode == "incremental" and after is None
        convert = JsonToAvro(stream.record_schema)
        names = [f["name"] for f in stream.record_schema["fields"]]
        url = self.endpoint(table)
        params: dict[str, Any] = self.params(table)
        if table.page_size_param:
            params[table.page_size_param] = table.page_size
        if table.cursor_param and after is not None:
            params[table.cursor_param] = to_jsonable(after[0])
        offset = 0
        pending: list[dict[str, Any]] = []
        invalid: list[Invalid] = []
        while True:
            if table.offset_param:
                params[table.offset_param] = offset
            body = self.request("GET", url, params=params).json()
            records = dig(body, table.records_path)
            if not isinstance(records, list):
                raise ConnectorConfigError(
                    [
                        FieldError(
                            "records_path", f"the answer of {self.display(url)} holds no list there"
                        )
                    ],
                    name=self.name,
                )
            fresh = 0
            for raw in records:
                if not isinstance(raw, dict):  # parked (Batch.invalid), the read goes on
                    invalid.append(self._not_an_object(stream, raw, state, initial))
                else:
                    event, order = self._event(stream, table, raw, names, convert, state, initial)
                    positioned = mode == "incremental" and None not in order
                    if positioned and after is not None and order <= after:
                        continue
                    fresh += 1
                    pending.append(event)
                    if positioned:
                        after = order
                        state["after"] = positions.dump(list(order))
                if len(pending) + len(invalid) >= self.batch_size:
                    yield Batch(stream.name, pending, dict(state), stream.record_schema, invalid)
                    pending, invalid = [], []
            next_link = dig(body, table.next_path) if table.next_path else None
            if next_link:
                if table.next_param:
                    params[table.next_param] = next_link
                else:
                    url, params = str(next_link), {}
                continue
            if table.offset_param and len(records) >= table.page_size:
                offset += len(records)
                continue
            if (
                table.cursor_param
                and mode == "incremental"
                and fresh
                and len(records) >= table.page_size
            ):
                params[table.cursor_param] = to_jsonable(after[0])  # type: ignore[index]
                continue
            break
        if mode == "snapshot":
            state["done"] = True
        if pending or invalid or mode == "snapshot":
            yield Batch(stream.name, pending, dict(state), stream.record_schema, invalid)

    def _not_an_object(
        self, stream: Stream, raw: Any, state: dict[str, Any], initial: bool
    ) -> Invalid:
        """A record that is not a JSON object, as an event for the DLQ (its value in ``after``)
        with a reason naming the endpoint and the JSON type, never the value."""
        snapshot = stream.config.effective_mode == "snapshot"  # type: ignore[attr-defined]
        op = "r" if snapshot or initial else "u"
        source = self.source_block(stream)
        event = {
            "event_id": stable_event_id(self.name, stream.name, {"value": raw}, op, "invalid"),
            "op": op,
            "ts_ms": int(state.get("snapshot_ms") or now_ms()) if snapshot else now_ms(),
            "source": source,
            "key": None,
            "before": None,
            "after": raw,
        }
        kind = "null" if raw is None else type(raw).__name__
        kind = {"str": "string", "int": "number", "float": "number", "bool": "boolean"}.get(
            kind, kind
        )
        return Invalid(
            event,
            DataError(f"endpoint {stream.name!r}: a record is a JSON {kind}, not an object"),
        )

    def _event(
        self,
        stream: Stream,
        table: HttpTable,
        raw: dict[str, Any],
        names: list[str],
        convert: JsonToAvro,
        state: dict[str, Any],
        initial: bool,
    ) -> tuple[dict[str, Any], tuple[Any, ...]]:
        picked = {n: raw[n] for n in names if n in raw}
        try:
            record = convert(picked)
        except DataError:
            record = picked  # the publisher parks it in the DLQ with the reason
        key = {k: record.get(k) for k in stream.primary_key}
        cursor = record.get(table.cursor) if table.cursor else None
        deleted = bool(table.deleted_flag) and is_deleted(record.get(table.deleted_flag))
        if table.effective_mode == "snapshot":
            op, version = "r", state.get("snapshot_ms")
            ts = ts_ms(cursor) if cursor is not None else None
            ts = ts if ts is not None else int(state.get("snapshot_ms") or now_ms())
        else:
            op, version = ("r" if initial else "u"), cursor
            ts = ts_ms(cursor) if cursor is not None else None
            ts = ts if ts is not None else now_ms()
        if deleted:
            op = "d"
        ident = key if key else picked
        event = self.event(
            stream=stream,
            op=op,
            key=key,
            record=record,
            ts_ms=ts,
            position=None if cursor is None else str(to_jsonable(cursor)),
            event_id=stable_event_id(self.name, stream.name, ident, op, version),
        )
        return event, (cursor, *[key[k] for k in stream.primary_key])

    # ---- sink ----------------------------------------------------------------------------
    def write(self, batch: Batch) -> WriteReport:
        if self.role != "sink":
            raise ConnectorConfigError(
                [FieldError("role", f"connector {self.name!r} is not a sink")]
            )
        table: HttpTable = self.table_config(batch.stream)  # type: ignore[assignment]
        url = self.endpoint(table)
        report = WriteReport()
        if not batch.events:
            return report
        bodies = [to_jsonable(e) for e in batch.events]
        if table.batch:
            ids = "".join(str(e.get("event_id", "")) for e in batch.events)
            idem = hashlib.sha256(ids.encode()).hexdigest()[:32]
            try:
                self.request(table.method, url, json_body=bodies, headers={"Idempotency-Key": idem})
            except HttpClientError as exc:
                if exc.status not in (400, 409, 413, 422):
                    raise
            else:
                report.applied = len(bodies)
                return report
        for i, body in enumerate(bodies):
            try:
                self.request(
                    table.method,
                    url,
                    json_body=body,
                    headers={"Idempotency-Key": str(body.get("event_id", ""))},
                )
            except HttpClientError as exc:
                if exc.status not in (400, 409, 422):
                    raise
                report.rejected.append(
                    Rejected(
                        i,
                        RowRejectedError(
                            f"{self.display(url)} refused the event (HTTP {exc.status})"
                        ),
                    )
                )
            else:
                report.applied += 1
        return report
