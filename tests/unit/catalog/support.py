"""Helpers of the catalogue tests: dataset files, citizens and their change events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import yaml

from bus.catalog.datasets import PublishResult, publish_dataset
from bus.config import Settings
from bus.envelope import canonical_key

DATA = Path(__file__).resolve().parent / "data"
CITIZEN_SCHEMA = DATA / "ward.Citizen.avsc"
HOUSEHOLD_SCHEMA = DATA / "ward.Household.avsc"
FAR_FUTURE = "2099-12-31"


def dataset_doc(name: str, **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "publisher": "cong-an-tp",
        "units": ["79"],
        "schema": str(CITIZEN_SCHEMA),
        "pii": ["citizen_id", "full_name"],
        "description": {"vi": "Dân cư (thử nghiệm)", "en": "Residents (test)"},
        "legal_basis": "Luật Cư trú 2020",
        "frequency": "continuous",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def write_dataset(folder: Path, name: str, **overrides: Any) -> Path:
    path = folder / f"{name}.{len(list(folder.glob('*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(dataset_doc(name, **overrides), allow_unicode=True), "utf-8")
    return path


def publish(settings: Settings, folder: Path, name: str, **overrides: Any) -> PublishResult:
    return publish_dataset(settings, write_dataset(folder, name, **overrides))


def citizen_id(i: int) -> str:
    return f"0790{i:08d}"  # 12 digits, as a CCCD


def citizen(i: int, **overrides: Any) -> dict[str, Any]:
    record = {
        "citizen_id": citizen_id(i),
        "full_name": f"Nguyễn Văn Thử {i}",
        "birth_date": dt.date(1980, 1, 1) + dt.timedelta(days=37 * i),
        "phone": f"09{i:08d}",
        "unit": "26734",
        "household_id": f"HK-{i // 2}",
        "note": "ghi chú" if i % 2 else None,
    }
    record.update(overrides)
    return record


def citizen_event(i: int, unit: str = "79", op: str = "c", **overrides: Any) -> dict[str, Any]:
    record = citizen(i, **overrides)
    return {
        "event_id": f"ev-{unit}-{op}-{i}",
        "op": op,
        "ts_ms": 1_770_000_000_000 + i,
        "source": {
            "agency": "cong-an-tp",
            "unit": unit,
            "system": "csdl-dancu",
            "table": "cong_dan",
            "connector": "dancu-source",
            "position": f"cursor-{i}",
        },
        "key": canonical_key({"citizen_id": record["citizen_id"]}),
        "before": None,
        "after": record,
    }
