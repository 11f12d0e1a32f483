"""Compatibility decided by the ``avro`` package's reader/writer checker, not by hand rules."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, get_args

import avro.errors
import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from bus.config import CompatibilityMode
from bus.errors import SchemaError
from bus.registry.errors import InvalidCompatibilityError

MODES: tuple[str, ...] = get_args(CompatibilityMode)


def check_mode(mode: str) -> str:
    """A compatibility mode in upper case; ``InvalidCompatibilityError`` names the others."""
    if not isinstance(mode, str) or mode.upper() not in MODES:
        raise _unknown_mode(mode)
    return mode.upper()


def _unknown_mode(mode: object) -> InvalidCompatibilityError:
    return InvalidCompatibilityError(
        f"compatibility: expected one of {', '.join(MODES)}, got {mode!r}"
    )


def parse_avro(schema: dict[str, Any]) -> avro.schema.Schema:
    try:
        with quiet_avro():
            return avro.schema.parse(json.dumps(schema))
    except (avro.errors.AvroException, ValueError, TypeError, KeyError) as exc:
        raise SchemaError(f"not a valid Avro schema ({exc})") from exc


def _problems(reader: avro.schema.Schema, writer: avro.schema.Schema, label: str) -> list[str]:
    result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    kinds = sorted({str(i.value) for i in result.incompatibilities})
    where = ", ".join(sorted(result.locations))
    what = "; ".join(sorted(str(m) for m in result.messages))
    return [f"{label}: {', '.join(kinds)} at {where} ({what})"]


def _inner_record(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset record of an envelope schema, to explain a union-level refusal."""
    for field in schema.get("fields", []) if isinstance(schema, dict) else []:
        if field.get("name") in ("before", "after") and isinstance(field.get("type"), list):
            for branch in field["type"]:
                if isinstance(branch, dict) and branch.get("type") == "record":
                    return branch
    return None


def _explain(reader: dict[str, Any], writer: dict[str, Any], label: str) -> list[str]:
    """Problems of a pair; for envelopes, the record-level reasons (field names) as well."""
    problems = _problems(parse_avro(reader), parse_avro(writer), label)
    inner_r, inner_w = _inner_record(reader), _inner_record(writer)
    if problems and inner_r is not None and inner_w is not None:
        inner = _problems(parse_avro(inner_r), parse_avro(inner_w), f"{label} (record)")
        problems = inner or problems
    return problems


def check_compatibility(
    new: dict[str, Any], history: list[tuple[int, dict[str, Any]]], mode: str
) -> list[str]:
    """Problems of registering ``new`` after ``history`` [(version, schema)] under ``mode``.

    BACKWARD: the new schema reads data written with the old one(s). FORWARD: the old one(s)
    read data written with the new one. FULL: both. Non-transitive modes compare with the
    latest version only; ``*_TRANSITIVE`` with every version. An empty list means compatible.
    """
    if mode not in MODES:  # exactly as stored (check_mode would accept lower case)
        raise _unknown_mode(mode)
    if mode == "NONE" or not history:
        return []
    against = history if mode.endswith("_TRANSITIVE") else history[-1:]
    parse_avro(new)
    problems: list[str] = []
    for version, old in against:
        if mode.startswith(("BACKWARD", "FULL")):
            problems += _explain(new, old, f"new schema cannot read version {version}")
        if mode.startswith(("FORWARD", "FULL")):
            problems += _explain(old, new, f"version {version} cannot read new schema")
    return problems


@contextmanager
def quiet_avro() -> Iterator[None]:
    """The ``avro`` package warns about logical types it does not know (local-timestamp-*)
    and then treats them as their base type, which is what the compatibility check needs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=avro.errors.IgnoredLogicalType)
        yield
