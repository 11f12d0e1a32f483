"""Type mapping SQL <-> Avro, names, positions, keys and event ids (no services)."""

from __future__ import annotations

import datetime as dt
import decimal
import unicodedata
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastavro import parse_schema
from sqlalchemy.dialects import mysql, postgresql, sqlite

from bus.config import PROJECT_ROOT
from bus.envelope import canonical_key, envelope_schema, make_event
from bus.errors import ConfigurationError
from connectors import positions
from connectors.base import Stream, event_id_for, key_json
from connectors.plugins import build
from connectors.soft_delete import is_deleted
from connectors.sql.source import keyset_after
from connectors.sql.typemap import TypeMapper, key_value
from connectors.sql.types import avro_for, avro_name, field_names, record_name, split_table, ts_ms


@pytest.mark.parametrize(
    ("sql_type", "avro"),
    [
        (sa.Integer(), "int"),
        (sa.SmallInteger(), "int"),
        (sa.BigInteger(), "long"),
        (mysql.INTEGER(unsigned=True), "long"),
        (
            mysql.BIGINT(unsigned=True),
            {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0},
        ),
        (sa.Boolean(), "boolean"),
        (mysql.TINYINT(display_width=1), "boolean"),
        (mysql.TINYINT(), "int"),
        (
            sa.Numeric(12, 2),
            {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        ),
        (sa.Numeric(), "string"),
        (sa.Float(), "double"),
        (postgresql.DOUBLE_PRECISION(), "double"),
        (sa.String(50), "string"),
        (sa.Text(), "string"),
        (sa.Date(), {"type": "int", "logicalType": "date"}),
        (sa.DateTime(), {"type": "long", "logicalType": "local-timestamp-micros"}),
        (sa.DateTime(timezone=True), {"type": "long", "logicalType": "timestamp-micros"}),
        (postgresql.TIMESTAMP(timezone=True), {"type": "long", "logicalType": "timestamp-micros"}),
        (
            postgresql.TIMESTAMP(precision=3),
            {"type": "long", "logicalType": "local-timestamp-millis"},
        ),
        (mysql.DATETIME(fsp=6), {"type": "long", "logicalType": "local-timestamp-micros"}),
        (mysql.DATETIME(), {"type": "long", "logicalType": "local-timestamp-millis"}),
        (sa.Time(), {"type": "int", "logicalType": "time-millis"}),
        (sa.LargeBinary(), "bytes"),
        (postgresql.BYTEA(), "bytes"),
        (sa.Uuid(), {"type": "string", "logicalType": "uuid"}),
        (postgresql.JSONB(), "string"),
        (postgresql.INET(), "string"),
    ],
)
def test_avro_for(sql_type: sa.types.TypeEngine, avro: object) -> None:
    mapping = avro_for(sql_type)
    assert mapping is not None
    assert mapping.avro == avro


def test_sqlite_integers_are_long_and_unsupported_types_are_none() -> None:
    assert avro_for(sqlite.INTEGER(), sqlite=True).avro == "long"  # type: ignore[union-attr]
    assert avro_for(sa.Interval()) is None
    assert avro_for(postgresql.ARRAY(sa.Integer)) is None
    assert avro_for(sa.types.NullType()) is None


def test_orderable_types() -> None:
    ordered = [sa.Integer(), sa.BigInteger(), sa.Numeric(10, 0), sa.Date(), sa.DateTime()]
    for t in ordered:
        assert avro_for(t).orderable, t  # type: ignore[union-attr]
    for t in (sa.Boolean(), sa.String(10), sa.Float(), sa.LargeBinary(), sa.JSON()):
        assert not avro_for(t).orderable, t  # type: ignore[union-attr]


def test_converters() -> None:
    text = avro_for(sa.String())
    decomposed = unicodedata.normalize("NFD", "Nguyễn Thị Ánh")
    assert text.convert(decomposed) == unicodedata.normalize("NFC", decomposed)  # type: ignore
    money = avro_for(sa.Numeric(12, 2)).convert  # type: ignore[union-attr]
    assert money(decimal.Decimal("12.5")) == decimal.Decimal("12.50")
    assert money(12.5) == decimal.Decimal("12.50")
    aware = avro_for(sa.DateTime(timezone=True)).convert  # type: ignore[union-attr]
    assert aware(dt.datetime(2025, 1, 1)).tzinfo is dt.UTC
    local = avro_for(sa.DateTime()).convert  # type: ignore[union-attr]
    utc_plus7 = dt.datetime(2025, 1, 1, 7, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    assert local(utc_plus7) == dt.datetime(2025, 1, 1, 0, 0)
    clock = avro_for(sa.Time()).convert  # type: ignore[union-attr]
    assert clock(dt.timedelta(hours=13, minutes=5, seconds=7)) == dt.time(13, 5, 7)
    flag = avro_for(mysql.TINYINT(display_width=1)).convert  # type: ignore[union-attr]
    assert flag(1) is True and flag(0) is False


def test_names() -> None:
    assert avro_name("họ tên") == "ho_ten"
    assert avro_name("Địa chỉ; DROP TABLE x") == "Dia_chi_DROP_TABLE_x"
    assert avro_name('"quoted"') == "quoted"
    assert avro_name("2nd") == "_2nd"
    assert field_names(["Họ tên", "ho_ten", "HO TEN"]) == {
        "Họ tên": "Ho_ten",
        "ho_ten": "ho_ten_2",
        "HO TEN": "HO_TEN_3",
    }
    assert record_name("tthc.dossier") == ("tthc", "Dossier")
    assert record_name("dancu.resident_registry") == ("dancu", "ResidentRegistry")
    assert split_table("public.ho_so") == ("public", "ho_so")
    assert split_table("ho_so") == (None, "ho_so")


def test_ts_ms() -> None:
    assert ts_ms(dt.datetime(1970, 1, 1, 0, 0, 1)) == 1000
    assert ts_ms(dt.datetime(1970, 1, 1, 7, tzinfo=dt.timezone(dt.timedelta(hours=7)))) == 0
    assert ts_ms(dt.date(1970, 1, 2)) == 86_400_000
    assert ts_ms(5) is None


def test_positions_round_trip_exactly() -> None:
    values = [
        dt.datetime(2025, 7, 1, 8, 0, 0, 123456),
        dt.datetime(2025, 7, 1, 8, tzinfo=dt.UTC),
        dt.date(2025, 7, 1),
        dt.time(8, 30),
        decimal.Decimal("12.30"),
        b"\x00\xff",
        7,
        "Hà Nội",
        None,
    ]
    dumped = positions.dump(values)
    import json

    assert positions.load(json.loads(json.dumps(dumped))) == values


def test_keyset_after_is_bound_not_concatenated() -> None:
    t = sa.Table("t", sa.MetaData(), sa.Column("c", sa.Integer), sa.Column("id", sa.Integer))
    clause = keyset_after([t.c.c, t.c.id], [5, "x'; DROP TABLE t; --"])
    sql = str(clause.compile(dialect=sqlite.dialect()))
    assert "DROP" not in sql
    assert sql == "t.c > ? OR t.c = ? AND t.id > ?"


def test_soft_delete_flags() -> None:
    for value in (True, 1, "Y", "1", "true", dt.datetime(2025, 1, 1), decimal.Decimal("1")):
        assert is_deleted(value), value
    # a NUMERIC flag column reads as Decimal: 0 leaves the row live, as in SQL (`= 0`)
    for value in (None, False, 0, "0", "N", "false", "", decimal.Decimal("0"), 0.0):
        assert not is_deleted(value), value


def test_key_json_matches_canonical_key() -> None:
    samples = [
        {"id": 1},
        {"id": -5},
        {"citizen_id": "079123456789"},
        {"ma": "Hồ sơ"},
        {"ma": 'a"b\\c'},
        {"a": 1, "b": "x"},
        {"d": dt.date(2025, 1, 1)},
        {"n": decimal.Decimal("1.50")},
        {"flag": True},
    ]
    for key in samples:
        assert key_json(key) == canonical_key(key), key


def test_event_shape_equals_make_event() -> None:
    from connectors.plugins import build

    connector = build(
        {
            "name": "x",
            "type": "sqlite",
            "role": "source",
            "agency": "a",
            "unit": "26734",
            "connection": {"url": "sqlite:///:memory:"},
            "tables": [{"table": "t", "dataset": "a.b"}],
        }
    )
    stream = Stream("t", "a.b", [], ["id"], {}, connector.config.tables[0])
    record = {"id": 1}
    eid = event_id_for("x\x1ft", key_json({"id": 1}), "u", "v1")
    built = connector.event(
        stream=stream, op="u", key={"id": 1}, record=record, ts_ms=5, position="p", event_id=eid
    )
    expected = make_event(
        op="u",
        key={"id": 1},
        ts_ms=5,
        source={"agency": "a", "unit": "26734", "system": "x", "table": "t", "connector": "x"}
        | {"position": "p"},
        after=record,
        event_id=eid,
    )
    assert built == expected
    assert event_id_for("x\x1ft", '{"id":1}', "u", "v1") == eid
    assert event_id_for("x\x1ft", '{"id":1}', "u", "v2") != eid


def test_sink_types_from_avro() -> None:
    def compiled(field: dict, dialect: object, is_key: bool = False) -> str:
        return str(TypeMapper().column_type(field, key=is_key).compile(dialect=dialect))

    dec = {
        "name": "a",
        "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
    }
    assert compiled(dec, postgresql.dialect()) == "NUMERIC(12, 2)"
    ts = {"name": "t", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]}
    assert compiled(ts, postgresql.dialect()) == "TIMESTAMP WITH TIME ZONE"
    assert compiled(ts, mysql.dialect()) == "DATETIME(3)"
    local = {"name": "t", "type": {"type": "long", "logicalType": "local-timestamp-millis"}}
    assert compiled(local, postgresql.dialect()) == "TIMESTAMP WITHOUT TIME ZONE"
    text = {"name": "s", "type": "string"}
    assert compiled(text, mysql.dialect()) == "TEXT"
    assert compiled(text, mysql.dialect(), is_key=True) == "VARCHAR(255)"
    assert compiled({**text, "sqlLength": 12}, mysql.dialect()) == "VARCHAR(12)"
    assert key_value(dec, "1.50") == decimal.Decimal("1.50")
    assert key_value(
        {"name": "d", "type": {"type": "int", "logicalType": "date"}}, "2025-01-02"
    ) == dt.date(2025, 1, 2)
    assert key_value({"name": "i", "type": "long"}, 7) == 7


def test_a_record_schema_derived_from_a_table_is_valid_avro(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text('CREATE TABLE "hồ sơ" (id INTEGER PRIMARY KEY, "họ tên" TEXT)'))
    engine.dispose()
    tables = [{"table": "hồ sơ", "dataset": "tthc.ho_so"}]
    connector = build(
        {"name": "src", "type": "sqlite", "role": "source", "agency": "a", "unit": "26734"}
        | {"connection": {"url": url}, "tables": tables}
    )
    with connector:
        [stream] = connector.discover()
    schema = stream.record_schema
    assert [(f["name"], f.get("sqlName")) for f in schema["fields"]] == [
        ("id", None),
        ("ho_ten", "họ tên"),
    ]
    parse_schema(envelope_schema(schema, PROJECT_ROOT / "schemas"))


def test_one_schema_table_parser() -> None:
    from bus.archive.replay import table_name
    from bus.reconcile.schema import reflect_table

    assert split_table("Hồ sơ") == (None, "Hồ sơ")
    for bad in ("a.b.c", "a.", ".b", "", " a"):
        with pytest.raises(ConfigurationError, match="^table: expected 'table' or 'schema.table'"):
            split_table(bad)
    with pytest.raises(ConfigurationError, match="^--table: .* letters, digits and '_'"):
        table_name("tthc.dossier", "Hồ sơ")
    with pytest.raises(ConfigurationError, match="^table: "):
        reflect_table(sa.create_engine("sqlite://"), "a.b.c", "source")
