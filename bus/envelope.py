"""The change-event envelope every topic carries (Debezium-shaped) and helpers to build one.

An event: ``event_id`` (stable across retries), ``op`` (c/u/d/r), ``ts_ms`` (change time at the
source), ``source`` {agency, unit, system, table, connector, position}, ``key`` (canonical JSON
of the primary key, its text byte-exact), ``before`` and ``after`` (the dataset's record, or null).
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import hashlib
import json
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastavro.repository.base import SchemaRepositoryError
from fastavro.schema import SchemaParseException, UnknownType, load_schema

from bus.errors import SchemaError

OPS = ("c", "u", "d", "r")
RECORD_PLACEHOLDER = "lgsp.Record"


def _plain(value: Any) -> Any:
    """JSON-friendly rendering used for keys and positions (stable across dialects)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC)
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value  # text as it is: a key's bytes identify it (``bus.text``)


def to_jsonable(value: Any) -> Any:
    """Recursively turn Avro-side Python values into JSON values."""
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return _plain(value)


def canonical_key(key: dict[str, Any]) -> str:
    """The key as canonical JSON: sorted fields, UTC timestamps, plain decimals, and text
    exactly as the source holds it (never normalised: NFC and NFD spellings are two keys)."""
    return json.dumps(
        {k: _plain(v) for k, v in key.items()},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def stable_event_id(*parts: Any) -> str:
    """A deterministic event id from the parts that identify a change (same change, same id)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(_plain(part), ensure_ascii=False, default=str).encode())
        digest.update(b"\x1f")
    return digest.hexdigest()[:32]


def make_event(
    *,
    op: str,
    key: dict[str, Any],
    source: dict[str, Any],
    ts_ms: int,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    if op not in OPS:
        raise ValueError(f"op: expected one of {', '.join(OPS)}, got {op!r}")
    src = {"table": None, "connector": None, "position": None, **source}
    key_json = canonical_key(key)
    return {
        "event_id": event_id or stable_event_id(src.get("connector"), key_json, op, ts_ms),
        "op": op,
        "ts_ms": int(ts_ms),
        "source": src,
        "key": key_json,
        "before": before,
        "after": after,
    }


def record_fullname(schema: dict[str, Any]) -> str:
    name = str(schema["name"])
    if "." in name or not schema.get("namespace"):
        return name
    return f"{schema['namespace']}.{name}"


@lru_cache(maxsize=8)
def _template(schemas_dir: str) -> tuple[dict[str, Any], dict[str, Any]]:
    base = Path(schemas_dir)
    try:
        env = json.loads((base / "lgsp.Envelope.avsc").read_text(encoding="utf-8"))
        src = json.loads((base / "lgsp.Source.avsc").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"schemas_dir: cannot read the envelope schema files ({exc})") from exc
    return env, src


def envelope_schema(record_schema: dict[str, Any], schemas_dir: Path) -> dict[str, Any]:
    """The value schema of a dataset topic: the envelope around the dataset's record."""
    env, src = _template(str(schemas_dir))
    env = copy.deepcopy(env)
    full = record_fullname(record_schema)
    namespace, _, name = full.rpartition(".")
    env["name"] = f"{name}Envelope"
    env["namespace"] = namespace or "lgsp"
    first = True
    for field in env["fields"]:
        if field["type"] == "lgsp.Source":
            field["type"] = copy.deepcopy(src)
        elif isinstance(field["type"], list) and RECORD_PLACEHOLDER in field["type"]:
            branch = copy.deepcopy(record_schema) if first else full
            field["type"] = ["null", branch]
            first = False
    return env


def load_record_schema(path: Path) -> dict[str, Any]:
    """Load a record schema file, resolving named types from sibling ``<name>.avsc`` files."""
    try:
        return dict(load_schema(str(path), _write_hint=False))
    except FileNotFoundError as exc:
        raise SchemaError(f"schema file does not exist: {path}") from exc
    except SchemaRepositoryError as exc:
        cause = exc.__cause__
        detail = f"{exc}: {cause}" if cause else str(exc)
        raise SchemaError(f"{path.name}: not a valid Avro schema ({detail})") from exc
    except (SchemaParseException, UnknownType, ValueError, KeyError, TypeError) as exc:
        raise SchemaError(f"{path.name}: not a valid Avro schema ({exc})") from exc


def record_schema_of(envelope: dict[str, Any]) -> dict[str, Any]:
    """The dataset record schema inside an envelope schema."""
    for field in envelope.get("fields", []):
        if field["name"] in ("before", "after") and isinstance(field["type"], list):
            for branch in field["type"]:
                if isinstance(branch, dict):
                    return branch
    raise SchemaError("not an envelope schema: no record in 'before'/'after'")
