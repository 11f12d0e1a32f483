"""The administrative hierarchy: shipped data, lookups, code mapping, the generator, the CLI."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import unicodedata
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import reset_settings
from bus.errors import ConfigurationError, UnknownUnitError
from bus.units import Hierarchy, Unit, available_hierarchies, hierarchy_from_file, load_hierarchy
from bus.units.hierarchy import CodeMapping

ROOT = Path(__file__).resolve().parents[2]
REFORM = date(2025, 7, 1)


@pytest.fixture(scope="module")
def h24() -> Hierarchy:
    return load_hierarchy("hcmc-2024")


@pytest.fixture(scope="module")
def h25() -> Hierarchy:
    return load_hierarchy("hcmc-2025")


# --- shipped data ------------------------------------------------------------------------


def test_shipped_hierarchies_are_found_as_package_data() -> None:
    assert available_hierarchies() == ["hcmc-2024", "hcmc-2025"]
    assert load_hierarchy("hcmc-2024") is load_hierarchy("hcmc-2024")  # cached


def test_2024_counts_and_levels(h24: Hierarchy) -> None:
    assert h24.levels == ["city", "district", "ward"]
    assert h24.root.code == "79"
    assert h24.root.name == "Thành phố Hồ Chí Minh"
    districts = h24.units(level="district")
    assert len(districts) == 22
    assert {u.parent for u in districts} == {"79"}
    assert h24.get("760").name == "Quận 1"
    assert h24.get("777").name == "Quận Bình Tân"
    wards = h24.children("760")
    assert len(wards) == 10
    assert [w.code for w in wards][0] == "26734"
    assert [w.code for w in wards][-1] == "26761"
    assert all("26734" <= w.code <= "26761" and w.level == "ward" for w in wards)
    assert h24.units(level="ward", parent="760") == wards
    assert len(h24.units(level="ward")) == 273


def test_2025_counts_and_levels(h25: Hierarchy) -> None:
    assert h25.levels == ["city", "ward"]
    assert h25.root.code == "79"
    assert len(h25.children("79")) == 168
    assert len(h25.units(parent="79")) == 168
    assert all(u.level == "ward" for u in h25.children("79"))
    assert len(h25) == 169


def test_validity_dates(h24: Hierarchy, h25: Hierarchy) -> None:
    assert all(u.valid_to == date(2025, 6, 30) for u in h24)
    assert all(u.valid_from == REFORM and u.valid_to is None for u in h25)
    assert h24.get("26734").valid_on(date(2025, 6, 30))
    assert not h24.get("26734").valid_on(REFORM)
    assert h25.get("26737").valid_on(datetime(2026, 1, 1, 8, 0))
    assert not h25.get("26737").valid_on(date(2025, 6, 30))


def test_names_are_nfc_and_clean(h24: Hierarchy, h25: Hierarchy) -> None:
    for h in (h24, h25):
        for u in h:
            assert u.name == unicodedata.normalize("NFC", u.name)
            assert u.name == " ".join(u.name.split())


def test_tan_dinh_and_an_lac(h24: Hierarchy) -> None:
    tan_dinh = h24.get("26734")
    assert tan_dinh == Unit("26734", "Phường Tân Định", "ward", "760", None, date(2025, 6, 30))
    assert h24.path("26734") == "79.760.26734"
    assert h24.parent("26734") == h24.get("760")
    assert [u.code for u in h24.ancestors("26734")] == ["760", "79"]
    assert h24.parent("79") is None
    assert h24.path("79") == "79"
    assert h24.path("760") == "79.760"
    an_lac = h24.get(27460)  # an int code is accepted
    assert an_lac.name == "Phường An Lạc"
    assert an_lac.parent == "777"
    assert an_lac in h24.children("777")
    assert h24.path("27460") == "79.777.27460"


def test_descendants(h24: Hierarchy) -> None:
    below = h24.descendants("79")
    assert len(below) == 22 + 273
    assert below[0].code == "760" and below[1].code == "26734"


def test_unit_is_frozen(h24: Hierarchy) -> None:
    with pytest.raises(AttributeError):
        h24.get("26734").name = "x"  # type: ignore[misc]


def test_unknown_unit_names_code_and_hierarchy(h24: Hierarchy, h25: Hierarchy) -> None:
    with pytest.raises(UnknownUnitError, match=r"'99999'.*'hcmc-2024'"):
        h24.get("99999")
    for call in (h24.parent, h24.children, h24.path, h24.ancestors):
        with pytest.raises(UnknownUnitError):
            call("12345")
    with pytest.raises(UnknownUnitError, match="replaced by 26737 on 2025-07-01"):
        h25.get("26734")
    with pytest.raises(UnknownUnitError, match="not in the administrative hierarchy"):
        h25.get("760")
    with pytest.raises(UnknownUnitError):
        h24.get(None)  # type: ignore[arg-type]


def test_unknown_level_and_hierarchy(h24: Hierarchy) -> None:
    with pytest.raises(ConfigurationError, match="level 'commune'"):
        h24.units(level="commune")
    with pytest.raises(ConfigurationError, match="hierarchy 'hcmc-1999' does not exist"):
        load_hierarchy("hcmc-1999")


def test_default_hierarchy_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LGSP_HIERARCHY", "hcmc-2025")
    reset_settings()
    try:
        assert load_hierarchy().name == "hcmc-2025"
    finally:
        monkeypatch.delenv("LGSP_HIERARCHY")
        reset_settings()


# --- code mapping ------------------------------------------------------------------------


def test_mapping_covers_every_old_ward(h24: Hierarchy, h25: Hierarchy) -> None:
    data = json.loads((ROOT / "bus/data/unit-mapping-2025.json").read_text(encoding="utf-8"))
    assert data["effective"] == "2025-07-01"
    olds = {m["old"] for m in data["mappings"]}
    assert olds == {u.code for u in h24.units(level="ward")}
    for m in data["mappings"]:
        assert m["new"] in h25
        assert all(c in h25 for c in m.get("split_into", []))
        if "split_into" in m:
            assert m["new"] in m["split_into"]


def test_map_code_tan_dinh(h24: Hierarchy, h25: Hierarchy) -> None:
    # Tân Định ward (26734) became part of the new Tân Định ward, code 26737, on 2025-07-01.
    assert h24.map_code("26734", on=date(2025, 6, 30)) == "26734"
    assert h24.map_code("26734", on=REFORM) == "26737"
    assert h25.map_code("26734", on=REFORM) == "26737"
    assert h25.get(h25.map_code("26734", on=REFORM)).name == "Phường Tân Định"
    # Đa Kao (26737) was split; it maps one step (to its default part), not on through 26734's.
    assert h24.map_code("26737", on=REFORM) == "26740"
    assert h25.map_code("26737", on=REFORM) == "26740"
    # Units without a mapping stay as they are; unknown codes are refused.
    assert h24.map_code("760", on=REFORM) == "760"
    assert h25.map_code("79", on=REFORM) == "79"
    with pytest.raises(UnknownUnitError):
        h24.map_code("99999", on=REFORM)


def test_every_old_ward_rolls_up_into_the_new_city(h24: Hierarchy, h25: Hierarchy) -> None:
    for ward in h24.units(level="ward"):
        new = h25.map_code(ward.code, on=REFORM)
        assert h25.path(new) == f"79.{new}"


def test_map_code_follows_successive_dates() -> None:
    units = [Unit("1", "A", "city", None), Unit("10", "B", "ward", "1")]
    maps = [
        CodeMapping("30", "20", date(2030, 1, 1), "t"),
        CodeMapping("20", "10", date(2031, 1, 1), "t"),
    ]
    h = Hierarchy("t", ["city", "ward"], units, maps)
    assert h.map_code("30", on=date(2029, 12, 31)) == "30"
    assert h.map_code("30", on=date(2030, 6, 1)) == "20"
    assert h.map_code("30", on=date(2031, 1, 1)) == "10"


# --- validation of a hierarchy file ------------------------------------------------------


def _write(tmp_path: Path, units: list[dict[str, Any]], levels: Any = None) -> Path:
    path = tmp_path / "units-test.json"
    data = {"name": "test", "levels": levels or ["city", "ward"], "units": units}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _u(code: str, level: str, parent: str | None, **kw: Any) -> dict[str, Any]:
    return {"code": code, "name": f"U{code}", "level": level, "parent": parent, **kw}


def test_hierarchy_file_ok(tmp_path: Path) -> None:
    h = hierarchy_from_file(_write(tmp_path, [_u("1", "city", None), _u("2", "ward", "1")]))
    assert h.path("2") == "1.2"


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ([_u("1", "city", None), _u("1", "ward", "1")], "appears twice"),
        ([_u("1", "city", None), _u("2", "ward", "9")], "not a unit"),
        ([_u("1", "city", None), _u("2", "county", "1")], "level 'county'"),
        ([_u("1", "city", None), _u("2", "city", None)], "exactly one root"),
        ([_u("1", "ward", None)], "root must have level 'city'"),
        ([_u("1", "city", None), _u("2", "city", "1")], "cannot be a child"),
        ([_u("x1", "city", None)], "not all digits"),
        ([_u("1", "city", None, valid_from="2025-13-01")], "ISO date"),
        ([_u("1", "city", None, valid_from="2025-02-01", valid_to="2025-01-01")], "valid_from"),
        ([{"code": "1", "level": "city"}], "missing name"),
    ],
)
def test_hierarchy_file_errors(tmp_path: Path, units: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        hierarchy_from_file(_write(tmp_path, units))


def test_hierarchy_file_not_json(tmp_path: Path) -> None:
    path = tmp_path / "units-bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="cannot read unit data file"):
        hierarchy_from_file(path)


# --- the generator (scripts/build_units.py) on small wheels made here ---------------------


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_units", ROOT / "scripts/build_units.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return path


@pytest.fixture()
def wheels(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "wheels"
    d.mkdir()
    old = [
        {"code": 1, "name": "Hà Nội", "districts": []},
        {
            "code": 79,
            "name": "Thành phố Hồ Chí Minh",
            "districts": [
                {
                    "code": 760,
                    "name": "Quận 1",
                    "wards": [
                        {"code": 26737, "name": "Phường Đa Kao"},
                        {"code": 26734, "name": "Phường  Tân Định"},
                    ],
                }
            ],
        },
    ]
    new = [
        {
            "code": 79,
            "name": "Thành phố Hồ Chí Minh",
            "wards": [
                {"code": 26740, "name": "Phường Sài Gòn"},
                {"code": 26737, "name": unicodedata.normalize("NFD", "Phường Tân Định")},
            ],
        }
    ]
    member = "vietnam_provinces/data/nested-divisions.json"
    _wheel(d / "vietnam_provinces-0.6.0-py3-none-any.whl", {member: json.dumps(old).encode()})
    _wheel(d / "vietnam_provinces-2025.10.1-py3-none-any.whl", {member: json.dumps(new).encode()})
    db = tmp_path / "dataset.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE admin_units_legacy (provinceKey, districtKey, wardKey, districtCode,"
        " ward, wardCode, provinceCode)"
    )
    con.execute("CREATE TABLE admin_units (provinceKey, wardKey, ward, wardCode, provinceCode)")
    p = "thanhphohochiminh"
    con.executemany(
        "INSERT INTO admin_units_legacy VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (p, "quan1", "phuongtandinh", "760", "Phường Tân Định", "26734", "79"),
            (p, "quan1", "phuongdakao", "760", "Phường Đa Kao", "26737", "79"),
        ],
    )
    con.executemany(
        "INSERT INTO admin_units VALUES (?, ?, ?, ?, ?)",
        [  # the source's codes differ from vietnam-provinces': the join is by name
            (p, "phuongtandinh", "Phường Tân Định", "99001", "79"),
            (p, "phuongsaigon", "Phường Sài Gòn", "99002", "79"),
        ],
    )
    con.commit()
    con.close()
    conv = {
        "DICT_PROVINCE_WARD_NO_DIVIDED": {p: {"phuongtandinh": [f"{p}_quan1_phuongtandinh"]}},
        "DICT_PROVINCE_WARD_DIVIDED": {
            p: {
                f"{p}_quan1_phuongdakao": [
                    {"newWardKey": "phuongtandinh", "isDefaultNewWard": False},
                    {"newWardKey": "phuongsaigon", "isDefaultNewWard": True},
                ]
            }
        },
    }
    _wheel(
        d / "vietnamadminunits-1.0.4-py3-none-any.whl",
        {
            "vietnamadminunits/data/converter_2025.json": json.dumps(conv).encode(),
            "vietnamadminunits/data/dataset.db": db.read_bytes(),
        },
    )
    yield d


def test_build_script_makes_loadable_files(tmp_path: Path, wheels: Path) -> None:
    out = tmp_path / "out"
    assert _script().main(["--out-dir", str(out), "--wheel-dir", str(wheels)]) == 0
    h24 = hierarchy_from_file(out / "units-hcmc-2024.json")
    assert [u.code for u in h24.children("760")] == ["26734", "26737"]
    assert h24.get("26734").name == "Phường Tân Định"  # spaces collapsed
    assert h24.get("26734").valid_to == date(2025, 6, 30)
    h25 = hierarchy_from_file(out / "units-hcmc-2025.json")
    assert h25.get("26737").name == "Phường Tân Định"  # NFC
    assert h25.get("26737").valid_from == REFORM
    mapping = json.loads((out / "unit-mapping-2025.json").read_text(encoding="utf-8"))
    assert mapping["mappings"] == [
        {"old": "26734", "new": "26737"},
        {"old": "26737", "new": "26740", "split_into": ["26737", "26740"]},
    ]


# --- CLI ---------------------------------------------------------------------------------


@pytest.fixture()
def runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("LGSP_HIERARCHY", "hcmc-2024")
    reset_settings()
    yield CliRunner()
    reset_settings()


def test_cli_list_districts(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["units", "list", "--level", "district"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["CODE", "LEVEL", "NAME", "PARENT", "PATH"]
    assert len(lines) == 1 + 22
    assert "Quận Bình Tân" in result.output


def test_cli_list_json_by_parent(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["units", "list", "--parent", "760", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["code"] for d in data][0] == "26734" and len(data) == 10
    assert data[0]["path"] == "79.760.26734"


def test_cli_hierarchy_override(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["units", "list", "--hierarchy", "hcmc-2025", "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.output)) == 169
    bad = runner.invoke(cli, ["units", "list", "--hierarchy", "nowhere"])
    assert bad.exit_code == 2
    assert "hierarchy 'nowhere' does not exist" in bad.output


def test_cli_show(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["units", "show", "26734"])
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in ("Phường Tân Định", "ward", "760 Quận 1", "79.760.26734", "2025-06-30"):
        assert expected in out
    assert "children:   0" in out
    district = runner.invoke(cli, ["units", "show", "760", "--json"])
    assert json.loads(district.output)["children"] == 10


def test_cli_show_unknown(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["units", "show", "99999"])
    assert result.exit_code == 2
    assert "error: unit '99999' is not in the administrative hierarchy 'hcmc-2024'" in (
        result.output
    )


def test_cli_list_unknown_level(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["units", "list", "--level", "province"])
    assert result.exit_code == 2
    assert "level 'province'" in result.output


def test_cli_topic(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["units", "topic", "26734", "tthc.dossier"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "lgsp.79.760.26734.tthc.dossier"
    bad = runner.invoke(cli, ["units", "topic", "26734", "TTHC.dossier"])
    assert bad.exit_code == 2
    assert "must be lowercase" in bad.output
