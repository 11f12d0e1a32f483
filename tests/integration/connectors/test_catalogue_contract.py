"""A SQL source for a catalogued dataset conforms to the catalogue's schema.

The dataset (``tthc.Dossier``: enums, an array of records, timestamps, nullable fields) is
published first; a source table of generated dossiers then registers with the schema reported
unchanged, its rows are converted to the catalogue's types, rows that do not fit go to the DLQ
with a reason naming the column and field, and columns outside the dataset never reach the
topic. A round trip SQLite -> broker -> PostgreSQL and MariaDB sinks keeps every value.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from bus.catalog.datasets import publish_dataset
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.consume import Consumer, Message
from bus.dlq_ops import list_dead_letters
from bus.envelope import record_schema_of
from bus.generate import load_table
from bus.registry import Registry, subject_for
from bus.sync import run
from conftest import MYSQL_URL, PG_URL
from connectors.errors import ConnectorConfigError
from tests.helpers import drop_tables, read_rows
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

UNIT = "26734"
TOPIC_PREFIX = "lgsp.79.760.26734."


def publish(settings: Settings, tmp_path: Path, name: str) -> None:
    """Publish ``name`` with the dossier schema for ward 26734."""
    doc = {
        "name": name,
        "publisher": "vp-ubnd-tp",
        "units": [UNIT],
        "schema": str(settings.schemas_dir / "tthc.Dossier.avsc"),
        "key": ["dossier_id"],
        "pii": ["applicant_citizen_id", "applicant_name"],
        "description": {"vi": "Hồ sơ thủ tục hành chính", "en": "Dossiers"},
        "legal_basis": "Nghị định 61/2018/NĐ-CP",
        "frequency": "continuous",
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    publish_dataset(settings, path)


@pytest.fixture
def dataset(settings: Settings, tmp_path: Path, unique: str) -> str:
    name = f"tthc.d{unique}"
    publish(settings, tmp_path, name)
    return name


def sqlite_dossiers(tmp_path: Path, n: int, seed: int = 11) -> str:
    url = f"sqlite:///{tmp_path}/hoso.db"
    load_table(url, "ho_so", "tthc.dossier", n, seed, [UNIT])
    return url


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


def read_topic(settings: Settings, topic: str) -> list[Message]:
    out: list[Message] = []
    with Consumer(settings, None) as consumer:  # type: ignore[arg-type]
        consumer.run_bounded([topic], out.extend, from_beginning=True, commit=False)
    return out


def rows_of(url: str, table: str) -> dict[str, dict[str, Any]]:
    return {r["dossier_id"]: r for r in read_rows(url, table)}


def utc(value: Any) -> Any:
    """A timestamp as an aware UTC datetime (naive ones are UTC); other values as they are."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return aware.astimezone(dt.UTC)
    return value


def history(value: Any) -> list[dict[str, Any]]:
    items = json.loads(value) if isinstance(value, str) else value
    out = []
    for item in items:
        at = item["at"]
        at = dt.datetime.fromisoformat(at) if isinstance(at, str) else at
        out.append({**item, "at": utc(at)})
    return out


# ---- registration ---------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def source_db(request: pytest.FixtureRequest, tmp_path: Path, unique: str) -> Iterator[tuple]:
    kind = request.param
    if kind == "sqlite":
        yield kind, sqlite_dossiers(tmp_path, 40), "ho_so"
        return
    url = PG_URL if kind == "postgresql" else MYSQL_URL
    table = f"ho_so_{unique}"
    load_table(url, table, "tthc.dossier", 40, 5, [UNIT])
    try:
        yield kind, url, table
    finally:
        drop_tables(url, [table])


def test_a_catalogued_dataset_registers_unchanged_and_publishes_its_types(
    settings: Settings, dataset: str, source_db: tuple[str, str, str]
) -> None:
    kind, url, table = source_db
    topic = TOPIC_PREFIX + dataset
    before = Registry(settings).latest(subject_for(topic))
    tables = [{"table": table, "dataset": dataset, "cursor": "updated_at"}]
    result = register(settings, config(kind, "source", url, tables, name="src"))
    [plan] = result.tables
    assert plan.schema == f"version {before.version} (unchanged)"
    assert plan.warnings == []
    assert [c["field"] for c in plan.columns] == [
        f["name"] for f in record_schema_of(before.schema)["fields"]
    ]
    assert Registry(settings).latest(subject_for(topic)).version == before.version

    report = run(settings, "src")
    assert (report.rows, report.dlq, report.status) == (40, 0, "ok")
    messages = read_topic(settings, topic)
    assert {m.schema_id for m in messages} == {before.id}
    after = messages[0].value["after"]
    assert after["status"] in {"received", "processing", "supplement_requested", "resolved"} | {
        "rejected",
        "withdrawn",
    }
    assert isinstance(after["status_history"], list) and after["status_history"]
    assert after["status_history"][0]["at"].tzinfo is not None
    source = rows_of(url, table)[after["dossier_id"]]
    assert after["received_at"] == utc(source["received_at"])
    assert history(after["status_history"]) == history(source["status_history"])
    assert run(settings, "src").rows == 0  # the position moved past every row


def test_a_missing_required_column_is_refused_naming_table_field_and_type(
    settings: Settings, dataset: str, tmp_path: Path
) -> None:
    url = sqlite_dossiers(tmp_path, 3)
    execute(url, "ALTER TABLE ho_so DROP COLUMN status")
    data = config("sqlite", "source", url, [{"table": "ho_so", "dataset": dataset}], name="src")
    with pytest.raises(ConnectorConfigError) as info:
        register(settings, data)
    text = str(info.value)
    assert "table 'ho_so'" in text
    assert "field 'status' (enum tthc.DossierStatus)" in text
    assert "has no column" in text
    assert ConnectorStore(settings).list() == []  # nothing registered


def test_an_incompatible_column_type_is_refused(
    settings: Settings, dataset: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/hoso.db"
    execute(
        url,
        "CREATE TABLE ho_so (dossier_id VARCHAR(64) PRIMARY KEY, procedure_code TEXT NOT NULL, "
        "procedure_name TEXT NOT NULL, field TEXT NOT NULL, receiving_unit TEXT NOT NULL, "
        "channel TEXT NOT NULL, received_at DATETIME NOT NULL, due_at DATE NOT NULL, "
        "status INTEGER NOT NULL, applicant_name TEXT NOT NULL, updated_at DATETIME NOT NULL)",
    )
    data = config("sqlite", "source", url, [{"table": "ho_so", "dataset": dataset}], name="src")
    with pytest.raises(ConnectorConfigError) as info:
        register(settings, data, dry_run=True)
    text = str(info.value)
    assert "column 'status' (INTEGER) cannot feed field 'status' (enum tthc.DossierStatus)" in text
    assert "column 'due_at' (DATE) cannot feed field 'due_at' (timestamp-millis)" in text
    assert "expected a timestamp column" in text


def test_a_key_other_than_the_datasets_is_refused(
    settings: Settings, dataset: str, tmp_path: Path
) -> None:
    url = sqlite_dossiers(tmp_path, 3)
    tables = [{"table": "ho_so", "dataset": dataset, "key": ["procedure_code"]}]
    with pytest.raises(ConnectorConfigError, match=r"key \(procedure_code\) does not match"):
        register(settings, config("sqlite", "source", url, tables, name="src"), dry_run=True)


def test_an_extra_column_is_not_published(settings: Settings, dataset: str, tmp_path: Path) -> None:
    url = sqlite_dossiers(tmp_path, 5)
    phone = "0909123456"
    execute(
        url,
        "ALTER TABLE ho_so ADD COLUMN so_dien_thoai TEXT",
        "UPDATE ho_so SET so_dien_thoai = '0909123456'",
    )
    data = config("sqlite", "source", url, [{"table": "ho_so", "dataset": dataset}], name="src")
    result = register(settings, data)
    assert result.tables[0].schema.endswith("(unchanged)")
    assert result.warnings == [
        f"column 'so_dien_thoai' is not part of dataset {dataset}: not published"
    ]
    assert "so_dien_thoai" not in [c["name"] for c in result.tables[0].columns]
    report = run(settings, "src")
    assert (report.rows, report.dlq) == (5, 0)
    messages = read_topic(settings, TOPIC_PREFIX + dataset)
    assert len(messages) == 5
    assert all(phone.encode() not in m.raw for m in messages)
    assert all("so_dien_thoai" not in m.value["after"] for m in messages)


def test_a_bad_enum_value_parks_that_row_and_publishes_the_others(
    settings: Settings, dataset: str, tmp_path: Path
) -> None:
    url = sqlite_dossiers(tmp_path, 6)
    execute(
        url,
        "UPDATE ho_so SET status = 'da_tra_ket_qua' WHERE dossier_id = "
        "(SELECT min(dossier_id) FROM ho_so)",
        "ALTER TABLE ho_so ADD COLUMN so_dien_thoai TEXT",
        "UPDATE ho_so SET so_dien_thoai = '0909123456'",
    )
    tables = [{"table": "ho_so", "dataset": dataset, "cursor": "updated_at"}]
    register(settings, config("sqlite", "source", url, tables, name="src"))
    report = run(settings, "src")
    assert (report.rows, report.dlq, report.status) == (6, 1, "ok")
    topic = TOPIC_PREFIX + dataset
    assert len(read_topic(settings, topic)) == 5
    [parked] = list_dead_letters(settings, topic)
    assert parked.stage == "source" and parked.error_class == "DataError"
    assert "column 'status'" in parked.error and "status: expected one of received" in parked.error
    assert "da_tra_ket_qua" not in parked.error  # the reason never holds the value
    assert run(settings, "src").dlq == 0  # the position moved past the parked row
    raw = _dlq_values(settings, topic)
    assert len(raw) == 1 and b"0909123456" not in raw[0]  # no column outside the dataset


def _dlq_values(settings: Settings, topic: str) -> list[bytes]:
    out: list[bytes] = []
    with Consumer(settings, None, decode=False) as consumer:  # type: ignore[arg-type]
        consumer.run_bounded(
            [topic + ".dlq"], lambda b: out.extend(m.raw for m in b), from_beginning=True
        )
    return out


def test_a_dataset_not_in_the_catalogue_keeps_the_derived_schema(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    url = sqlite_dossiers(tmp_path, 3)
    tables = [{"table": "ho_so", "dataset": f"tthc.n{unique}"}]
    result = register(settings, config("sqlite", "source", url, tables, name="src"), dry_run=True)
    assert result.tables[0].schema == "new subject, version 1"
    register(settings, config("sqlite", "source", url, tables, name="src"))
    record = record_schema_of(
        Registry(settings).latest(subject_for(TOPIC_PREFIX + f"tthc.n{unique}")).schema
    )
    types = {f["name"]: f["type"] for f in record["fields"]}
    assert types["status"] == "string" and types["status_history"] == "string"


# ---- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("sink_url", [PG_URL, MYSQL_URL], ids=["postgresql", "mariadb"])
def test_round_trip_sqlite_to_sink_keeps_every_value(
    settings: Settings, dataset: str, tmp_path: Path, unique: str, sink_url: str
) -> None:
    url = sqlite_dossiers(tmp_path, 60, seed=23)
    src = [{"table": "ho_so", "dataset": dataset, "cursor": "updated_at"}]
    register(settings, config("sqlite", "source", url, src, name="src"))
    target = f"dossier_{unique}"
    sink_type = "postgresql" if sink_url == PG_URL else "mariadb"
    dst = [{"table": target, "dataset": dataset}]
    register(settings, config(sink_type, "sink", sink_url, dst, name="dst"))
    try:
        assert run(settings, "src").rows == 60
        assert run(settings, "dst").rows == 60
        source, copied = rows_of(url, "ho_so"), rows_of(sink_url, target)
        assert copied.keys() == source.keys()
        for key, row in source.items():
            got = copied[key]
            for name, value in row.items():
                if name == "status_history":
                    assert history(got[name]) == history(value), key
                else:
                    assert utc(got[name]) == utc(value), (key, name)
    finally:
        drop_tables(sink_url, [target])
