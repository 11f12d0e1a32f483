"""Source positions as JSON that keeps Python types (a cursor may be a timestamp or a decimal).

``dump`` turns datetimes, dates, times, decimals and bytes into tagged objects
(``{"$dt": "2025-07-01T08:00:00.123456+00:00"}``); ``load`` restores them exactly, so that a
keyset query resumes at the very row where the previous run stopped.

A keyset position holds the last row's primary-key values, which may be personal data (a
citizen ID): the control database keeps them, ``display``/``describe`` show only the cursor
value and a short digest of the key.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
from typing import Any

# parts of a position a resumed read can do without: it only publishes again what they would
# have let it skip (the lookback window's digests, ``connectors.sql.lookback``); a position
# mark (``lgsp broker restore`` moves a position back to one) keeps the rest
REBUILDABLE = ("seen",)


def essential(position: dict[str, Any] | None) -> dict[str, Any] | None:
    """``position`` without its ``REBUILDABLE`` parts."""
    if position is None:
        return None
    return {k: v for k, v in position.items() if k not in REBUILDABLE}


def dump(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): dump(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [dump(v) for v in value]
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, dt.time):
        return {"$t": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": format(value, "f")}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    return value


def load(value: Any) -> Any:
    if isinstance(value, list):
        return [load(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, raw), *_ = value.items()
            if tag == "$dt":
                return dt.datetime.fromisoformat(raw)
            if tag == "$d":
                return dt.date.fromisoformat(raw)
            if tag == "$t":
                return dt.time.fromisoformat(raw)
            if tag == "$dec":
                return decimal.Decimal(raw)
            if tag == "$b":
                return base64.b64decode(raw)
        return {k: load(v) for k, v in value.items()}
    return value


# ---- shown to people ------------------------------------------------------------------------

_PLAIN = ("mode", "done", "rows", "snapshot_ms", "lag")
# a log position (``connectors.sql.pglog``): WAL positions and the slot's name, no row values;
# (``connectors.sql.mylog``): binlog file, offsets, GTID and the last ts_ms
_PLAIN += ("phase", "lsn", "index", "end", "slot", "file", "pos", "end_file", "gtid", "ts")
HASH_CHARS = 8


def key_digest(values: Any) -> str:
    """``sha256:`` and the first 8 hex digits of a key's canonical JSON: enough to see that a
    position moved, too short to find the key again (many 12-digit citizen IDs share one)."""
    text = json.dumps(dump(values), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:HASH_CHARS]


def _text(value: Any) -> Any:
    value = load(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return key_digest(value)
    return value


def display(position: dict[str, Any] | None) -> dict[str, Any] | None:
    """A position as shown by ``lgsp connector show``: the keyset's key values (the last row's
    primary key, possibly a citizen ID) replaced by ``key_digest``; an incremental position
    keeps its cursor value. Values of keys this module does not know are digested too."""
    if position is None:
        return None
    out: dict[str, Any] = {}
    for name, value in position.items():
        if name in _PLAIN and (value is None or isinstance(value, bool | int | float | str)):
            out[name] = value
        elif name == "lag" and isinstance(value, dict):  # a sink's lag per partition
            out[name] = {str(k): v for k, v in value.items() if isinstance(v, int)}
        elif name == "after":
            out[name] = _after(position.get("mode"), value)
        else:
            out[name] = key_digest(value)
    return out


def _after(mode: Any, after: Any) -> Any:
    if after is None:
        return None
    if not isinstance(after, list):
        return {"key": key_digest(after)}
    shown: dict[str, Any] = {}
    key = after
    if mode == "incremental" and after:
        shown["cursor"] = _text(after[0])
        key = after[1:]
    if key:
        shown["key"] = key_digest(key)
    return shown


def describe(position: dict[str, Any] | None) -> str:
    """One line for a table: ``after 2025-07-01T08:00:00+00:00, key sha256:1a2b3c4d``."""
    return summarize(display(position))


def summarize(shown: dict[str, Any] | None) -> str:
    """:func:`describe` of a position already passed through :func:`display`."""
    if not shown:
        return ""
    parts: list[str] = []
    after = shown.get("after")
    if shown.get("mode") == "snapshot":
        parts.append("snapshot done" if shown.get("done") else "snapshot in progress")
    if shown.get("mode") == "log" and isinstance(shown.get("lsn"), int):
        lsn = int(shown["lsn"])
        where = f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"
        if shown.get("phase") == "snapshot":
            parts.append(f"log: snapshot in progress, stream from {where}")
        else:
            parts.append(f"log at {where}:{shown.get('index')} (slot {shown.get('slot')})")
    if shown.get("mode") == "log" and isinstance(shown.get("file"), str):
        where = f"{shown['file']}:{shown.get('pos')}"
        if shown.get("phase") == "snapshot":
            parts.append(f"binlog: snapshot in progress, stream from {where}")
        else:
            gtid = f", GTID {shown['gtid']}" if shown.get("gtid") else ""
            whole = ", transaction published whole" if shown.get("end") is not None else ""
            parts.append(f"binlog at {where}:{shown.get('index')}{gtid}{whole}")
    if isinstance(after, dict):
        if "cursor" in after:
            parts.append(f"after {after['cursor']}")
        if "key" in after:
            parts.append(f"key {after['key']}")
    if "lag" in shown:
        lag = shown["lag"]
        parts.append(f"lag {sum(lag.values()) if isinstance(lag, dict) else lag}")
    return ", ".join(parts)
