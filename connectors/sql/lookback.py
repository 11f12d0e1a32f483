"""The lookback window of an incremental SQL source: re-read what may have committed late.

A keyset ``(cursor, key) > last`` misses a row whose cursor value is at or below the last one
read but which became visible only after that read: a transaction stamped before a poll and
committed after it (PostgreSQL's ``now()`` is the transaction's start), or, with a cursor of
whole seconds (MariaDB ``DATETIME``), a row of the same second with a lower key. With a
lookback of ``L`` seconds a read starts at ``cursor >= last - L`` instead.

The rows of that window were mostly published already. ``Window`` remembers, in the
position, a 64-bit digest of (key, soft-delete flag) of every row published with a cursor in
the window, grouped by cursor value; a row found again with the same cursor value and digest
is not published again. A digest that was forgotten (the window moved, the cap was reached,
a run crashed before its last batch) only makes a row be published again, which the sink's
version rule makes a no-op; a row is skipped only when this very (cursor, key) was
acknowledged by the broker before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from connectors import positions

MAX_LOOKBACK_S = 7 * 86_400
# digests kept at most (about 30 bytes each in the position); beyond, the oldest cursor
# values are forgotten and their rows, if read again, are re-published (no-ops at the sink)
MAX_SEEN = 20_000

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, None: 1}


def parse_duration(value: Any) -> int:
    """Seconds of a lookback: a whole number of seconds or ``90s``, ``5m``, ``2h``, ``1d``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h, or a number of seconds")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError("expected a duration such as 30s, 5m or 1h, or a number of seconds")
    if not 0 <= seconds <= MAX_LOOKBACK_S:
        raise ValueError(f"expected 0 to {MAX_LOOKBACK_S} seconds (7 days)")
    return seconds


def cursor_floor(value: Any, seconds: int) -> Any:
    """``value - seconds`` for a cursor value: a datetime, a date (to the day, rounded down),
    or the ISO text SQLite stores (returned in the same layout, so that the text comparison
    SQLite makes stays right). Raises ``ValueError`` for anything else."""
    delta = dt.timedelta(seconds=seconds)
    if isinstance(value, dt.datetime):
        return value - delta
    if isinstance(value, dt.date):
        return (dt.datetime.combine(value, dt.time()) - delta).date()
    if isinstance(value, str):
        return _text_floor(value, delta)
    raise ValueError(f"a lookback needs a date or timestamp cursor, not {type(value).__name__}")


def _text_floor(text: str, delta: dt.timedelta) -> str:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            "a lookback needs cursor values stored as ISO dates or timestamps"
        ) from None
    floor = parsed - delta
    if len(text) == 10:  # a date
        return floor.date().isoformat()
    layout = floor.isoformat(sep=text[10], timespec="microseconds")
    head, _, rest = layout.partition(".")
    fraction = re.match(r"\.(\d+)", text[19:])
    digits = len(fraction.group(1)) if fraction else 0
    zone = rest[6:] if parsed.tzinfo is not None else ""
    if zone == "+00:00" and text.endswith("Z"):
        zone = "Z"
    return head + ("." + rest[:digits] if digits else "") + zone


def row_digest(values: list[Any], deleted: bool) -> str:
    """16 hex digits identifying a row among the rows of one cursor value (collisions need
    two rows with the same cursor value): ``values`` are its key, or, for a table without a
    key, all its values (two equal rows are one event anyway)."""
    text = json.dumps(
        [positions.dump(values), deleted],
        separators=(",", ":"),
        ensure_ascii=False,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Window:
    """The rows published with a cursor in ``[last - lookback, last]`` (digests by cursor)."""

    def __init__(self, seconds: int, saved: Any) -> None:
        self.seconds = seconds
        self.seen: dict[Any, set[str]] = {}
        for cursor, digests in saved if isinstance(saved, list) else []:
            self.seen[positions.load(cursor)] = set(digests)
        self.size = sum(len(d) for d in self.seen.values())
        self.skipped = 0
        self.top: Any = None

    def published(self, cursor: Any, digest: str) -> bool:
        """Whether this row was published before with this cursor value."""
        group = self.seen.get(cursor)
        if group is not None and digest in group:
            self.skipped += 1
            return True
        return False

    def add(self, cursor: Any, digest: str) -> None:
        """Remember a row about to be published (with the batch that carries it)."""
        group = self.seen.get(cursor)
        if group is None:
            group = self.seen[cursor] = set()
        if digest not in group:
            group.add(digest)
            self.size += 1
        if self.top is None or cursor > self.top:
            self.top = cursor
        if self.size > MAX_SEEN:
            self.prune(self.top)

    def prune(self, last: Any) -> None:
        """Forget the cursor values below ``last``'s floor, then the oldest beyond the cap."""
        if last is None:
            return
        floor = cursor_floor(last, self.seconds)
        for cursor in sorted(self.seen):
            if cursor >= floor and self.size <= MAX_SEEN:
                break
            self.size -= len(self.seen.pop(cursor))

    def dump(self, last: Any) -> list[list[Any]]:
        """The window as the position keeps it, pruned to ``last``'s floor."""
        self.prune(last)
        return [[positions.dump(c), sorted(d)] for c, d in sorted(self.seen.items())]
