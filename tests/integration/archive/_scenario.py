"""A simulated departmental table whose history is published as change events.

Changes happen at explicit event times; ``snapshot(t)`` is the table as it stood at ``t``
(every change with time <= t applied in time order), i.e. what a ``SELECT *`` at ``t`` gave.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from typing import Any

from bus.envelope import canonical_key, make_event

VN = dt.timezone(dt.timedelta(hours=7))
T0 = dt.datetime(2026, 3, 1, 8, 0, tzinfo=VN)
SOURCE = {"agency": "ubnd-phuong-tan-dinh", "unit": "26734", "system": "hoso"}


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def person(i: int, version: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"Trần Thị Thu Hà {i} v{version}",
        "amount": decimal.Decimal(f"{1000 + i * 10 + version}.{version:02d}"),
        "born": None if i % 3 == 0 else dt.date(1980, 1, 1) + dt.timedelta(days=i * 40),
        "seen": at(version * 7 + i).astimezone(dt.UTC),
    }


@dataclass
class Change:
    minute: float
    op: str
    id: int
    version: int = 0
    unit: str = "26734"


class Source:
    def __init__(self, changes: list[Change]) -> None:
        self.changes = changes
        self.events: list[dict[str, Any]] = []
        state: dict[int, dict[str, Any]] = {}
        for change in sorted(changes, key=lambda c: c.minute):
            before = state.get(change.id)
            after = None if change.op == "d" else person(change.id, change.version)
            if after is None:
                state.pop(change.id, None)
            else:
                state[change.id] = after
            self.events.append(
                make_event(
                    op=change.op,
                    key={"id": change.id},
                    source={**SOURCE, "unit": change.unit},
                    ts_ms=ms(at(change.minute)),
                    before=before,
                    after=after,
                    event_id=f"{change.id}-{change.version}-{change.op}-{change.minute}",
                )
            )

    def snapshot(self, moment: dt.datetime) -> dict[str, dict[str, Any]]:
        state: dict[str, dict[str, Any]] = {}
        for change in sorted(self.changes, key=lambda c: c.minute):
            if at(change.minute) > moment:
                break
            key = canonical_key({"id": change.id})
            if change.op == "d":
                state.pop(key, None)
            else:
                state[key] = person(change.id, change.version)
        return state

    def events_between(self, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
        return [e for e in self.events if ms(start) <= e["ts_ms"] < ms(end)]


# creates, updates and deletes of 8 records over two hours, one deleted and created again
CHANGES = [
    Change(0, "c", 1, 0),
    Change(1, "c", 2, 0),
    Change(2, "c", 3, 0),
    Change(5, "c", 4, 0),
    Change(10, "u", 1, 1),
    Change(12, "c", 5, 0),
    Change(15, "d", 2),
    Change(20, "u", 3, 1),
    Change(25, "c", 6, 0),
    Change(30, "u", 1, 2),
    Change(40, "d", 4),
    Change(45, "c", 2, 1),
    Change(50, "u", 5, 1),
    Change(60, "c", 7, 0),
    Change(70, "d", 1),
    Change(75, "u", 6, 5),
    Change(80, "u", 6, 1),
    Change(90, "c", 8, 0),
    Change(100, "u", 7, 1),
    Change(110, "d", 3),
]


LATE = {"5-1-u-50": "7-0-c-60", "6-5-u-75": "6-1-u-80"}


def publish_order(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Event-time order, except that two updates arrive late (after a later change; one of
    them after a later change of the same key): replay must go by event time, not by offset."""
    rest = [e for e in events if e["event_id"] not in LATE]
    for late_id, after_id in LATE.items():
        late = next(e for e in events if e["event_id"] == late_id)
        index = next(i for i, e in enumerate(rest) if e["event_id"] == after_id)
        rest.insert(index + 1, late)
    return rest
