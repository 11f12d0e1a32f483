"""A SQL table against a catalogued dataset's schema: matching, type checks, row conversion."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from bus.envelope import load_record_schema
from bus.errors import DataError
from bus.serde.jsoncodec import JsonToAvro
from connectors import plugins as connector_types
from connectors.contract import DatasetContract
from connectors.sql.config import SqlTable
from connectors.sql.contract import ContractError, TableContract, conform, match_columns
from connectors.sql.types import avro_for

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
DOSSIER = load_record_schema(SCHEMAS / "tthc.Dossier.avsc")
CONTRACT = DatasetContract("tthc.dossier", DOSSIER, ["dossier_id"], ["26734"])
PG = postgresql.dialect()


def dossier_columns(**replace: Any) -> list[sa.Column[Any]]:
    """The columns ``bus.generate.load_table`` makes for dossiers (PostgreSQL flavour)."""
    tz = sa.DateTime(timezone=True)
    types: dict[str, Any] = {
        "dossier_id": sa.String(64),
        "procedure_code": sa.String(255),
        "procedure_name": sa.String(255),
        "field": sa.String(32),
        "receiving_unit": sa.String(255),
        "channel": sa.String(32),
        "received_at": tz,
        "due_at": tz,
        "resolved_at": tz,
        "status": sa.String(32),
        "status_history": postgresql.JSON(),
        "applicant_citizen_id": sa.String(255),
        "applicant_name": sa.String(255),
        "updated_at": tz,
    }
    types.update(replace)
    return [
        sa.Column(name, kind, primary_key=name == "dossier_id", nullable=name == "resolved_at")
        for name, kind in types.items()
        if kind is not None
    ]


def plan_for(
    columns: list[sa.Column[Any]],
    contract: DatasetContract = CONTRACT,
    key: list[str] | None = None,
    **cfg: Any,
) -> TableContract:
    table = sa.Table("ho_so", sa.MetaData(), *columns)
    config = SqlTable(table="ho_so", dataset=contract.name, **cfg)
    pk = key if key is not None else [c.name for c in table.primary_key.columns]
    return conform(config, table, list(table.columns), pk, contract, mapping=avro_for, dialect=PG)


def refused(columns: list[sa.Column[Any]], **kwargs: Any) -> str:
    with pytest.raises(ContractError) as info:
        plan_for(columns, **kwargs)
    return str(info.value)


# ---- the native converter ---------------------------------------------------------------------


def test_native_values_of_database_drivers() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "n", "type": "long"},
            {"name": "d", "type": "double"},
            {"name": "b", "type": "boolean"},
            {
                "name": "amount",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2},
            },
            {"name": "born", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "opens", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "blob", "type": "bytes"},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
        ],
    }
    seven = dt.timezone(dt.timedelta(hours=7))
    out = JsonToAvro(schema, native=True)(
        {
            "n": decimal.Decimal("42"),
            "d": decimal.Decimal("1.5"),
            "b": 1,
            "amount": decimal.Decimal("12.5"),
            "born": dt.datetime(1990, 2, 3, 0, 0),
            "at": dt.datetime(2025, 7, 1, 8, 30),
            "local": dt.datetime(2025, 7, 1, 8, 30, tzinfo=seven),
            "opens": dt.timedelta(hours=7, minutes=30),
            "blob": memoryview(b"ab"),
            "tags": ("a", unicodedata.normalize("NFD", "Đạt")),
        }
    )
    assert out == {
        "n": 42,
        "d": 1.5,
        "b": True,
        "amount": decimal.Decimal("12.50"),
        "born": dt.date(1990, 2, 3),
        "at": dt.datetime(2025, 7, 1, 8, 30, tzinfo=dt.UTC),  # naive: UTC
        "local": dt.datetime(2025, 7, 1, 1, 30),
        "opens": dt.time(7, 30),
        "blob": b"ab",
        "tags": ["a", unicodedata.normalize("NFC", "Đạt")],
    }


def test_json_mode_still_refuses_native_only_values() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    with pytest.raises(DataError, match="n: expected an integer"):
        JsonToAvro(schema)({"n": decimal.Decimal("42")})
    ts = {"type": "long", "logicalType": "timestamp-millis"}
    with pytest.raises(DataError, match="with zone"):
        JsonToAvro(ts)(dt.datetime(2025, 1, 1))
    assert JsonToAvro(ts, native=True)(dt.datetime(2025, 1, 1)).tzinfo == dt.UTC


def test_a_decimal_that_would_lose_digits_is_refused() -> None:
    dec = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
    convert = JsonToAvro(dec, native=True)
    assert convert(decimal.Decimal("1.5")) == decimal.Decimal("1.50")
    with pytest.raises(DataError, match="at most 2 digits after the point"):
        convert(decimal.Decimal("1.234"))
    with pytest.raises(DataError, match="at most 6 digits"):
        convert(decimal.Decimal("123456.7"))


def test_array_errors_name_the_item_and_never_the_value() -> None:
    convert = JsonToAvro(DOSSIER, native=True).field("status_history")
    items = [
        {"status": "received", "at": "2025-07-01T08:00:00+07:00", "note": None},
        {"status": "processing", "at": "01/07/2025", "note": None},
    ]
    with pytest.raises(DataError) as info:
        convert(items)
    assert str(info.value) == "status_history[1].at: expected an ISO 8601 timestamp with zone"
    assert convert(items[:1])[0]["at"] == dt.datetime(2025, 7, 1, 1, tzinfo=dt.UTC)


def test_recursive_records_convert() -> None:
    node = {
        "type": "record",
        "name": "Node",
        "fields": [
            {"name": "v", "type": "int"},
            {"name": "next", "type": ["null", "Node"], "default": None},
        ],
    }
    out = JsonToAvro(node)({"v": 1, "next": {"v": 2, "next": {"v": 3}}})
    assert out == {"v": 1, "next": {"v": 2, "next": {"v": 3, "next": None}}}
    with pytest.raises(DataError, match=r"next\.next\.v: expected an integer"):
        JsonToAvro(node)({"v": 1, "next": {"v": 2, "next": {"v": "x"}}})


# ---- matching and checks ----------------------------------------------------------------------


def test_the_generated_dossier_table_conforms() -> None:
    plan = plan_for(dossier_columns())
    assert plan.warnings == []
    assert [c.field for c in plan.columns] == [f["name"] for f in DOSSIER["fields"]]
    assert [c.name for c in plan.columns if c.primary_key] == ["dossier_id"]


def test_columns_match_by_sql_name_same_name_or_avro_safe_name() -> None:
    fields = [
        {"name": "ho_ten"},
        {"name": "Trang_thai"},
        {"name": "ma", "sqlName": "Mã hồ sơ"},
        {"name": "khac"},
    ]
    matched, problems = match_columns(fields, ["Mã hồ sơ", "Trạng thái", "HO_TEN", "ma"])
    assert matched == {
        "ho_ten": "HO_TEN",
        "Trang_thai": "Trạng thái",
        "ma": "Mã hồ sơ",
        "khac": None,
    }
    assert problems == []
    _, problems = match_columns([{"name": "ho_ten"}], ["Họ tên", "Ho-ten"])
    assert problems and "matches several columns" in problems[0]


def test_a_missing_required_field_names_table_field_and_type() -> None:
    text = refused(dossier_columns(channel=None, due_at=None))
    assert (
        "table 'ho_so': field 'channel' (enum tthc.Channel) of dataset tthc.dossier is "
        "required and has no column; expected a column named 'channel'"
    ) in text
    assert "field 'due_at' (timestamp-millis)" in text


def test_fields_with_a_default_or_null_are_filled() -> None:
    plan = plan_for(dossier_columns(status_history=None, applicant_citizen_id=None))
    assert plan.warnings == [
        "field 'status_history' of dataset tthc.dossier has no column in table 'ho_so': "
        "published as []",
        "field 'applicant_citizen_id' of dataset tthc.dossier has no column in table 'ho_so': "
        "published as null",
    ]
    filled = {f: convert for f, column, convert in plan.fields if column is None}
    first, second = filled["status_history"](None), filled["status_history"](None)
    assert first == [] and first is not second  # a fresh list per record


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (
            {"status": sa.Integer()},
            "column 'status' (INTEGER) cannot feed field 'status' (enum tthc.DossierStatus) of "
            "dataset tthc.dossier: expected a text column holding the symbols",
        ),
        (
            {"received_at": sa.Date()},
            "column 'received_at' (DATE) cannot feed field 'received_at' (timestamp-millis)",
        ),
        (
            {"status_history": sa.Integer()},
            "column 'status_history' (INTEGER) cannot feed field 'status_history' "
            "(array of record tthc.StatusChange) of dataset tthc.dossier: expected a JSON or text "
            "column holding JSON",
        ),
        (
            {"applicant_name": sa.LargeBinary()},
            "column 'applicant_name' (BYTEA) cannot feed field 'applicant_name' (string)",
        ),
    ],
)
def test_incompatible_types_name_column_sql_type_and_field_type(
    replace: dict[str, Any], message: str
) -> None:
    text = refused(dossier_columns(**replace))
    assert "table 'ho_so'" in text and message in text


def test_compatible_types_across_kinds() -> None:
    plan = plan_for(
        dossier_columns(
            received_at=sa.DateTime(),  # without zone: UTC
            status_history=sa.Text(),  # JSON text
            field=mysql.ENUM("civil_status", "other", "tu_phap"),
            status=sa.CHAR(20),
        )
    )
    assert plan.warnings == [
        "column 'field' can hold tu_phap, which are not symbols of field 'field': such rows go "
        "to the DLQ"
    ]


def test_decimal_scale_must_fit_the_field() -> None:
    money = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
    record = {
        "type": "record",
        "name": "Fee",
        "namespace": "t",
        "fields": [{"name": "id", "type": "long"}, {"name": "amount", "type": money}],
    }
    contract = DatasetContract("t.fee", record, ["id"])
    ok = plan_for(
        [sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("amount", sa.Numeric(10, 2))],
        contract,
    )
    assert ok.warnings == [
        "column 'amount' allows NULL but field 'amount' of dataset t.fee does not: rows where it "
        "is NULL go to the DLQ"
    ]
    text = refused(
        [sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("amount", sa.Numeric(12, 3))],
        contract=contract,
    )
    assert "column 'amount' (NUMERIC(12, 3)) has 3 digits after the point" in text
    assert "field 'amount' (decimal(12,2))" in text
    text = refused(
        [sa.Column("id", sa.Numeric(10, 1), primary_key=True), sa.Column("amount", sa.Integer)],
        contract=contract,
    )
    assert "column 'id' (NUMERIC(10, 1)) has 1 digits after the point" in text


def test_the_key_must_be_the_datasets_key() -> None:
    text = refused(dossier_columns(), key=["procedure_code"])
    assert (
        "table 'ho_so': key (procedure_code) does not match dataset tthc.dossier's key "
        "(dossier_id -> column dossier_id)"
    ) in text
    assert "has no primary key" in refused(dossier_columns(), key=[])


def test_extra_columns_are_listed_and_not_published() -> None:
    columns = [*dossier_columns(), sa.Column("so_dien_thoai", sa.String(12))]
    columns.append(sa.Column("da_xoa", sa.Boolean))
    plan = plan_for(columns, deleted_flag="da_xoa")
    assert plan.warnings == [
        "column 'so_dien_thoai' is not part of dataset tthc.dossier: not published",
        "column 'da_xoa' is not part of dataset tthc.dossier: not published "
        "(read as the soft-delete flag only)",
    ]
    assert plan.hidden == ["da_xoa"]
    assert "so_dien_thoai" not in {c.name for c in plan.columns}


def test_every_problem_at_once() -> None:
    text = refused(dossier_columns(channel=None, status=sa.Integer()), key=["procedure_code"])
    assert text.count("table 'ho_so'") == 3


# ---- rows ------------------------------------------------------------------------------------


def row_of(plan: TableContract, values: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    names = [c.name for c in plan.columns]
    items = plan.items({n: i for i, n in enumerate(names)})
    return items, [values.get(n) for n in names]


GOOD = {
    "dossier_id": "000.00.26734.H29-250701-0001",
    "procedure_code": "1.001193",
    "procedure_name": unicodedata.normalize("NFD", "Đăng ký khai sinh"),
    "field": "civil_status",
    "receiving_unit": "26734",
    "channel": "online",
    "received_at": dt.datetime(2025, 7, 1, 1, 0, tzinfo=dt.UTC),
    "due_at": dt.datetime(2025, 7, 3, 1, 0),
    "resolved_at": None,
    "status": "processing",
    "status_history": json.dumps(
        [{"status": "received", "at": "2025-07-01T08:00:00+07:00", "note": None}]
    ),
    "applicant_citizen_id": "079099081380",
    "applicant_name": "Nguyễn Văn An",
    "updated_at": dt.datetime(2025, 7, 1, 2, 0),
}


def test_a_row_converts_to_the_dataset_record() -> None:
    plan = plan_for(dossier_columns(status_history=sa.Text()))
    items, row = row_of(plan, GOOD)
    record = plan.record(items, row)
    assert record["procedure_name"] == unicodedata.normalize("NFC", "Đăng ký khai sinh")
    assert record["due_at"] == dt.datetime(2025, 7, 3, 1, 0, tzinfo=dt.UTC)
    assert record["status_history"] == [
        {"status": "received", "at": dt.datetime(2025, 7, 1, 1, 0, tzinfo=dt.UTC), "note": None}
    ]
    assert record["resolved_at"] is None


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("status", "da_tiep_nhan", "column 'status': status: expected one of received"),
        ("status_history", "[{'status': 'received'", "status_history: expected JSON text"),
        ("status_history", '[{"status": "x", "at": 0}]', "status_history[0].status: expected"),
        ("channel", None, "column 'channel': channel: expected one of online, offline"),
        ("applicant_name", None, "applicant_name: expected a value (string)"),
    ],
)
def test_a_row_that_does_not_fit_names_column_and_field_never_the_value(
    column: str, value: Any, message: str
) -> None:
    plan = plan_for(dossier_columns(status_history=sa.Text()))
    items, row = row_of(plan, {**GOOD, column: value})
    with pytest.raises(DataError) as info:
        plan.record(items, row)
    text = str(info.value)
    assert text.startswith(f"table 'ho_so', column '{column}': ") and message in text
    if value:
        assert str(value) not in text


# ---- reading a SQLite table -----------------------------------------------------------------


def test_a_sqlite_source_reads_the_catalogue_record_and_sets_bad_rows_aside(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/src.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                'CREATE TABLE "hồ sơ" ("Mã" TEXT PRIMARY KEY, "Trạng thái" TEXT NOT NULL, '
                '"Lịch sử" JSON, "Số tiền" NUMERIC(10, 2), so_dien_thoai TEXT, '
                "cap_nhat DATETIME NOT NULL)"
            )
        )
        rows = [
            ("HS1", "open", '[{"at": "2025-07-01T08:00:00+07:00"}]', "12.5", "0909000001"),
            ("HS2", "dong_lai", "[]", "1", "0909000002"),
            ("HS3", "closed", None, None, "0909000003"),
        ]
        for i, (key, state, history, amount, phone) in enumerate(rows):
            conn.execute(
                sa.text('INSERT INTO "hồ sơ" VALUES (:k, :s, :h, :a, :p, :c)'),
                {
                    "k": key,
                    "s": state,
                    "h": history,
                    "a": amount,
                    "p": phone,
                    "c": f"2025-07-0{i + 1}",
                },
            )
    engine.dispose()
    record = {
        "type": "record",
        "name": "Case",
        "namespace": "t",
        "fields": [
            {"name": "Ma", "type": "string"},
            {
                "name": "state",
                "sqlName": "Trạng thái",
                "type": {"type": "enum", "name": "State", "symbols": ["open", "closed"]},
            },
            {
                "name": "Lich_su",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Step",
                        "fields": [
                            {
                                "name": "at",
                                "type": {"type": "long", "logicalType": "timestamp-millis"},
                            }
                        ],
                    },
                },
                "default": [],
            },
            {
                "name": "So_tien",
                "type": [
                    "null",
                    {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 3},
                ],
                "default": None,
            },
            {"name": "cap_nhat", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
    contract = DatasetContract("t.case", record, ["Ma"])
    connector = connector_types.build(
        {
            "name": "src",
            "type": "sqlite",
            "role": "source",
            "agency": "a",
            "unit": "26734",
            "connection": {"url": url},
            "tables": [{"table": "hồ sơ", "dataset": "t.case", "cursor": "cap_nhat"}],
        }
    )
    connector.datasets = lambda name: contract if name == "t.case" else None
    with connector:
        [stream] = connector.discover()
        assert stream.record_schema is record
        assert stream.warnings == [
            "column 'so_dien_thoai' is not part of dataset t.case: not published"
        ]
        assert stream.key_fields == ["Ma"]
        [batch] = list(connector.read_stream(stream, None))
    assert [e["after"]["Ma"] for e in batch.events] == ["HS1", "HS3"]
    first, third = (e["after"] for e in batch.events)
    assert first["Lich_su"] == [{"at": dt.datetime(2025, 7, 1, 1, 0, tzinfo=dt.UTC)}]
    assert first["So_tien"] == decimal.Decimal("12.500")
    assert third["Lich_su"] == [] and third["So_tien"] is None  # NULL: the default
    assert all("so_dien_thoai" not in e["after"] for e in batch.events)
    [bad] = batch.invalid
    assert str(bad.error) == (
        "table 'hồ sơ', column 'Trạng thái': state: expected one of open, closed"
    )
    assert bad.event["key"] == '{"Ma":"HS2"}'
    assert "so_dien_thoai" not in bad.event["after"]
    assert bad.event["after"]["state"] == "dong_lai"  # the row as read, for the operator
    assert batch.state is not None and batch.state["after"] is not None  # past all three rows
