"""Dead letters over HTTP (operator; auditors may read): the DLQ topics with their counts, the
entries of one (origin, stage, reason, attempts; never the parked record itself), and the
re-drive after a fix. The same functions as ``lgsp dlq list|replay`` (``bus.dlq_ops``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Depends, Path, Query

from bus.api.auth import allow, context
from bus.catalog.api_keys import KeyInfo
from bus.context import Context
from bus.dlq_ops import dead_letter_topics, list_dead_letters, replay_dead_letters

router = APIRouter(prefix="/dlq", tags=["dead letters"])
read = allow("dlq", "operator", "auditor")
write = allow("dlq", "operator")
TOPIC = Path(
    ...,
    pattern=r"^[A-Za-z0-9._-]{1,249}$",
    description="The origin topic (its DLQ is TOPIC.dlq); letters, digits, '.', '_', '-'.",
)


@router.get("")
def topics(ctx: Context = Depends(context), _: KeyInfo = Depends(read)) -> list[dict[str, Any]]:
    """Every topic with a DLQ and the records parked there."""
    return [
        {"topic": topic, "parked": count}
        for topic, count in dead_letter_topics(ctx.settings).items()
    ]


@router.get("/{topic}")
def entries(
    topic: str = TOPIC,
    limit: int = Query(200, ge=1, le=1000),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(read),
) -> dict[str, Any]:
    """The entries of TOPIC.dlq, oldest first: where each came from and why it was parked."""
    items = []
    for d in list_dead_letters(ctx.settings, topic, limit):
        item = asdict(d)
        item["parked_at"] = dt.datetime.fromtimestamp(d.ts_ms / 1000, dt.UTC).isoformat()
        items.append(item)
    return {"topic": topic, "entries": items}


@router.post("/{topic}/replay")
def replay(
    topic: str = TOPIC, ctx: Context = Depends(context), _: KeyInfo = Depends(write)
) -> dict[str, Any]:
    """Re-drive TOPIC.dlq: entries that now decode go back to TOPIC, the others are parked
    again with one more attempt."""
    return {"topic": topic, **asdict(replay_dead_letters(ctx, topic))}
