"""Which record fields hold a unit code, and a record re-keyed from one code to another: the
one rule the reform's re-keying route, the reports and the reconciliation share."""

from __future__ import annotations

from typing import Any


def is_unit_field(name: str) -> bool:
    """The record fields that hold a unit code: ``unit`` and ``*_unit``."""
    return name == "unit" or name.endswith("_unit")


def rekey_record(record: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``record`` with every unit field that holds ``old`` set to ``new``."""
    return {
        k: (new if is_unit_field(k) and isinstance(v, str) and v == old else v)
        for k, v in record.items()
    }
