"""The domain Avro schemas: they load, parse, round-trip and carry the expected PII tags."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
import re
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest
from fastavro.schema import load_schema
from fastavro.validation import ValidationError, validate

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"

RECORDS = {
    "tthc.Dossier": "dossier_id",
    "phananh.Report": "report_id",
    "dancu.Resident": "citizen_id",
    "hotich.Event": "event_id",
    "hocphi.Payment": "payment_id",
    "datdai.Parcel": "parcel_id",
}
NAMED_TYPES = [
    *RECORDS,
    "tthc.StatusChange",
    "tthc.DossierStatus",
    "tthc.Field",
    "tthc.Channel",
    "phananh.Category",
    "phananh.ReportStatus",
    "phananh.Channel",
    "dancu.Sex",
    "dancu.ResidenceType",
    "hotich.EventKind",
    "hocphi.PaymentMethod",
]
PII = {
    "tthc.Dossier": {"applicant_citizen_id", "applicant_name"},
    "phananh.Report": {"reporter_phone"},
    "dancu.Resident": {"citizen_id", "full_name", "birth_date", "address"},
    "hotich.Event": {"subject_citizen_id", "subject_name", "partner_citizen_id"},
    "hocphi.Payment": {"student_id"},
    "datdai.Parcel": {"owner_citizen_id"},
}

UTC = dt.UTC


def ts(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


SAMPLES: dict[str, dict[str, Any]] = {
    "tthc.Dossier": {
        "dossier_id": "000.00.26734.H29-261001-0001",
        "procedure_code": "1.001612",
        "procedure_name": "Thủ tục đăng ký khai sinh",
        "field": "civil_status",
        "receiving_unit": "26734",
        "channel": "online",
        "received_at": ts(2026, 10, 1, 2, 0),
        "due_at": ts(2026, 10, 2, 2, 0),
        "resolved_at": None,
        "status": "supplement_requested",
        "status_history": [
            {"status": "received", "at": ts(2026, 10, 1, 2, 0), "note": None},
            {
                "status": "supplement_requested",
                "at": ts(2026, 10, 1, 7, 30, 15, 123000),
                "note": "Thiếu giấy chứng sinh",
            },
        ],
        "applicant_citizen_id": "079190001234",
        "applicant_name": "Nguyễn Thị Minh Khai",
        "updated_at": ts(2026, 10, 1, 7, 30, 15, 123000),
    },
    "phananh.Report": {
        "report_id": "PA-2026-000123",
        "category": "urban_order",
        "unit": "26737",
        "received_at": ts(2026, 10, 3, 1, 15),
        "resolved_at": ts(2026, 10, 4, 9, 0),
        "status": "resolved",
        "channel": "hotline",
        "reporter_phone": None,
        "updated_at": ts(2026, 10, 4, 9, 0),
    },
    "dancu.Resident": {
        "citizen_id": "079085001234",
        "full_name": "Trần Văn Bảy",
        "birth_date": dt.date(1985, 7, 14),
        "sex": "male",
        "residence_type": "temporary",
        "unit": "27460",
        "household_id": "HK-27460-004512",
        "address": "12 Đường số 7, Phường An Lạc",
        "updated_at": ts(2026, 1, 5, 3, 0),
    },
    "hotich.Event": {
        "event_id": "HT-26734-2026-0042",
        "kind": "marriage",
        "unit": "26734",
        "registered_at": ts(2026, 5, 20, 2, 0),
        "event_date": dt.date(2026, 5, 20),
        "book_number": "42/2026",
        "subject_citizen_id": "079095004321",
        "subject_name": "Lê Hoàng Nam",
        "partner_citizen_id": "079197008765",
        "updated_at": ts(2026, 5, 20, 2, 0),
    },
    "hocphi.Payment": {
        "payment_id": "HP-0001",
        "student_id": "7900123456",
        "school_code": "79760401",
        "unit": "26740",
        "amount": decimal.Decimal("1250000"),
        "paid_at": ts(2026, 9, 10, 4, 0),
        "method": "bank_transfer",
        "updated_at": ts(2026, 9, 10, 4, 0),
    },
    "datdai.Parcel": {
        "parcel_id": "26734-12-345",
        "map_sheet": 12,
        "parcel_number": 345,
        "unit": "26734",
        "area_m2": decimal.Decimal("72.50"),
        "land_use_type": "ODT",
        "owner_citizen_id": "079060001111",
        "certificate_no": "CS 01234",
        "updated_at": ts(2026, 3, 1, 8, 0),
    },
}


def raw(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.avsc").read_text(encoding="utf-8"))


def load(name: str) -> dict[str, Any]:
    return load_schema(str(SCHEMAS / f"{name}.avsc"))


def fields(name: str) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in raw(name)["fields"]}


@pytest.mark.parametrize("name", NAMED_TYPES)
def test_each_file_holds_one_named_type_named_like_the_file(name: str) -> None:
    schema = raw(name)
    namespace, _, short = name.rpartition(".")
    assert schema["namespace"] == namespace
    assert schema["name"] == short
    assert schema["doc"]
    parsed = load(name)
    assert parsed["name"] == name


@pytest.mark.parametrize("name", [*RECORDS, "tthc.StatusChange"])
def test_records_load_and_parse_with_avro_too(name: str) -> None:
    parsed = load(name)
    plain = {k: v for k, v in parsed.items() if not k.startswith("__")}
    # The avro package (used for compatibility checks) must accept the resolved schema.
    assert avro.schema.parse(json.dumps(plain)).fullname == name
    fastavro.parse_schema(plain)


@pytest.mark.parametrize("name", list(RECORDS))
def test_record_conventions(name: str) -> None:
    schema = raw(name)
    by_name = fields(name)
    key = RECORDS[name]
    assert schema["primary_key"] == [key]
    assert by_name[key]["type"] == "string"
    assert by_name["updated_at"]["type"] == {"type": "long", "logicalType": "timestamp-millis"}
    for field in schema["fields"]:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", field["name"]), field["name"]
        assert field.get("doc"), f"{name}.{field['name']} has no Vietnamese label"
        ftype = field["type"]
        if isinstance(ftype, list):
            assert ftype[0] == "null" and len(ftype) == 2, field["name"]
            assert "default" in field and field["default"] is None, field["name"]


@pytest.mark.parametrize("name", list(RECORDS))
def test_pii_tags_are_exactly_the_listed_fields(name: str) -> None:
    tagged = {f["name"] for f in raw(name)["fields"] if f.get("pii") is True}
    assert tagged == PII[name]
    # The tags survive fastavro's loader, so a catalogue can read them from the parsed schema.
    assert {f["name"] for f in load(name)["fields"] if f.get("pii")} == PII[name]


def test_logical_types() -> None:
    assert fields("hocphi.Payment")["amount"]["type"] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 15,
        "scale": 0,
    }
    assert fields("datdai.Parcel")["area_m2"]["type"] == {
        "type": "bytes",
        "logicalType": "decimal",
        "precision": 12,
        "scale": 2,
    }
    assert fields("dancu.Resident")["birth_date"]["type"] == {"type": "int", "logicalType": "date"}
    dossier = fields("tthc.Dossier")
    for name in ("received_at", "due_at"):
        assert dossier[name]["type"]["logicalType"] == "timestamp-millis"
    assert dossier["resolved_at"]["type"][1]["logicalType"] == "timestamp-millis"


def test_dossier_status_symbols() -> None:
    assert raw("tthc.DossierStatus")["symbols"] == [
        "received",
        "processing",
        "supplement_requested",
        "resolved",
        "rejected",
        "withdrawn",
    ]
    assert raw("tthc.Channel")["symbols"] == ["online", "offline"]
    assert set(raw("phananh.Category")["symbols"]) >= {
        "construction_order",
        "urban_order",
        "environment",
        "traffic_safety",
        "public_security",
    }


@pytest.mark.parametrize("name", list(RECORDS))
def test_sample_round_trips(name: str) -> None:
    schema = load(name)
    sample = SAMPLES[name]
    assert validate(sample, schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, sample)
    buf.seek(0)
    assert fastavro.schemaless_reader(buf, schema, schema) == sample


def test_defaults_fill_nullable_fields() -> None:
    schema = load("tthc.Dossier")
    sample = {
        k: v
        for k, v in SAMPLES["tthc.Dossier"].items()
        if k not in ("resolved_at", "applicant_citizen_id", "status_history")
    }
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, sample)
    buf.seek(0)
    back = fastavro.schemaless_reader(buf, schema, schema)
    assert back["resolved_at"] is None
    assert back["applicant_citizen_id"] is None
    assert back["status_history"] == []


@pytest.mark.parametrize(
    ("name", "field", "bad"),
    [
        ("tthc.Dossier", "status", "paused"),
        ("tthc.Dossier", "channel", "fax"),
        ("dancu.Resident", "residence_type", "visiting"),
        ("dancu.Resident", "birth_date", "14/07/1985"),
        ("hocphi.Payment", "amount", decimal.Decimal("1250000.5")),
        ("hotich.Event", "kind", "divorce"),
        ("datdai.Parcel", "map_sheet", "12"),
    ],
)
def test_bad_values_are_refused(name: str, field: str, bad: Any) -> None:
    record = {**SAMPLES[name], field: bad}
    with pytest.raises((ValidationError, ValueError)):
        validate(record, load(name))


def test_missing_required_field_is_refused() -> None:
    record = {k: v for k, v in SAMPLES["dancu.Resident"].items() if k != "citizen_id"}
    with pytest.raises(ValidationError):
        validate(record, load("dancu.Resident"))
