"""Synthetic archived messages (no broker): the archiver's append path with made-up values."""

from __future__ import annotations

import hashlib

from bus.consume import Message

TOPIC = "lgsp.79.760.26734.tthc.dossier"


def message(
    offset: int, *, topic: str = TOPIC, partition: int = 0, ts_ms: int | None = None, op: str = "u"
) -> Message:
    payload = b"\x00\x00\x00\x00\x07" + hashlib.sha256(f"{topic}{offset}".encode()).digest() * 4
    return Message(
        topic,
        partition,
        offset,
        None,
        {
            "event_id": f"ev-{topic}-{partition}-{offset}",
            "op": op,
            "ts_ms": ts_ms if ts_ms is not None else 1_772_000_000_000 + offset,
            "key": f'{{"id":{offset % 7}}}',
            "source": {"unit": "26734"},
        },
        7,
        0,
        payload,
    )


def messages(n: int, start: int = 0, **kw: object) -> list[Message]:
    return [message(o, **kw) for o in range(start, start + n)]  # type: ignore[arg-type]
