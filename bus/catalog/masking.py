"""Deterministic keyed tokens for personal data, and the pure grant transform of an event.

A token is ``tok_`` + base32 of the first 20 bytes of HMAC-SHA256(key, value): the same value
gives the same token (joins across datasets and runs still work), a different value or key a
different token, and without the key a token cannot be turned back into its value. The key is
``pii_key`` from the settings, or a random key generated once in the state folder
(``pii.key``, readable by its owner only).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from bus.config import Settings
from bus.envelope import to_jsonable
from bus.errors import ConfigurationError
from bus.state import home, write_once

TOKEN_PREFIX = "tok_"
KEY_FILE = "pii.key"
_KEY_BYTES = 32


def key_file(settings: Settings) -> Path:
    return home(settings) / KEY_FILE


def load_pii_key(settings: Settings) -> bytes:
    """The token key: ``settings.pii_key``, else the state folder's key file (made on first
    use with a random 256-bit key; concurrent first uses agree on one file)."""
    if settings.pii_key is not None:
        value = settings.pii_key.get_secret_value()
        if len(value) < 16:
            raise ConfigurationError("pii_key: expected at least 16 characters")
        return value.encode("utf-8")
    known = settings.home.expanduser() / KEY_FILE
    try:
        held, seen = _read_keys.get(known), _file_id(known)
    except OSError:
        held = seen = None
    if held is not None and held[0] == seen:
        return held[1]  # the same file as read before (a lookup needs the key every time)
    path = key_file(settings)
    if not path.exists():
        write_once(path, secrets.token_hex(_KEY_BYTES).encode("ascii"))
    try:
        seen = _file_id(path)
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigurationError(f"pii key file {path.name}: cannot read ({exc.strerror})") from exc
    if len(data) < 16:
        raise ConfigurationError(f"pii key file {path.name}: too short (expected 64 hex digits)")
    _read_keys[known] = (seen, data)
    return data


# key files read by this process: path -> (the file's identity when read, its key)
_read_keys: dict[Path, tuple[tuple[int, int, int, int], bytes]] = {}


def _file_id(path: Path) -> tuple[int, int, int, int]:
    """What changes when the file is replaced or rewritten: device, inode, size, mtime."""
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _text(value: Any) -> str:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value).strip()
    if isinstance(value, datetime | date):
        return str(to_jsonable(value))
    if isinstance(value, dict | list):
        return json.dumps(to_jsonable(value), sort_keys=True, ensure_ascii=False)
    return str(to_jsonable(value))


def token(value: Any, key: bytes) -> str:
    """The token of one value (text NFC-normalised and trimmed; dates in ISO form)."""
    digest = hmac.new(key, _text(value).encode("utf-8"), hashlib.sha256).digest()
    return TOKEN_PREFIX + base64.b32encode(digest[:20]).decode("ascii")


def is_token(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX) and len(value) == 36


@dataclass(frozen=True)
class GrantView:
    """What a delivery needs of a grant: allowed fields, PII rule, the dataset's PII and key
    fields, and the token key (never shown)."""

    id: int
    dataset: str
    agency: str
    purpose: str
    legal_basis: str
    fields: tuple[str, ...]
    allow_pii: bool
    pii_fields: frozenset[str]
    key_fields: tuple[str, ...]
    expires: date
    token_key: bytes = field(repr=False, default=b"")
    units: tuple[str, ...] = ()  # the units the grant is written for; none: every unit
    unit_hierarchy: str | None = None

    @property
    def consumer_group(self) -> str:
        return consumer_group(self.agency, self.dataset)


def consumer_group(agency: str, dataset: str) -> str:
    return f"lgsp.grant.{agency}.{dataset}"


def _mask_record(
    record: Mapping[str, Any] | None, allowed: Collection[str], pii: Collection[str], key: bytes
) -> dict[str, Any] | None:
    if record is None:
        return None
    out: dict[str, Any] = {}
    for name, value in record.items():
        if name not in allowed:
            continue
        out[name] = token(value, key) if name in pii and value is not None else value
    return out


def mask_record(record: Mapping[str, Any] | None, grant: GrantView) -> dict[str, Any] | None:
    """A record as the grant lets its agency see it: granted fields only, PII among them as
    tokens unless the grant allows PII (the rule ``apply_grant`` applies to an event)."""
    if not grant.token_key:
        raise ConfigurationError(f"grant {grant.id}: no token key loaded")
    pii: frozenset[str] = frozenset() if grant.allow_pii else grant.pii_fields
    return _mask_record(record, grant.fields, pii, grant.token_key)


def _mask_key(raw: Any, grant: GrantView, pii: Collection[str]) -> Any:
    """Key fields that are PII, or outside the grant, become tokens (identity kept for upserts,
    value hidden)."""
    if raw is None:
        return None
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        # an unparsed key: hide it whole unless nothing in this dataset needs hiding
        return raw if not pii else token(raw, grant.token_key)
    masked = {}
    for name, value in parsed.items():
        hide = name in pii or name not in grant.fields
        masked[name] = token(value, grant.token_key) if hide and value is not None else value
    return json.dumps(masked, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def apply_grant(event: dict[str, Any], grant: GrantView) -> dict[str, Any]:
    """The event as the grant lets its agency see it (pure: no I/O, input left unchanged).

    ``before``/``after`` keep only the granted fields; PII fields among them become tokens
    unless the grant allows PII; key fields that are PII or not granted become tokens in
    ``key``; ``source.position`` (a source cursor, which may hold a value) is dropped unless
    the grant allows PII.
    """
    if not grant.token_key:
        raise ConfigurationError(f"grant {grant.id}: no token key loaded")
    pii: frozenset[str] = frozenset() if grant.allow_pii else grant.pii_fields
    out = {k: v for k, v in event.items() if k not in ("before", "after", "key", "source")}
    source = event.get("source")
    if isinstance(source, Mapping):
        source = dict(source)
        if not grant.allow_pii and source.get("position") is not None:
            source["position"] = None
    out["source"] = source
    out["key"] = _mask_key(event.get("key"), grant, pii)
    out["before"] = mask_record(event.get("before"), grant)
    out["after"] = mask_record(event.get("after"), grant)
    return out


__all__ = [
    "GrantView",
    "apply_grant",
    "consumer_group",
    "is_token",
    "load_pii_key",
    "mask_record",
    "token",
]
