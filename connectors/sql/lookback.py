"""The lookback window of an incremental SQL source: re-read what may have committed late.

A keyset ``(cursor, key) > last`` misses a row whose cursor value is at or below the last one
read but which became visible only after that read: a transaction stamped before a poll and
committed after it (PostgreSQL's ``now()`` is the transaction's start), or, with a cursor of
whole seconds (MariaDB ``DATETIME``), a row of the same second with a lower key. With a
lookback of ``L`` seconds a read starts at ``cursor >= last - L`` instead.

The rows of that window were mostly published already. ``Window`` remembers, in the
position, for every row published with a cursor in the window, grouped by second, a 64-bit
digest of its key and a 64-bit digest of the whole row as published (its cursor value, every
published column, its soft-delete flag): about 22 bytes a row. A row read again is skipped only
when the LAST state published for its key in that second is exactly this one; any other
state (an update within the same second of a whole-second cursor, a change back to an earlier
state) is published again. A digest that was forgotten (the window moved past it, the cap was
reached) only makes a row be published again, which the sink's version rule makes a no-op;
the digests move with the position of the batch that published them, so a row is skipped
only when this very state was acknowledged by the broker before.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from typing import Any

from bus.timeutil import to_epoch_ms
from connectors import positions

MAX_LOOKBACK_S = 7 * 86_400
# digests kept at most (about 30 bytes each in the position); beyond, the oldest cursor
# values are forgotten and their rows, if read again, are re-published (no-ops at the sink)
MAX_SEEN = 20_000

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)?\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, None: 1}


def parse_duration(value: Any, maximum_s: int = MAX_LOOKBACK_S) -> int:
    """Seconds of a lookback (or another duration up to ``maximum_s``): a whole number of
    seconds or ``90s``, ``5m``, ``2h``, ``1d``."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif isinstance(value, float) and value.is_integer():
        seconds = int(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = int(match.group(1)) * _UNIT_S[match.group(2)]
    else:
        raise ValueError("expected a duration such as 30s, 5m or 1h, or a number of seconds")
    if not 0 <= seconds <= maximum_s:
        raise ValueError(f"expected 0 to {maximum_s} seconds ({maximum_s // 86_400} days)")
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


def bucket_of(cursor: Any) -> int:
    """The whole second (since the epoch, naive as UTC) a cursor value falls in: the window
    keeps its digests by second, so that its size follows the rows, not their cursor values."""
    if isinstance(cursor, str):
        cursor = dt.datetime.fromisoformat(cursor)
    if not isinstance(cursor, dt.datetime):
        cursor = dt.datetime.combine(cursor, dt.time())
    return to_epoch_ms(cursor) // 1000


def digest(value: Any) -> bytes:
    """8 bytes identifying a list of column values (a collision needs two rows of the same
    second and key with different states whose SHA-256 prefixes agree)."""
    text = json.dumps(positions.dump(value), separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).digest()[:8]


class Window:
    """The rows published with a cursor in ``[last - lookback, last]``: per second, the digest
    of each key and of the last state published for it, kept in the position as
    ``{"<epoch second>": "<base64 of key digest + state digest pairs>"}``."""

    def __init__(self, seconds: int, saved: Any) -> None:
        self.seconds = seconds
        self.seen: dict[int, dict[bytes, bytes]] = {}
        self._text: dict[int, str] = {}  # each second's saved form, until it changes
        for second, text in saved.items() if isinstance(saved, dict) else []:
            raw = base64.b64decode(text)
            if len(raw) % 16:  # not this layout: forget it (its rows are re-published)
                continue
            pairs = (raw[i : i + 16] for i in range(0, len(raw), 16))
            self.seen[int(second)] = {pair[:8]: pair[8:] for pair in pairs}
            self._text[int(second)] = text
        self.size = sum(len(d) for d in self.seen.values())
        self.skipped = 0
        self._equal: dict[tuple[int, bytes], int] = {}  # equal keyless rows of this read

    def key(
        self, cursor: Any, key: list[Any] | None, row: list[Any], deleted: bool
    ) -> tuple[int, bytes, bytes]:
        """(second, key digest, state digest) of a row read in the window. A table without a
        key (``key`` None) may hold equal rows, each of them a record: the n-th equal row of
        a read is told apart by n (equal rows share their cursor value, so a read always sees
        all of them or none), and its key and state are that pair's digest."""
        second, state = bucket_of(cursor), digest([cursor, row, deleted])
        if key is not None:
            return second, digest(key), state
        count = self._equal[(second, state)] = self._equal.get((second, state), 0) + 1
        keyless = digest([state.hex(), count])
        return second, keyless, keyless

    def published(self, second: int, key: bytes, state: bytes) -> bool:
        """Whether this very state is the last one published for this key in this second."""
        group = self.seen.get(second)
        if group is not None and group.get(key) == state:
            self.skipped += 1
            return True
        return False

    def add(self, second: int, key: bytes, state: bytes) -> None:
        """Remember a row's state about to be published (with the batch that carries it)."""
        group = self.seen.setdefault(second, {})
        if group.get(key) != state:
            if key not in group:
                self.size += 1
            group[key] = state
            self._text.pop(second, None)
            if self.size > MAX_SEEN:
                self._forget(min(self.seen))

    def _forget(self, floor: int) -> None:
        """Forget the seconds below ``floor``, then the oldest while over the cap."""
        for second in sorted(self.seen):
            if second >= floor and self.size <= MAX_SEEN:
                break
            self.size -= len(self.seen.pop(second))
            self._text.pop(second, None)

    def dump(self, last: Any) -> dict[str, str]:
        """The window as the position keeps it, without the seconds below ``last``'s floor."""
        self._forget(bucket_of(cursor_floor(last, self.seconds)))
        out: dict[str, str] = {}
        for second in sorted(self.seen):
            text = self._text.get(second)
            if text is None:
                raw = b"".join(k + v for k, v in sorted(self.seen[second].items()))
                text = self._text[second] = base64.b64encode(raw).decode("ascii")
            out[str(second)] = text
        return out
