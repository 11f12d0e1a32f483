"""``--through-mapping`` for a split whose rule chooses the part by a field: old ward 26746
(hcmc-2024) split into new 26740 and 26743 at the 2025 reform; an operator's mapping file gives
the packaged split the street rule. The old ward's PostgreSQL table is compared with each
part's copy (PostgreSQL for 26740, SQLite for 26743) limited to the rows the rule sends there,
through the real broker, reform route and sinks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus import sync
from bus.config import Settings
from bus.connector_service.registration import register
from bus.context import Context
from bus.errors import ConfigurationError
from bus.reconcile.report import Report
from bus.reconcile.service import run_reconcile
from bus.routes.reform import run_reform
from bus.units.timeline import add_change_file, load_timeline
from tests.integration.routes.test_reform import EFFECTIVE
from tests.integration.routes.test_routes import dataset

pytestmark = pytest.mark.integration

RECORD = {
    "type": "record",
    "name": "Parcel",
    "namespace": "t",
    "fields": [
        {"name": "item_id", "type": "string"},
        {"name": "unit", "type": "string"},
        {"name": "street", "type": ["null", "string"], "default": None},
        {"name": "title", "type": "string"},
    ],
}
# the rule: Lê Lợi and Pasteur to new 26740, every other street (or none) to 26743
STREETS = ["Lê Lợi", "Pasteur", "Nguyễn Huệ", "Hàm Nghi", None]


def _connector(name: str, role: str, unit: str, url: str, table: str, ds: str) -> dict:
    entry: dict = {"table": table, "dataset": ds, "key": ["item_id"]}
    if role == "source":
        entry["mode"] = "snapshot"
    return {
        "name": name,
        "type": "postgresql" if url.startswith("postgresql") else "sqlite",
        "role": role,
        "agency": "ubnd-phuong-ben-thanh",
        "unit": unit,
        "connection": {"url": url},
        "tables": [entry],
    }


@pytest.fixture
def split(settings: Settings, tmp_path: Path, unique: str, pg_url: str) -> Iterator[dict]:
    mapping = tmp_path / "split.yaml"
    mapping.write_text(
        json.dumps(
            {
                "name": f"split-26746-{unique}",
                "from": "hcmc-2024",
                "to": "hcmc-2025",
                "effective": EFFECTIVE.isoformat(),
                "changes": [
                    {
                        "old": "26746",
                        "new": ["26740", "26743"],
                        "rule": {
                            "field": "street",
                            "values": {"Lê Lợi": "26740", "Pasteur": "26740"},
                            "default": "26743",
                        },
                    }
                ],
            },
            ensure_ascii=False,
        ),
        encoding="utf-8",
    )
    add_change_file(settings, mapping)
    [change] = load_timeline(settings).changes_of("26746", "hcmc-2024")
    assert change.rule is not None and change.rule.field == "street"  # replaced the packaged

    name = f"t.sf{unique}"
    schema = tmp_path / "t.Parcel.avsc"
    schema.write_text(json.dumps(RECORD), encoding="utf-8")
    dataset(settings, tmp_path, name, ["26746"], schema=schema)
    table = f"parcels_{unique}"
    pg = sa.create_engine(pg_url)
    with pg.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (item_id TEXT PRIMARY KEY, unit TEXT, street TEXT, "
                "title TEXT)"
            )
        )
        conn.execute(
            sa.text(f"INSERT INTO {table} VALUES (:i, '26746', :s, :t)"),  # noqa: S608
            [
                {"i": f"TD-{i:03d}", "s": STREETS[i % len(STREETS)], "t": f"Thửa {i}"}
                for i in range(20)
            ],
        )
    source = f"old-bt-{unique}"
    register(settings, _connector(source, "source", "26746", pg_url, table, name))
    sync.run(settings, source)
    run_reform(Context.build(settings), [name], EFFECTIVE)
    sinks = {
        "26740": (f"new-a-{unique}", pg_url, f"copy_a_{unique}"),
        "26743": (f"new-b-{unique}", f"sqlite:///{tmp_path / 'b.db'}", "copy_b"),
    }
    for unit, (sink, url, copy) in sinks.items():
        register(settings, _connector(sink, "sink", unit, url, copy, name))
        sync.run(Context.build(settings), sink)
    try:
        yield {"name": name, "source": source, "table": table, "sinks": sinks}
    finally:
        with pg.begin() as conn:
            for t in (table, f"copy_a_{unique}"):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {t}"))
        pg.dispose()


def reconciled(settings: Settings, split: dict, sink: str) -> Report:
    return run_reconcile(settings, split["source"], split["table"], sink, through_mapping=True)


def test_each_part_is_compared_with_the_rows_its_rule_sends_there(
    settings: Settings, split: dict
) -> None:
    # 20 rows: streets cycle through 5 values; Lê Lợi and Pasteur (8 rows) went to 26740
    expected = {"26740": 8, "26743": 12}
    for unit, (sink, _, _) in split["sinks"].items():
        report = reconciled(settings, split, sink)
        assert report.agree, json.dumps(report.to_dict(), default=str)[:3000]
        assert report.source.rows == report.target.rows == expected[unit]
        assert any("street" in w for w in report.warnings), report.warnings

    # one wrong row in each part's copy: found in that part only
    wrong = {"26740": "TD-001", "26743": "TD-002"}  # Pasteur; Nguyễn Huệ
    for unit, (_, url, copy) in split["sinks"].items():
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE {copy} SET title = 'sai' WHERE item_id = :k"),  # noqa: S608
                {"k": wrong[unit]},
            )
        engine.dispose()
    for unit, (sink, _, _) in split["sinks"].items():
        report = reconciled(settings, split, sink)
        got = report.to_dict()
        assert got["counts"]["different"] == 1 and got["counts"]["missing"] == 0, got
        assert got["counts"]["extra"] == 0, got
        assert [d["key"] for d in got["different"]] == [{"item_id": wrong[unit]}]


def test_a_sink_of_no_part_is_refused_with_the_reason(
    settings: Settings, split: dict, tmp_path: Path, unique: str
) -> None:
    other = f"new-c-{unique}"
    url = f"sqlite:///{tmp_path / 'c.db'}"
    register(settings, _connector(other, "sink", "79", url, "copy_c", split["name"]))
    with pytest.raises(ConfigurationError, match=r"split by its field 'street' into 26740, 26743"):
        run_reconcile(settings, split["source"], split["table"], other, through_mapping=True)
