"""The chunked re-snapshot's rule (``connectors.sql.chunked_snapshot``) against a model of
PostgreSQL, no servers: for every interleaving of transactions (begin and write, commit
timestamp, commit record, becoming visible, abort), stream deliveries, keepalives, chunk reads
and crashes, the topic applied by the sinks' version rule (``_lgsp_ts_ms``, not older wins,
ties to the later event; ``on_delete`` delete or mark) and applied in order both end with the
source's final state, and per key the positions never go back.

The model keeps what PostgreSQL guarantees and nothing more: a key is locked by its writer until
that writer becomes visible; commit records are streamed in WAL order once written; visibility
may come in any order after the commit record (not the WAL order); a commit timestamp is taken
before the commit record, by less than ``GUARD_MS``; a chunk's snapshot (xmin, xmax, the xids
in progress) and high watermark (the WAL insert position) are read together, after the clock.
One assumption is the module's: a restart takes longer than the time between a streamed commit
record and its transaction becoming visible (the changes streamed before a crash are not kept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import Stream
from connectors.sql import pgoutput as pg
from connectors.sql.chunked_snapshot import (
    Chunk,
    ChunkedSnapshots,
    Mark,
    Watermark,
    progress_of,
    request,
    snapshot_ms,
)
from connectors.sql.sink import newest_per_key

TABLES = ("t", "u")
KEYS = 4  # per table
XID32 = 1 << 32
KINDS = ("begin", "ts", "record", "visible", "abort", "deliver", "keepalive", "crash")
# how often each kind is drawn (a crash or an abort now and then)
WEIGHTED = (*KINDS, *KINDS[:3], *KINDS[:3], *KINDS[5:7], *KINDS[5:7])
Step = tuple[str, int, int, bool, int]


@dataclass(eq=False)
class Txn:
    xid: int  # 64-bit, as pg_current_snapshot() gives it; the stream sends it on 32 bits
    writes: dict[int, int | None]  # key: new value, None for a delete
    ts: int | None = None  # commit timestamp (taken before the commit record)
    lsn: int | None = None  # its commit record's position
    visible: bool = False


@dataclass
class Source:
    """The database: every key's versions (its writer, its value) and the WAL."""

    next_xid: int
    versions: dict[int, list[tuple[Txn | None, int | None]]]
    clock: int = 100_000
    insert_lsn: int = 1_000
    locks: dict[int, Txn] = field(default_factory=dict)
    running: list[Txn] = field(default_factory=list)  # began, not visible, not aborted
    wal: list[Txn] = field(default_factory=list)  # commit records in WAL order
    value: int = 0

    def latest(self, key: int) -> int | None:
        held = self.versions.get(key)
        return held[-1][1] if held else None

    def seen(self, key: int) -> int | None:
        """The key's value in a snapshot taken now."""
        for txn, value in reversed(self.versions.get(key, [])):
            if txn is None or txn.visible:
                return value
        return None

    def begin(self, keys: set[int], delete: bool) -> None:
        free = {k for k in keys if k not in self.locks}
        if not free:
            return
        txn = Txn(self.next_xid, {})
        self.next_xid += 1
        for key in sorted(free):
            if delete and self.latest(key) is not None:
                txn.writes[key] = None
            else:
                self.value += 1
                txn.writes[key] = self.value
            self.versions.setdefault(key, []).append((txn, txn.writes[key]))
            self.locks[key] = txn
        self.running.append(txn)

    def release(self, txn: Txn) -> None:
        self.running.remove(txn)
        for key in txn.writes:
            del self.locks[key]

    def abort(self, txn: Txn) -> None:
        for key in txn.writes:
            self.versions[key] = [v for v in self.versions[key] if v[0] is not txn]
        self.release(txn)

    def record(self, txn: Txn) -> None:
        txn.lsn = self.insert_lsn
        self.insert_lsn += 1
        self.wal.append(txn)

    def make_visible(self, txn: Txn) -> None:
        txn.visible = True
        self.release(txn)

    def final(self) -> dict[str, int]:
        return {str(k): v for k in self.versions if (v := self.latest(k)) is not None}


def table_of(key: int) -> str:
    return TABLES[key // KEYS]


def chunk_of(
    table: str, mark: Mark, after: int | None, size: int, ts: int, seen: Callable[[int], int | None]
) -> Chunk:
    """The next chunk of ``table`` after key ``after``: at most ``size`` rows as the snapshot
    ``seen`` shows them (``r`` events with ``ts_ms`` ``ts``)."""
    rows: dict[str, Any] = {}
    last = after
    for key in range(len(TABLES) * KEYS):
        if table_of(key) != table or (after is not None and key <= after):
            continue
        value = seen(key)
        if value is None:
            continue
        rows[str(key)] = {
            "key": str(key),
            "op": "r",
            "after": value,
            "ts_ms": ts,
            "source": {"position": None},
        }
        last = key
        if len(rows) == size:
            break
    return Chunk(table, mark, rows, last, len(rows) < size, len(rows))


class Reader:
    """``PgLogReader``'s part: the stream's transactions, the chunks between them, the
    positions kept once published (the stream resumes after the last one kept)."""

    def __init__(self, source: Source, kept: list[dict[str, Any]], size: int) -> None:
        self.source = source
        self.size = size
        self.kept = kept  # positions in the order they were kept (each names its table)
        held = {t: self.held(t) for t in TABLES}
        streams = {t: cast(Stream, Named(t)) for t in TABLES}
        self.chunks = ChunkedSnapshots(streams, held, self.read_chunk)
        resume = kept[-1]["lsn"]
        self.delivered = sum(1 for t in source.wal if cast(int, t.lsn) <= resume)
        self.acked = {k: v for k, v in kept[-1].items() if k not in ("chunked", "table")}

    def held(self, table: str) -> dict[str, Any]:
        return next(p for p in reversed(self.kept) if p["table"] == table)

    def read_chunk(self, stream: Stream, progress: dict[str, Any]) -> Chunk:
        src = self.source
        progress["size"] = self.size
        ts = snapshot_ms(src.clock)  # the clock first, then the snapshot and H
        xids = frozenset(t.xid for t in src.running)
        mark = Watermark(min(xids, default=src.next_xid), src.next_xid, xids, src.insert_lsn)
        return chunk_of(stream.name, mark, progress.get("after"), self.size, ts, src.seen)

    def publish(
        self, topic: list[dict[str, Any]], events: list[dict[str, Any]], state: dict[str, Any]
    ) -> None:
        """The broker acknowledged ``events``, then their position is kept."""
        topic.extend(events)
        self.kept.append(state)

    def between(self, topic: list[dict[str, Any]], reached: int) -> None:
        if self.chunks.busy:
            if self.chunks.due(reached):
                table, events, _invalid, state = self.chunks.finish(self.acked)
                self.publish(topic, events, {**state, "table": table})
            self.chunks.start()

    def deliver(self, topic: list[dict[str, Any]]) -> bool:
        if self.delivered >= len(self.source.wal):
            return False
        txn = self.source.wal[self.delivered]
        self.delivered += 1
        lsn = cast(int, txn.lsn)
        stream = {"mode": "log", "phase": "stream", "lsn": lsn}
        for table in TABLES:  # a batch per table, as _flush makes them
            events = []
            for index, (key, value) in enumerate(sorted(txn.writes.items())):
                if table_of(key) != table:
                    continue
                self.chunks.observe(txn.xid % XID32, table, [str(key)])
                events.append(
                    {
                        "key": str(key),
                        "op": "d" if value is None else "u",
                        "after": value,
                        "ts_ms": txn.ts,
                        "source": {"position": f"{pg.lsn_text(lsn)}:{index}"},
                    }
                )
            if events:
                state = self.chunks.carry(table, stream)
                self.publish(topic, events, {**state, "table": table})
                self.acked = stream
        self.between(topic, lsn + 1)
        return True

    def keepalive(self, topic: list[dict[str, Any]]) -> None:
        """The server sent everything decoded before its next commit record (or the end)."""
        wal = self.source.wal
        sent = wal[self.delivered].lsn if self.delivered < len(wal) else self.source.insert_lsn
        self.between(topic, cast(int, sent))


@dataclass
class Named:
    """What the readers use of a ``Stream``."""

    name: str
    record_schema: dict[str, Any] = field(default_factory=dict)


def _pick(items: list[Txn], n: int) -> Txn | None:
    return items[n % len(items)] if items else None


def play(
    steps: list[Step], initial: dict[int, int], base_xid: int, size: int
) -> tuple[Source, list[dict[str, Any]], bool]:
    src = Source(base_xid, {k: [(None, v)] for k, v in initial.items()})
    src.value = max(initial.values(), default=0)
    kept = [
        {**request({"mode": "log", "phase": "stream", "lsn": 0}, t, 0), "table": t} for t in TABLES
    ]
    reader = Reader(src, kept, size)
    topic: list[dict[str, Any]] = []
    crashed = False
    for kind, a, b, flag, tick in steps:
        src.clock += tick
        if kind == "begin":
            src.begin({a, b}, flag)
        elif kind == "ts":
            txn = _pick([t for t in src.running if t.ts is None], a)
            if txn is not None:
                txn.ts = src.clock
        elif kind == "record":
            txn = _pick([t for t in src.running if t.ts is not None and t.lsn is None], a)
            if txn is not None:
                src.record(txn)
        elif kind == "visible":
            txn = _pick([t for t in src.running if t.lsn is not None], a)
            if txn is not None:
                src.make_visible(txn)
        elif kind == "abort":
            txn = _pick([t for t in src.running if t.lsn is None], a)
            if txn is not None:
                src.abort(txn)
        elif kind == "deliver":
            reader.deliver(topic)
        elif kind == "keepalive":
            reader.keepalive(topic)
        elif kind == "crash" and reader.chunks.busy:
            crashed = True
            # killed after the last publish (flag: before its position was kept)
            kept = reader.kept[:-1] if flag and len(reader.kept) > len(TABLES) else reader.kept
            for txn in list(src.running):  # a restart outlasts the gap to visibility
                if txn.lsn is not None and txn.lsn < reader.source.insert_lsn:
                    src.make_visible(txn)
            reader = Reader(src, list(kept), size)
    # everything commits; the stream and the chunks finish
    for txn in list(src.running):
        src.clock += 1
        if txn.ts is None:
            txn.ts = src.clock
        if txn.lsn is None:
            src.record(txn)
        src.make_visible(txn)
    while reader.deliver(topic):
        pass
    for _ in range(4 * KEYS + 4):
        if not reader.chunks.busy:
            break
        src.clock += 1
        reader.keepalive(topic)
    assert not reader.chunks.busy, "the chunked snapshot did not finish"
    assert all(progress_of(t, reader.held(t)) is None for t in TABLES)
    return src, topic, crashed


def sink(topic: list[dict[str, Any]], cuts: list[int], mark: bool) -> dict[str, int]:
    """The topic written in batches (cut at ``cuts``) by the sinks' version rule."""
    stored: dict[str, tuple[int, int | None]] = {}
    bounds = sorted({c % (len(topic) + 1) for c in cuts} | {0, len(topic)})
    for start, end in zip(bounds, bounds[1:], strict=False):
        for _i, event in newest_per_key(topic[start:end]):
            key, ts = event["key"], int(event["ts_ms"])
            held = stored.get(key)
            if held is not None and held[0] > ts:
                continue  # the stored row is newer
            if event["after"] is None and not mark:
                stored.pop(key, None)
            else:
                stored[key] = (ts, event["after"])
    return {k: v for k, (_ts, v) in stored.items() if v is not None}


def earlier(initial: dict[int, int], lost: dict[int, str]) -> list[dict[str, Any]]:
    """The rows the sink had before (from the first snapshot, ts 0), some lost or stale."""
    return [
        {"key": str(k), "op": "r", "after": -1 if lost.get(k) == "stale" else v, "ts_ms": 0}
        for k, v in initial.items()
        if lost.get(k) != "gone"
    ]


def in_order(topic: list[dict[str, Any]]) -> dict[str, int]:
    state: dict[str, int | None] = {}
    for event in topic:
        state[event["key"]] = event["after"]
    return {k: v for k, v in state.items() if v is not None}


def check_topic(
    topic: list[dict[str, Any]],
    final: dict[str, int],
    initial: dict[int, int],
    lost: dict[int, str],
    cuts: list[int],
    mark: bool,
    position: Callable[[str], tuple[int, ...]] | None,
) -> None:
    """The topic applied in order, and by the sinks' version rule over the rows they had
    (``earlier``), ends with the source's ``final`` state; with ``position`` (no crash: a crash
    publishes again what was not kept), per key the positions never go back."""
    assert in_order(topic) == final, "the topic applied in order differs from the source"
    assert sink(earlier(initial, lost) + topic, cuts, mark) == final, "the sink differs"
    if position is not None:
        last: dict[str, tuple[int, ...]] = {}
        for event in topic:
            at = position(event["source"]["position"])
            key = event["key"]
            assert key not in last or at >= last[key], f"position went back: {event}"
            last[key] = at


def position(text: str) -> tuple[int, int]:
    lsn, _, index = text.rpartition(":")
    return pg.parse_lsn(lsn), int(index)


KEY = st.integers(0, len(TABLES) * KEYS - 1)
INITIAL = st.dictionaries(KEY, st.integers(1, 5))
LOST = st.dictionaries(KEY, st.sampled_from(["gone", "stale"]))
CUTS = st.lists(st.integers(0, 400), max_size=6)
STEPS = st.lists(
    st.tuples(
        st.sampled_from(WEIGHTED),
        KEY,
        KEY,
        st.booleans(),
        st.integers(0, 3),
    ),
    min_size=4,
    max_size=80,
)


@settings(max_examples=600, deadline=None)
@given(
    steps=STEPS,
    initial=INITIAL,
    base_xid=st.sampled_from([3, XID32 - 3, 5 * XID32 - 2]),
    size=st.integers(1, 3),
    lost=LOST,
    cuts=CUTS,
    mark=st.booleans(),
)
def test_the_topic_ends_with_the_source_state(
    steps: list[Step],
    initial: dict[int, int],
    base_xid: int,
    size: int,
    lost: dict[int, str],
    cuts: list[int],
    mark: bool,
) -> None:
    src, topic, crashed = play(steps, initial, base_xid, size)
    check_topic(topic, src.final(), initial, lost, cuts, mark, None if crashed else position)


def test_a_change_the_snapshot_did_not_see_drops_the_row() -> None:
    """The example the rule is for: T1 wrote its commit record, the chunk's snapshot does not
    see it yet (it is still in progress), T1 is streamed before the chunk is published."""
    steps: list[Step] = [
        ("begin", 1, 1, False, 1),
        ("ts", 0, 0, False, 1),
        ("record", 0, 0, False, 1),
        ("keepalive", 0, 0, False, 1),  # the chunk reads key 1 = 1 (T1 not visible)
        ("deliver", 0, 0, False, 1),  # T1 streamed: key 1's row is dropped from the chunk
        ("visible", 0, 0, False, 1),
    ]
    src, topic, _ = play(steps, {0: 1, 1: 1}, 10, 2)
    assert [(e["key"], e["op"], e["after"]) for e in topic] == [("1", "u", 2), ("0", "r", 1)]
    assert in_order(topic) == src.final() == {"0": 1, "1": 2}
