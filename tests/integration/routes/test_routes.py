"""Roll-up ward → district → city and fan-down, on the real broker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bus.config import Settings
from bus.consume import Consumer, Message
from bus.envelope import make_event
from bus.errors import ConfigurationError, IncompatibleSchemaError
from bus.publish import Publisher
from bus.registry import Registry, subject_for
from bus.routes import init_subjects, plan_routes, route_lag, run_fan_down, run_routes
from bus.runs import list_runs
from tests.unit.catalog.support import publish

pytestmark = pytest.mark.integration

WARDS = {
    "26734": "ubnd-phuong-tan-dinh",
    "26737": "ubnd-phuong-da-kao",
    "27460": "ubnd-phuong-an-lac",
}
RECORD = {
    "type": "record",
    "name": "Item",
    "namespace": "t",
    "fields": [
        {"name": "item_id", "type": "string"},
        {"name": "unit", "type": "string"},
        {"name": "title", "type": "string"},
    ],
}


def dataset(
    settings: Settings,
    tmp_path: Path,
    name: str,
    units: list[str],
    schema: Path | None = None,
    key: str = "item_id",
) -> None:
    """Publish ``name`` for ``units``: records of ``schema`` (default :data:`RECORD`) keyed
    by ``key``, no PII (the catalogue tests' dataset file, :mod:`tests.unit.catalog.support`)."""
    if schema is None:
        schema = tmp_path / "t.Item.avsc"
        schema.write_text(json.dumps(RECORD), encoding="utf-8")
    publish(
        settings,
        tmp_path,
        name,
        publisher="vp-ubnd-tp",
        units=units,
        schema=str(schema),
        key=[key],
        pii=None,
        description={"vi": "Thử", "en": "Test"},
        legal_basis="test",
        frequency="daily",
    )


def publish_ward(settings: Settings, name: str, unit: str, n: int) -> list[str]:
    topic = f"lgsp.{'79.760' if unit != '27460' else '79.777'}.{unit}.{name}"
    source = {"agency": WARDS[unit], "unit": unit, "system": "hoso"}
    events = [
        make_event(
            op="c",
            key={"item_id": f"{unit}-{i}"},
            source=source,
            ts_ms=1_790_000_000_000 + i,
            after={"item_id": f"{unit}-{i}", "unit": unit, "title": f"Hồ sơ {i}"},
        )
        for i in range(n)
    ]
    with Publisher(settings) as pub:
        pub.publish(topic, events)
    return [e["event_id"] for e in events]


def read_all(settings: Settings, topic: str) -> list[Message]:
    out: list[Message] = []
    with Consumer(settings, None) as consumer:  # type: ignore[arg-type]
        consumer.run_bounded([topic], out.extend, from_beginning=True, commit=False)
    return out


def test_rollup_ward_district_city(settings: Settings, tmp_path: Path, unique: str) -> None:
    name = f"t.r{unique}"
    dataset(settings, tmp_path, name, list(WARDS))
    with pytest.raises(ConfigurationError, match="route init"):
        plan_routes(settings, name, "district")
    subjects = init_subjects(settings, name)
    assert f"lgsp.79.{name}-value" in subjects and f"lgsp.79.777.{name}-value" in subjects
    ids = []
    for unit, n in (("26734", 7), ("26737", 5), ("27460", 4)):
        ids += publish_ward(settings, name, unit, n)

    district = run_routes(settings, name, "district")
    assert (district.routes, district.rows_in, district.rows_out) == (3, 16, 16)
    city = run_routes(settings, name, "city")
    assert (city.routes, city.rows_in, city.rows_out) == (2, 16, 16)

    at_city = read_all(settings, f"lgsp.79.{name}")
    assert sorted(m.value["event_id"] for m in at_city) == sorted(ids)
    tan_dinh = [m.value for m in at_city if m.value["source"]["unit"] == "26734"]
    assert len(tan_dinh) == 7 and tan_dinh[0]["source"]["agency"] == "ubnd-phuong-tan-dinh"
    assert len(read_all(settings, f"lgsp.79.760.{name}")) == 12

    # rerun: nothing new forwarded, nothing duplicated
    assert run_routes(settings, name, "district").rows_out == 0
    assert run_routes(settings, name, "city").rows_out == 0
    assert len(read_all(settings, f"lgsp.79.{name}")) == 16
    assert set(route_lag(settings, plan_routes(settings, name)).values()) == {0}
    runs = list_runs(settings, kind="route")
    assert runs[0].name == f"{name}:city" and runs[0].status == "success"

    # later records flow on the next run
    publish_ward(settings, name, "26737", 8)  # ids 0..7: 5 re-sent + 3 new events
    assert run_routes(settings, name, "district").rows_out == 8
    assert run_routes(settings, name, "city").rows_out == 8


def test_incompatible_parent_refused_when_planning(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    name = f"t.i{unique}"
    dataset(settings, tmp_path, name, ["26734"])
    init_subjects(settings, name)
    from bus.envelope import envelope_schema

    reg = Registry(settings)
    parent = subject_for(f"lgsp.79.760.{name}")
    reg.set_compatibility(parent, "NONE")
    narrower = {**RECORD, "fields": RECORD["fields"][:2] + [{"name": "title", "type": "int"}]}
    reg.register(parent, envelope_schema(narrower, settings.schemas_dir))
    with pytest.raises(IncompatibleSchemaError, match="parent schema cannot read"):
        plan_routes(settings, name, "district")


def test_fan_down_city_to_wards(settings: Settings, tmp_path: Path, unique: str) -> None:
    name = f"t.f{unique}"
    dataset(settings, tmp_path, name, ["79"])
    from bus.envelope import envelope_schema

    reg = Registry(settings)
    schema = envelope_schema(RECORD, settings.schemas_dir)
    for code in ("26734", "26737"):
        reg.register(subject_for(f"lgsp.79.760.{code}.{name}"), schema)
    source = {"agency": "cong-an-tp", "unit": "79", "system": "csdl-dancu"}
    events = [
        make_event(
            op="c",
            key={"item_id": str(i)},
            source=source,
            ts_ms=i,
            after={"item_id": str(i), "unit": unit, "title": "x"},
        )
        for i, unit in enumerate(["26734", "26737", "26734", "99999"])
    ]
    with Publisher(settings) as pub:
        pub.publish(f"lgsp.79.{name}", events)
    with pytest.raises(ConfigurationError, match="no ward below 777 subscribes"):
        run_fan_down(settings, name, source_unit="777", to_level="ward")
    report = run_fan_down(settings, name, source_unit="79", to_level="ward")
    # unknown ward 99999 is parked, not dropped
    assert report.rows_out == 3 and report.dlq == 1
    assert len(read_all(settings, f"lgsp.79.760.26734.{name}")) == 2
