"""Counts conserved by the re-keying route over the packaged mapping, with generated
residents and dossiers for every ward of the former District 1 and Bình Tân (20 wards): the
records each new ward's topic receives equal the sum over the old wards the mapping file
sends to it (computed from the data file itself), and their unit fields hold the new code."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from bus.config import PROJECT_ROOT, Settings
from bus.context import Context
from bus.envelope import make_event
from bus.generate.datasets import generate
from bus.publish import Publisher
from bus.routes.reform import run_reform
from bus.units import load_hierarchy
from tests.integration.routes.test_reform import EFFECTIVE
from tests.integration.routes.test_routes import dataset, read_all

pytestmark = pytest.mark.integration

MAPPING = json.loads(
    resources.files("bus").joinpath("data", "unit-mapping-2025.json").read_text("utf-8")
)["mappings"]
CASES = {  # generated dataset -> (schema file, key field, unit field)
    "tthc.dossier": ("tthc.Dossier.avsc", "dossier_id", "receiving_unit"),
    "dancu.resident": ("dancu.Resident.avsc", "citizen_id", "unit"),
}


def _catalogue(settings: Settings, tmp_path: Path, name: str, wards: list[str], case: str) -> None:
    schema, key, _ = CASES[case]
    dataset(settings, tmp_path, name, wards, PROJECT_ROOT / "schemas" / schema, key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_records_of_20_wards_are_conserved(
    settings: Settings, tmp_path: Path, unique: str, case: str
) -> None:
    old = load_hierarchy("hcmc-2024")
    wards = [u.code for d in ("760", "777") for u in old.children(d)]
    assert len(wards) == 20
    _, key, unit_field = CASES[case]
    name = f"{case.split('.')[0]}.g{unique}"
    _catalogue(settings, tmp_path, name, wards, case)
    sent: Counter = Counter()
    with Publisher(settings) as pub:
        for i, ward in enumerate(wards):
            records = list(
                generate(
                    case, 2 + i % 4, 100 + i, [ward], dt.date(2025, 1, 1), dt.date(2025, 6, 30)
                )
            )
            assert records and all(r[unit_field] == ward for r in records)
            source = {"agency": "ubnd", "unit": ward, "system": "gen", "position": str(i)}
            events = [
                make_event(
                    op="c",
                    key={key: r[key]},
                    source=source,
                    ts_ms=1_740_000_000_000 + j,
                    after=r,
                )
                for j, r in enumerate(records)
            ]
            pub.publish(f"lgsp.{old.path(ward)}.{name}", events)
            sent[ward] = len(records)

    report = run_reform(Context.build(settings), [name], EFFECTIVE)

    expected: Counter = Counter()  # straight from the mapping file: each entry's named ward
    for entry in MAPPING:
        if entry["old"] in sent:
            expected[entry["new"]] += sent[entry["old"]]
    new = load_hierarchy("hcmc-2025")
    got: Counter = Counter()
    for code in expected:
        for m in read_all(settings, f"lgsp.{new.path(code)}.{name}"):
            assert m.value["after"][unit_field] == code
            assert m.value["source"]["unit"] in sent
            got[code] += 1
    assert got == expected
    assert sum(got.values()) == sum(sent.values()) == report.rows_out == report.rows_in
    assert report.unmapped == {}
