"""Source positions as JSON that keeps Python types (a cursor may be a timestamp or a decimal).

``dump`` turns datetimes, dates, times, decimals and bytes into tagged objects
(``{"$dt": "2025-07-01T08:00:00.123456+00:00"}``); ``load`` restores them exactly, so that a
keyset query resumes at the very row where the previous run stopped.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from typing import Any


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
