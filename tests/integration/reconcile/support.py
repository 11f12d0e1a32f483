"""Helpers of the reconciliation tests: a catalogued ward dataset with PII fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bus.catalog import publish_dataset
from bus.config import Settings
from tests.unit.catalog.support import write_dataset


def publish_ward_dataset(
    settings: Settings, tmp_path: Path, unique: str, record: dict[str, Any], pii: list[str]
) -> None:
    """Publish ``tthc.rc_<unique>`` for ward 26734 with the record schema ``record``, keyed
    by ``id``, whose PII fields are ``pii``."""
    schema_file = tmp_path / f"{record['namespace']}.{record['name']}.avsc"
    schema_file.write_text(json.dumps(record), encoding="utf-8")
    dataset_file = write_dataset(
        tmp_path,
        f"tthc.rc_{unique}",
        publisher="ubnd-phuong-tan-dinh",
        publisher_display="UBND phường Tân Định",
        units=["26734"],
        schema=str(schema_file),
        key=["id"],
        pii=pii,
        description={"vi": "Hồ sơ thử", "en": "Test dossiers"},
        legal_basis="Nghị định 47/2020/NĐ-CP",
        frequency="daily",
    )
    publish_dataset(settings, dataset_file)
