"""The Confluent Schema Registry subset: confluent-kafka's own client decodes what the bus wrote,
and accepts or refuses schemas exactly as ``lgsp schema check`` does."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext
from kafka import KafkaConsumer

from bus.connectors_db import ConnectorStore
from bus.envelope import envelope_schema
from bus.kafka.options import client_options
from bus.publish import Publisher
from bus.registry import Registry, subject_for
from tests.helpers import record_schema, register_topic
from tests.integration.api.conftest import LGSP, Server
from tests.integration.test_bus_roundtrip import events

pytestmark = pytest.mark.integration
MEDIA = "application/vnd.schemaregistry.v1+json"


def client(server: Server, key: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": server.url, "basic.auth.user.info": f"so-tttt:{key}"})


def test_confluent_client_decodes_what_the_bus_wrote(server: Server, unique: str) -> None:
    topic = f"lgsp.79.760.26734.test.x{unique}"
    schema_id = register_topic(server.settings, topic)
    with Publisher(server.settings) as pub:
        assert pub.publish(topic, events(5)).sent == 5
    raw = KafkaConsumer(
        topic,
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        **client_options(server.settings),
    )
    values = [m.value for m in raw]
    raw.close()
    assert len(values) == 5
    sr = client(server, server.key("consumer"))
    assert sr.get_schema(schema_id).schema_type == "AVRO"
    latest = sr.get_latest_version(subject_for(topic))
    assert (latest.schema_id, latest.version) == (schema_id, 1)
    decode = AvroDeserializer(sr)
    ctx = SerializationContext(topic, MessageField.VALUE)
    decoded = sorted((decode(v, ctx) for v in values), key=lambda e: e["after"]["id"])
    expected = sorted(events(5), key=lambda e: e["after"]["id"])
    assert [d["after"] for d in decoded] == [e["after"] for e in expected]
    assert [d["event_id"] for d in decoded] == [e["event_id"] for e in expected]


def _cli_check(cli_env: dict[str, str], subject: str, schema: dict, tmp_path: Path) -> int:
    path = tmp_path / "candidate.avsc"
    path.write_text(json.dumps(schema), encoding="utf-8")
    proc = subprocess.run(
        [LGSP, "schema", "check", subject, str(path), "--raw"],
        capture_output=True,
        text=True,
        env=cli_env,
    )
    return proc.returncode


def test_client_registration_refused_or_accepted_as_the_cli_decides(
    server: Server, unique: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    topic = f"lgsp.79.760.26734.test.x{unique}"
    subject = subject_for(topic)
    register_topic(server.settings, topic)
    sr = client(server, server.key("operator"))
    base = record_schema()
    added_required = envelope_schema(
        record_schema(extra=[{"name": "ward", "type": "string"}]), server.settings.schemas_dir
    )
    added_optional = envelope_schema(
        record_schema(extra=[{"name": "note", "type": ["null", "string"], "default": None}]),
        server.settings.schemas_dir,
    )
    assert base  # the registered version 1
    assert _cli_check(cli_env, subject, added_required, tmp_path) == 2
    assert sr.test_compatibility(subject, Schema(json.dumps(added_required), "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as refused:
        sr.register_schema(subject, Schema(json.dumps(added_required), "AVRO"))
    assert refused.value.http_status_code == 409
    assert len(Registry(server.settings).versions(subject)) == 1

    assert _cli_check(cli_env, subject, added_optional, tmp_path) == 0
    assert sr.test_compatibility(subject, Schema(json.dumps(added_optional), "AVRO")) is True
    new_id = sr.register_schema(subject, Schema(json.dumps(added_optional), "AVRO"))
    stored = Registry(server.settings).latest(subject)
    assert (stored.id, stored.version) == (new_id, 2)
    found = sr.lookup_schema(subject, Schema(json.dumps(added_optional), "AVRO"))
    assert (found.schema_id, found.version) == (new_id, 2)


def test_registry_endpoints_error_codes_and_deletes(server: Server, unique: str) -> None:
    topic = f"lgsp.79.760.26734.test.x{unique}"
    subject = subject_for(topic)
    schema_id = register_topic(server.settings, topic)
    op, consumer = server.key("operator"), server.key("consumer", "so-y-te")

    def call(method: str, path: str, key: str = op, **kw: object) -> tuple[int, object]:
        r = server.call(method, path, key, **kw)
        assert r.headers["content-type"] == MEDIA, (path, r.headers)
        return r.status_code, r.json()

    assert call("GET", "/subjects", consumer) == (200, [subject])
    assert call("GET", f"/subjects/{subject}/versions") == (200, [1])
    status, body = call("GET", f"/subjects/{subject}/versions/latest")
    assert status == 200 and body["id"] == schema_id and json.loads(body["schema"])
    assert call("GET", f"/subjects/{subject}/versions/1/schema")[1]["type"] == "record"
    assert call("GET", f"/schemas/ids/{schema_id}/versions") == (
        200,
        [{"subject": subject, "version": 1}],
    )
    assert call("GET", "/subjects/nope-value/versions")[1]["error_code"] == 40401
    assert call("GET", f"/subjects/{subject}/versions/7")[1]["error_code"] == 40402
    assert call("GET", f"/subjects/{subject}/versions/abc")[1]["error_code"] == 42202
    assert call("GET", "/schemas/ids/999999")[1]["error_code"] == 40403
    status, body = call("POST", f"/subjects/{subject}/versions", json={"schema": '{"type": 1}'})
    assert (status, body["error_code"]) == (422, 42201)
    status, body = call("PUT", f"/config/{subject}", json={"compatibility": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42203)
    assert call("PUT", f"/config/{subject}", json={"compatibility": "full"}) == (
        200,
        {"compatibility": "FULL"},
    )
    assert call("GET", f"/config/{subject}") == (200, {"compatibilityLevel": "FULL"})
    assert call("GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
    assert call("PUT", "/config", json={"compatibility": "NONE"})[1]["error_code"] == 42203
    assert call("PUT", f"/config/{subject}", consumer, json={"compatibility": "NONE"})[0] == 403
    assert Registry(server.settings).compatibility(subject) == "FULL"
    # deletes: permanent only after soft; the id still resolves (archived records name it)
    status, body = call("DELETE", f"/subjects/{subject}/versions/1?permanent=true")
    assert body["error_code"] == 40407
    assert call("DELETE", f"/subjects/{subject}", consumer)[0] == 403
    assert call("DELETE", f"/subjects/{subject}") == (200, [1])
    assert call("GET", "/subjects") == (200, [])
    assert call("GET", f"/subjects/{subject}/versions")[1]["error_code"] == 40401
    assert call("GET", f"/schemas/ids/{schema_id}")[0] == 200
    assert call("DELETE", f"/subjects/{subject}?permanent=true") == (200, [1])
    assert Registry(server.settings).versions(subject, deleted=True) == []
    assert call("GET", f"/schemas/ids/{schema_id}")[0] == 200


def test_a_subject_in_use_is_refused_unless_forced(server: Server, unique: str) -> None:
    topic = f"lgsp.79.760.26734.test.x{unique}"
    subject = subject_for(topic)
    register_topic(server.settings, topic)
    ConnectorStore(server.settings).add(
        name=f"src-{unique}",
        type="sqlite",
        role="source",
        agency="ubnd-phuong-tan-dinh",
        unit="26734",
        config={"name": f"src-{unique}"},
        topics={"ho_so": topic},
    )
    op = server.key("operator")
    for path in (f"/subjects/{subject}", f"/subjects/{subject}/versions/latest"):
        refused = server.call("DELETE", path, op)
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42206)
        assert f"connector src-{unique} (writes)" in refused.json()["message"]
    assert [v.version for v in Registry(server.settings).versions(subject)] == [1]
    forced = server.call("DELETE", f"/subjects/{subject}?force=true", op)
    assert (forced.status_code, forced.json()) == (200, [1])
    assert Registry(server.settings).versions(subject) == []
    unknown_unit = server.call(
        "POST",
        "/subjects/lgsp.79.760.99999.test.x-value/versions",
        op,
        json={"schema": json.dumps(record_schema())},
    )
    assert (unknown_unit.status_code, unknown_unit.json()["error_code"]) == (422, 42208)
    assert "99999" in unknown_unit.json()["message"]
