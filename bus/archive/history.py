"""The full history of one key of a dataset across the hash chains of the archive.

Every archived event of the key (an event rolled up to district and city topics is one event
with an entry in each topic's chain), in event-time order, each with its positions in the
chains, and whether each chain it sits in verifies (``bus.archive.verify``): ``verified``
(the chain is intact and the entry signed by a checkpoint), ``unsigned`` (the chain is intact
up to its signed position, the entry was appended since) or ``failed`` (the chain does not
verify). Events still only on the broker are not part of the chains and are not listed.

A key is given as text: the canonical JSON object of the key fields, or the plain value when
the dataset has one key field (read as a number when that field is an int or long).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from bus.archive.models import ArchiveEntry
from bus.archive.verify import verify
from bus.config import Settings
from bus.db import open_engine
from bus.envelope import canonical_key
from bus.errors import ConfigurationError, NotFoundError
from bus.registry import Registry
from bus.serde import AvroCodec

MAX_KEY_CHARS = 1000
entry_t = ArchiveEntry.__table__


def _field_type(record_schema: dict[str, Any], name: str) -> Any:
    for item in record_schema.get("fields", []):
        if item["name"] == name:
            kind = item["type"]
            if isinstance(kind, list):
                kind = next((k for k in kind if k != "null"), "null")
            return kind.get("type") if isinstance(kind, dict) else kind
    return None


def key_from_text(record_schema: dict[str, Any], key_fields: list[str], text: str) -> str:
    """The canonical key JSON of ``text`` (a JSON object of the key fields, or the value of
    the single key field); errors name the field ``key``, never the value."""
    if not text or len(text) > MAX_KEY_CHARS:
        raise ConfigurationError(f"key: expected 1 to {MAX_KEY_CHARS} characters")
    if "\x00" in text:  # no database keeps it in text (PostgreSQL refuses it)
        raise ConfigurationError("key: contains a NUL character")
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ConfigurationError("key: not valid JSON (expected an object)") from None
        if not isinstance(parsed, dict) or set(parsed) != set(key_fields):
            raise ConfigurationError(
                f"key: expected a JSON object of the key fields {', '.join(key_fields)}"
            )
        return canonical_key(parsed)
    if len(key_fields) != 1:
        raise ConfigurationError(
            f"key: the dataset's key has the fields {', '.join(key_fields)}: give it as a JSON "
            "object"
        )
    name = key_fields[0]
    value: Any = text
    if _field_type(record_schema, name) in ("int", "long"):
        try:
            value = int(text)
        except ValueError:
            raise ConfigurationError(f"key: expected a whole number for {name}") from None
    return canonical_key({name: value})


@dataclass
class Position:
    topic: str
    partition: int
    seq: int
    epoch: int
    offset: int
    status: str = "failed"  # verified | unsigned | failed


@dataclass
class KeyEvent:
    event_id: str
    op: str
    ts_ms: int
    source_unit: str
    event: dict[str, Any]
    positions: list[Position] = field(default_factory=list)

    @property
    def verified(self) -> bool:
        return all(p.status == "verified" for p in self.positions)


@dataclass
class ChainCheck:
    topic: str
    partition: int
    ok: bool
    head_seq: int
    signed_seq: int
    problems: list[str]


@dataclass
class KeyHistory:
    dataset: str
    key: str
    events: list[KeyEvent]
    chains: list[ChainCheck]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chains)


def key_history(
    settings: Settings, dataset: str, key: str, *, public_keys: Any = None
) -> KeyHistory:
    """Every archived event of ``key`` (canonical key JSON) in ``dataset``, with its chain
    positions, and the verification of the chains they sit in."""
    columns = [entry_t.c[n] for n in ("topic", "kafka_partition", "seq", "epoch", "kafka_offset")]
    query = (
        select(
            *columns,
            entry_t.c.event_id,
            entry_t.c.op,
            entry_t.c.ts_ms,
            entry_t.c.source_unit,
            entry_t.c.payload,
        )
        .where(entry_t.c.dataset == dataset, entry_t.c.event_key == key)
        .order_by(entry_t.c.ts_ms, entry_t.c.topic, entry_t.c.kafka_partition, entry_t.c.seq)
    )
    with open_engine(settings).connect() as conn:
        rows = conn.execute(query).all()
    if not rows:
        raise NotFoundError(f"dataset {dataset!r}: the archive holds no event of this key")
    codec = AvroCodec(Registry(settings))
    events: dict[str, KeyEvent] = {}
    for topic, partition, seq, epoch, offset, event_id, op, ts_ms, unit, payload in rows:
        event = events.get(event_id)
        if event is None:
            decoded = codec.decode(bytes(payload))[1]
            event = events[event_id] = KeyEvent(event_id, op, ts_ms, unit, decoded)
        event.positions.append(Position(topic, partition, seq, epoch, offset))
    checked = verify(
        settings,
        topics={p.topic for e in events.values() for p in e.positions},
        public_keys=public_keys,
        allow_unsigned_tail=True,
    )
    general = [str(p) for p in checked.problems if p.topic is None]
    chains: dict[tuple[str, int], ChainCheck] = {}
    for summary in checked.chains:
        problems = general + [
            str(p)
            for p in checked.problems
            if (p.topic, p.partition) == (summary.topic, summary.partition)
        ]
        chains[(summary.topic, summary.partition)] = ChainCheck(
            summary.topic,
            summary.partition,
            not problems,
            summary.head_seq,
            summary.signed_seq,
            problems,
        )
    for event in events.values():
        for pos in event.positions:
            chain = chains.get((pos.topic, pos.partition))
            if chain is None or not chain.ok:
                pos.status = "failed"
            else:
                pos.status = "verified" if pos.seq <= chain.signed_seq else "unsigned"
    used = {(p.topic, p.partition) for e in events.values() for p in e.positions}
    for topic, partition in used - set(chains):
        mine = [str(p) for p in checked.problems if (p.topic, p.partition) == (topic, partition)]
        chains[(topic, partition)] = ChainCheck(
            topic, partition, False, 0, 0, general + (mine or ["the chain was not verified"])
        )
    return KeyHistory(
        dataset,
        key,
        list(events.values()),
        [c for k, c in sorted(chains.items()) if k in used],
    )
