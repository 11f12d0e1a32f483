"""Grants written for units, across the 2025 reform, on the real broker: a delivery and a
lookup decide by each event's (record's) unit and time, never the wall clock.

District 1's old wards Tân Định 26734 → new 26737 (merge), Phạm Ngũ Lão 26749 → new 26743
(merge), Cô Giang 26755 → new 26758 (merge); old Đa Kao 26737 is split, its packaged rule
sending every record to new 26740 (the code 26737 names another ward after the reform).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from bus.api.app import create_app
from bus.catalog import add_agency, add_grant, list_grants, query_access
from bus.catalog.acls import acl_rules
from bus.catalog.api_keys import create_key
from bus.catalog.delivery import deliver
from bus.catalog.errors import InvalidFieldsError
from bus.cli.main import cli
from bus.config import Settings
from bus.context import Context
from bus.envelope import make_event
from bus.lookup.store import sync
from bus.publish import Publisher
from bus.routes.reform import run_reform
from bus.units import load_hierarchy
from bus.units.timeline import effective_ms
from tests.integration.catalog.test_delivery import Collect
from tests.integration.routes.test_reform import EFFECTIVE, JUNE_2025_MS
from tests.integration.routes.test_routes import RECORD, dataset
from tests.unit.catalog.support import FAR_FUTURE

pytestmark = pytest.mark.integration

AUGUST_2025_MS = 1_754_500_000_000  # 2025-08-06
PURPOSE = "Thống kê hồ sơ theo phường"
OLD = {"26734": 3, "26749": 2, "26755": 2}  # old ward -> events of June 2025
NEW = {"26737": 2, "26743": 1}  # new ward -> events of August 2025


def events(unit: str, n: int, ts_ms: int, tag: str) -> list[dict[str, Any]]:
    source = {"agency": "ubnd-phuong", "unit": unit, "system": "hoso", "position": "p1"}
    return [
        make_event(
            op="c",
            key={"item_id": f"{tag}-{unit}-{i}"},
            source=source,
            ts_ms=ts_ms + i,
            after={"item_id": f"{tag}-{unit}-{i}", "unit": unit, "title": f"Hồ sơ {i}"},
        )
        for i in range(n)
    ]


def publish_to(settings: Settings, hierarchy: str, unit: str, name: str, batch: list) -> None:
    with Publisher(settings) as pub:
        topic = f"lgsp.{load_hierarchy(hierarchy).path(unit)}.{name}"
        assert pub.publish(topic, batch, dataset=name).sent == len(batch)


def grant(settings: Settings, name: str, agency: str, units: list[str], hierarchy: str) -> int:
    add_agency(settings, agency, agency)
    return add_grant(
        settings,
        dataset=name,
        agency=agency,
        purpose=PURPOSE,
        legal_basis="Nghị định 47/2020/NĐ-CP",
        fields="item_id,unit,title",
        expires=FAR_FUTURE,
        units=units,
        hierarchy=hierarchy,
    ).id


def before_after(got: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    cut = effective_ms(EFFECTIVE)
    return (
        {e["after"]["item_id"] for e in got if e["ts_ms"] < cut},
        {e["after"]["item_id"] for e in got if e["ts_ms"] >= cut},
    )


@pytest.fixture
def reformed(settings: Settings, tmp_path: Path, unique: str) -> str:
    """June 2025 events of three old wards, the reform's re-keyed copies, August events of
    two new wards."""
    name = f"t.gu{unique}"
    dataset(settings, tmp_path, name, list(OLD))
    for unit, n in OLD.items():
        publish_to(settings, "hcmc-2024", unit, name, events(unit, n, JUNE_2025_MS, "jun"))
    report = run_reform(Context.build(settings), [name], EFFECTIVE)
    assert report.rows_out == sum(OLD.values())
    for unit, n in NEW.items():
        publish_to(settings, "hcmc-2025", unit, name, events(unit, n, AUGUST_2025_MS, "aug"))
    return name


def test_delivery_follows_the_units_across_the_cut_over(
    settings: Settings, reformed: str, cli_env: dict[str, str]
) -> None:
    name = reformed
    total = 2 * sum(OLD.values()) + sum(NEW.values())  # originals, re-keyed copies, new ones
    jun = {f"jun-{u}-{i}" for u, n in OLD.items() for i in range(n)}

    # old ward Tân Định: its own June events, then its successor 26737's (the re-keyed
    # copies and the new ward's August events)
    old_grant = grant(settings, name, "so-a", ["26734"], "hcmc-2024")
    sink = Collect()
    report = deliver(settings, "so-a", name, sink, purpose=PURPOSE)
    assert report.delivered == 3 + 3 + 2 and report.outside == total - 8
    before, after = before_after(sink.events)
    assert before == {f"jun-26734-{i}" for i in range(3)}
    assert after == {f"jun-26734-{i}" for i in range(3)} | {"aug-26737-0", "aug-26737-1"}
    assert {e["after"]["unit"] for e in sink.events if e["ts_ms"] >= effective_ms(EFFECTIVE)} == {
        "26737"
    }
    [entry] = query_access(settings, agency="so-a", action="deliver")
    assert entry.grant_id == old_grant and entry.records == 8
    assert entry.detail["units"] == ["26734"] and entry.detail["unit_hierarchy"] == "hcmc-2024"
    assert entry.detail["outside"] == total - 8
    # a new event outside the units after the first run: passed over, nothing delivered
    publish_to(settings, "hcmc-2025", "26743", name, events("26743", 1, AUGUST_2025_MS, "sep"))
    again = deliver(settings, "so-a", name, Collect(), purpose=PURPOSE)
    assert (again.delivered, again.outside) == (0, 1)

    # new ward 26743: the June history of old Phạm Ngũ Lão merged into it, then its own
    grant(settings, name, "so-b", ["26743"], "hcmc-2025")
    sink = Collect()
    deliver(settings, "so-b", name, sink, purpose=PURPOSE)
    before, after = before_after(sink.events)
    assert before == {"jun-26749-0", "jun-26749-1"}
    assert after == {"jun-26749-0", "jun-26749-1", "aug-26743-0", "sep-26743-0"}

    # the old district 760: every ward below it before, what they became after
    grant(settings, name, "so-c", ["760"], "hcmc-2024")
    sink = Collect()
    report = deliver(settings, "so-c", name, sink, purpose=PURPOSE)
    assert (report.delivered, report.outside) == (total + 1, 0)
    assert before_after(sink.events)[0] == jun

    # a grant on every unit reads both hierarchies' topics after the cut-over
    add_agency(settings, "so-d", "so-d")
    add_grant(
        settings,
        dataset=name,
        agency="so-d",
        purpose=PURPOSE,
        legal_basis="x",
        fields="item_id",
        expires=FAR_FUTURE,
    )
    report = deliver(settings, "so-d", name, Collect(), purpose=PURPOSE)
    assert (report.delivered, report.outside) == (total + 1, 0)

    # the broker's ACLs: the topics whose every event the units cover, in each hierarchy
    reads = {
        r.name
        for r in acl_rules(settings)
        if r.principal == "User:so-a" and r.resource == "topic" and not r.remove
    }
    assert reads == {f"lgsp.79.760.26734.{name}", f"lgsp.79.26737.{name}"}
    writes = {r.name for r in acl_rules(settings) if r.principal == "User:vp-ubnd-tp"}
    assert {f"lgsp.79.26737.{name}", f"lgsp.79.760.26734.{name}"} <= writes  # both eras

    # grant list: which units each grant covers in each era
    out = CliRunner().invoke(cli, ["grant", "list", "--dataset", name, "--json"])
    assert out.exit_code == 0, out.output
    shown = {g["agency"]: g for g in json.loads(out.stdout)}
    eras = {e["hierarchy"]: e["units"] for e in shown["so-a"]["coverage"]}
    assert eras == {"hcmc-2024": ["26734 Phường Tân Định"], "hcmc-2025": ["26737 Phường Tân Định"]}
    eras = {e["hierarchy"]: e["units"] for e in shown["so-b"]["coverage"]}
    assert eras["hcmc-2025"] == ["26743 Phường Bến Thành"]
    assert "26749 Phường Phạm Ngũ Lão" in eras["hcmc-2024"]
    assert shown["so-d"]["coverage"] is None


def test_a_grant_for_an_unknown_unit_is_refused_nothing_stored(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    name = f"t.gx{unique}"
    dataset(settings, tmp_path, name, ["26734"])
    with pytest.raises(InvalidFieldsError, match=r"--unit: 99999 not a unit code of hierarchy"):
        grant(settings, name, "so-x", ["26734", "99999"], "hcmc-2024")
    with pytest.raises(InvalidFieldsError, match=r"--hierarchy: 'hcmc-2099' is unknown"):
        grant(settings, name, "so-x", ["26734"], "hcmc-2099")
    assert list_grants(settings) == []


def test_lookup_decides_by_the_records_unit_and_time(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    name = f"t.gl{unique}"
    schema = tmp_path / "t.Item.avsc"
    schema.write_text(json.dumps(RECORD | {"primary_key": ["item_id"]}), encoding="utf-8")
    dataset(settings, tmp_path, name, ["79"], schema=schema)
    cut = effective_ms(EFFECTIVE)
    rows = {  # key -> (unit field, change time)
        "K1": ("26734", JUNE_2025_MS),  # old Tân Định before the reform
        "K2": ("26737", AUGUST_2025_MS),  # new Tân Định after it
        "K3": ("26749", JUNE_2025_MS),  # old Phạm Ngũ Lão (-> 26743)
        "K4": ("26737", JUNE_2025_MS),  # old Đa Kao: the same code, another ward then
    }
    batch = [
        make_event(
            op="c",
            key={"item_id": k},
            source={"agency": "vp", "unit": "79", "system": "hoso"},
            ts_ms=ts,
            after={"item_id": k, "unit": unit, "title": k},
        )
        for k, (unit, ts) in rows.items()
    ]
    assert all(ts < cut for k, (_, ts) in rows.items() if k != "K2")
    publish_to(settings, "hcmc-2024", "79", name, batch)
    assert sync(Context.build(settings), name).rows == 4
    grant(settings, name, "so-old", ["26734"], "hcmc-2024")
    grant(settings, name, "so-new", ["26737"], "hcmc-2025")
    keys = {a: create_key(settings, a, "consumer")[1] for a in ("so-old", "so-new")}
    client = TestClient(create_app(Context.build(settings)))

    def get(agency: str, key: str) -> int:
        headers = {"Authorization": f"Bearer {keys[agency]}", "X-Purpose": quote(PURPOSE)}
        return client.get(f"/v1/datasets/{name}/records/{key}", headers=headers).status_code

    assert {k: get("so-old", k) for k in rows} == {"K1": 200, "K2": 200, "K3": 403, "K4": 403}
    assert {k: get("so-new", k) for k in rows} == {"K1": 200, "K2": 200, "K3": 403, "K4": 403}
    refused = query_access(settings, agency="so-old", action="refused")
    assert len(refused) == 2 and "outside" in refused[0].detail["why"]

    headers = {"Authorization": f"Bearer {keys['so-new']}", "X-Purpose": quote(PURPOSE)}
    got = client.post(
        f"/v1/datasets/{name}/records:lookup", json={"keys": list(rows)}, headers=headers
    )
    assert got.status_code == 200, got.text
    results = got.json()["results"]
    assert [r["found"] for r in results] == [True, True, False, False]
    assert [r.get("outside", False) for r in results] == [False, False, True, True]
    entry = query_access(settings, agency="so-new", action="lookup")[-1]
    assert entry.records == 2 and entry.detail["outside"] == 2
    # the API's grant list shows the eras too
    listed = client.get("/v1/grants", headers={"Authorization": f"Bearer {keys['so-new']}"})
    [mine] = listed.json()
    assert [e["hierarchy"] for e in mine["coverage"]] == ["hcmc-2024", "hcmc-2025"]
    assert mine["coverage"][0]["units"][0].startswith("26734 ")
