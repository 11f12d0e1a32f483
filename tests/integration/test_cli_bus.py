"""The bus commands as a person runs them: one line per error, non-zero exits, nothing half-done."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from bus.config import Settings, get_settings, reset_settings
from bus.kafka.ends import end_offsets
from bus.serde import AvroCodec
from tests.helpers import run_cli as run

pytestmark = pytest.mark.integration

RECORD = {
    "type": "record",
    "name": "Dossier",
    "namespace": "tthc",
    "fields": [
        {"name": "dossier_id", "type": "string"},
        {"name": "applicant", "type": "string"},
        {
            "name": "fee",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 0},
        },
        {"name": "received_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ],
}


@pytest.fixture
def topic(cli_env: dict, unique: str, tmp_path: Path) -> str:
    name = f"lgsp.79.760.26734.tthc.x{unique}"
    path = tmp_path / "tthc.Dossier.avsc"
    path.write_text(json.dumps(RECORD), encoding="utf-8")
    code, out, err = run("schema", "register", f"{name}-value", str(path))
    assert code == 0, err
    assert "version 1, id 1" in out
    return name


def test_publish_and_tail(topic: str, tmp_path: Path) -> None:
    lines = tmp_path / "in.jsonl"
    lines.write_text(
        "\n".join(
            json.dumps(
                {
                    "dossier_id": f"HS-{i}",
                    "applicant": "Lê Văn Tám",
                    "fee": "50000",
                    "received_at": "2026-10-01T08:00:00+07:00",
                },
                ensure_ascii=False,
            )
            for i in range(3)
        ),
        encoding="utf-8",
    )
    code, out, err = run("publish", topic, "--file", str(lines))
    assert code == 0, err
    assert "published 3 events" in out
    code, out, _ = run("tail", topic, "--from-beginning", "--max", "3")
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(r["after"]["dossier_id"] for r in rows) == ["HS-0", "HS-1", "HS-2"]
    assert rows[0]["after"]["applicant"] == "Lê Văn Tám"
    assert rows[0]["after"]["fee"] == "50000"
    code, out, _ = run("topic", "list")
    assert code == 0 and topic in out


def test_publish_encodes_each_record_once(
    topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The size check and the send use the same bytes: one Avro encode per line."""
    calls: list[int] = []
    encode = AvroCodec.encode

    def counted(self: AvroCodec, schema_id: int, value: dict) -> bytes:
        calls.append(schema_id)
        return encode(self, schema_id, value)

    monkeypatch.setattr(AvroCodec, "encode", counted)
    lines = tmp_path / "in.jsonl"
    record = {"applicant": "A", "fee": "1", "received_at": "2026-10-01T08:00:00+07:00"}
    lines.write_text(
        "\n".join(json.dumps({"dossier_id": f"HS-{i}", **record}) for i in range(5)),
        encoding="utf-8",
    )
    code, out, err = run("publish", topic, "--file", str(lines))
    assert code == 0, err
    assert "published 5 events" in out
    assert len(calls) == 5
    assert sum(end_offsets(get_settings(), [topic]).values()) == 5


def test_bad_json_line_sends_nothing(topic: str, tmp_path: Path) -> None:
    lines = tmp_path / "in.jsonl"
    good = {"dossier_id": "HS-1", "applicant": "A", "fee": 1, "received_at": 0}
    bad = {**good, "fee": "1.5"}
    lines.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n", encoding="utf-8")
    code, _, err = run("publish", topic, "--file", str(lines))
    assert code != 0
    assert err.strip().splitlines() == [err.strip()]
    assert "line 2" in err and "fee" in err
    reset_settings()
    from bus.config import get_settings

    assert sum(end_offsets(get_settings(), [topic]).values()) == 0


def test_incompatible_schema_refused(topic: str, tmp_path: Path) -> None:
    changed = dict(RECORD)
    changed["fields"] = RECORD["fields"] + [{"name": "ward", "type": "string"}]
    path = tmp_path / "tthc.Dossier.avsc"
    path.write_text(json.dumps(changed), encoding="utf-8")
    code, _, err = run("schema", "check", f"{topic}-value", str(path))
    assert code == 2 and "incompatible" in err and "ward" in err
    code, _, err = run("schema", "register", f"{topic}-value", str(path))
    assert code == 2 and "reader_field_missing_default_value" in err
    code, out, _ = run("schema", "show", f"{topic}-value")
    assert "version 1" in out
    code, out, _ = run("schema", "show", f"{topic}-value", "--version", "2")
    assert code == 2


def test_malformed_avsc_and_unknown_unit(cli_env: dict, tmp_path: Path) -> None:
    path = tmp_path / "t.Bad.avsc"
    path.write_text('{"type": "record", "name": "Bad", "fields": [', encoding="utf-8")
    code, _, err = run("schema", "register", "lgsp.79.760.26734.t.bad-value", str(path))
    assert code == 2 and "t.Bad.avsc" in err and "Traceback" not in err
    ok = tmp_path / "t.Good.avsc"
    ok.write_text(json.dumps({**RECORD, "name": "Good", "namespace": "t"}), encoding="utf-8")
    code, _, err = run("schema", "register", "lgsp.79.760.12345.t.good-value", str(ok))
    assert code == 2 and "12345" in err


def test_broker_down_cli(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("LGSP_HOME", str(home))
    monkeypatch.setenv("LGSP_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("LGSP_KAFKA__API_TIMEOUT_MS", "1000")
    reset_settings()
    code, out, err = run("broker", "status")
    assert code == 3 and "does not answer" in out
    code, _, err = run("topic", "list")
    assert code == 3 and err.startswith("error: broker") and len(err.strip().splitlines()) == 1
    reset_settings()


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("LGSP_HOME", str(home))
    monkeypatch.setenv("LGSP_DATABASE_URL", "postgresql+psycopg://lgsp:s3cret-pw@db:5432/lgsp")
    monkeypatch.setenv("LGSP_KAFKA__SASL_PASSWORD", "kafka-s3cret")
    reset_settings()
    code, out, _ = run("config", "show")
    assert code == 0
    assert "s3cret" not in out and "***" in out
    assert Settings().database_url is not None
    reset_settings()
