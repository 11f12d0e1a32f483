"""Compatibility decided by the ``avro`` package's reader/writer checker, not by hand rules."""

from __future__ import annotations

import json
from typing import Any

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from bus.errors import SchemaError

MODES = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)


def parse_avro(schema: dict[str, Any]) -> avro.schema.Schema:
    try:
        return avro.schema.parse(json.dumps(schema))
    except (avro.schema.SchemaParseException, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"not a valid Avro schema ({exc})") from exc


def _problems(reader: avro.schema.Schema, writer: avro.schema.Schema, label: str) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = sorted({str(i.value) for i in result.incompatibilities})
    where = ", ".join(sorted(result.locations))
    what = "; ".join(sorted(str(m) for m in result.messages))
    return [f"{label}: {', '.join(kinds)} at {where} ({what})"]


def check_compatibility(
    new: dict[str, Any], history: list[tuple[int, dict[str, Any]]], mode: str
) -> list[str]:
    """Problems of registering ``new`` after ``history`` [(version, schema)] under ``mode``.

    BACKWARD: the new schema reads data written with the old one(s). FORWARD: the old one(s)
    read data written with the new one. FULL: both. Non-transitive modes compare with the
    latest version only; ``*_TRANSITIVE`` with every version. An empty list means compatible.
    """
    if mode not in MODES:
        raise SchemaError(f"compatibility: expected one of {', '.join(MODES)}, got {mode!r}")
    if mode == "NONE" or not history:
        return []
    against = history if mode.endswith("_TRANSITIVE") else history[-1:]
    new_parsed = parse_avro(new)
    problems: list[str] = []
    for version, old in against:
        old_parsed = parse_avro(old)
        if mode.startswith(("BACKWARD", "FULL")):
            problems += _problems(
                new_parsed, old_parsed, f"new schema cannot read version {version}"
            )
        if mode.startswith(("FORWARD", "FULL")):
            problems += _problems(
                old_parsed, new_parsed, f"version {version} cannot read new schema"
            )
    return problems
