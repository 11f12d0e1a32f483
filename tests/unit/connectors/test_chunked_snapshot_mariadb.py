"""The chunked re-snapshot's MariaDB watermark (``connectors.sql.mylog.BinlogWatermark``)
against a model of MariaDB, no servers: the real ``ChunkedSnapshots`` and the real
``MyLogReader`` steps that need no server (``_chunk_point``, ``_flush``, ``_commit``,
``_advance``, ``_version``, ``resume_floor``), driven between binlog transactions as
``MyLogReader._events`` drives them. For every interleaving of commits, stream reads (a read
ends at the binlog's end as it was when the read got there), chunk reads, kill -9 restarts
(from the positions kept, the last one maybe lost) and new runs, the topic applied in order and
applied by the sinks' version rule (``_lgsp_ts_ms``, not older wins, ties to the later event;
random batch cuts) both end with the source's final state, no finished chunk is read again,
and, without a crash, per key the positions never go back.

The model keeps what MariaDB guarantees: the binlog holds committed transactions in commit
order at increasing positions; a transaction's binlog time is whole seconds, when its first
statement began (so it may be older than a transaction committed before it); a chunk's
snapshot (``START TRANSACTION WITH CONSISTENT SNAPSHOT``) sees every transaction before the
binlog position P it reports (the binlog's end when it is taken) and none after.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import Batch, Stream
from connectors.sql.chunked_snapshot import Chunk, ChunkedSnapshots, progress_of, request
from connectors.sql.chunked_snapshot import snapshot_ms as clock_ms_of
from connectors.sql.mylog import (
    MODE,
    BinlogWatermark,
    MyLogReader,
    Pending,
    _Txn,
    file_number,
    position_key,
    resume_floor,
    resume_point,
)
from tests.unit.connectors.test_chunked_snapshot import (
    CUTS,
    INITIAL,
    KEY,
    KEYS,
    LOST,
    TABLES,
    Named,
    check_topic,
    chunk_of,
    earlier,
    sink,
    table_of,
)

FILE = "mysql-bin.000001"
HEADER = 4  # where a binlog file's first event starts
KINDS = ("commit", "deliver", "crash", "restart")
WEIGHTED = (*KINDS, "commit", "commit", "deliver", "deliver", "deliver")
Step = tuple[str, int, int, bool, int, int]  # kind, key, key, flag, seconds passing, lag


@dataclass(frozen=True)
class Txn:
    writes: dict[int, int | None]  # key: new value, None for a delete
    seconds: int  # binlog time: when its first statement began
    start: int
    end: int


@dataclass
class Source:
    """The database: every key's value, and the binlog."""

    state: dict[int, int]
    value: int
    clock: int = 100  # seconds
    binlog: list[Txn] = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.binlog[-1].end if self.binlog else HEADER

    def commit(self, keys: set[int], delete: bool, lag: int) -> None:
        writes: dict[int, int | None] = {}
        for key in sorted(keys):
            if delete and key in self.state:
                writes[key] = None
                del self.state[key]
            else:
                self.value += 1
                writes[key] = self.state[key] = self.value
        start = self.end
        self.binlog.append(Txn(writes, self.clock - lag, start, start + 10 + 7 * len(writes)))

    def final(self) -> dict[str, int]:
        return {str(k): v for k, v in self.state.items()}


def finished(kept: list[dict[str, Any]], table: str) -> tuple[int, int]:
    """How many of the table's chunks were published and kept, and the last key they read."""
    held = [h for p in kept if p["table"] == table and (h := progress_of(table, p)) is not None]
    covered = [int(p["covered"]) for p in kept if p["table"] == table and "covered" in p]
    return max((int(h.get("chunks", 0)) for h in held), default=0), max(covered, default=-1)


class Run:
    """One run of ``MyLogReader`` from the positions kept, between binlog transactions."""

    def __init__(self, source: Source, kept: list[dict[str, Any]], topic: list[Any], size: int):
        self.source, self.kept, self.topic, self.size = source, kept, topic, size
        connector = SimpleNamespace(batch_size=size, name="m")
        streams = [cast(Stream, Named(t)) for t in TABLES]
        self.reader = reader = MyLogReader(SimpleNamespace(connector=connector), streams)
        held = {t: self.held(t) for t in TABLES}
        reader._chunks = ChunkedSnapshots(reader.streams, held, self.read_chunk)
        reader._acked = {t: dict(h) for t, h in held.items() if position_key(h) is not None}
        reader._ts_floor = resume_floor(reader._acked.values())
        start = min(resume_point(s)[1] for s in reader._acked.values())
        self.next = sum(1 for t in source.binlog if t.start < start)
        self.pending: list[Pending] = []
        self.last: tuple[str, int, str | None] | None = None
        self.done = False

    def held(self, table: str) -> dict[str, Any]:
        kept = next(p for p in reversed(self.kept) if p["table"] == table)
        return {k: v for k, v in kept.items() if k not in ("table", "covered")}

    def read_chunk(self, stream: Stream, progress: dict[str, Any]) -> Chunk:
        src = self.source
        chunks, covered = finished(self.kept, stream.name)
        after = progress.get("after")
        again = int(progress.get("chunks", 0)) < chunks or (after is None and covered >= 0)
        assert not again and (after is None or after >= covered), (
            f"a finished chunk of {stream.name} read again: {progress}"
        )
        progress["size"] = self.size
        ts = clock_ms_of(src.clock * 1000)  # chunk_reader's; the reader sets it when published
        mark = BinlogWatermark(FILE, src.end, None)
        return chunk_of(stream.name, mark, after, self.size, ts, src.state.get)

    def publish(self, batches: Iterator[Batch]) -> None:
        """Each batch acknowledged by the broker, its position kept, before the reader goes on."""
        for batch in batches:
            self.topic.extend(batch.events)
            kept = {**(batch.state or {}), "table": batch.stream}
            rows = [int(e["key"]) for e in batch.events if e["op"] == "r"]
            if rows:  # a chunk: the last key it read (the model's note)
                kept["covered"] = max(rows)
            self.kept.append(kept)

    def step(self) -> None:
        """The next binlog transaction read, or the read's end when there is none."""
        if self.done:
            return
        reader, binlog = self.reader, self.source.binlog
        if self.next >= len(binlog):  # the dump ends where the binlog ended when it got there
            reader._reached = (file_number(FILE), self.source.end)
            self.publish(reader._chunk_point(self.pending, reader._reached))
            if not reader._chunks.busy:  # the read is over
                self.publish(reader._flush(self.pending))
                if self.last is not None:
                    self.publish(reader._advance(*self.last))
                self.done = True
            return
        txn = binlog[self.next]
        self.next += 1
        before = (file_number(FILE), txn.start)
        if reader._chunks.open is not None and reader._chunks.due(before):
            self.publish(reader._chunk_point(self.pending, before))
        here = _Txn(FILE, txn.start, None, begun=True)
        ts = reader._version(txn.seconds)
        for key, value in sorted(txn.writes.items()):
            index = here.next_index()
            table = table_of(key)
            acked = position_key(reader._acked.get(table))
            if acked is not None and (file_number(FILE), txn.start, index) <= acked:
                continue  # published before: acknowledged already
            state = {
                "mode": MODE,
                "phase": "stream",
                "file": FILE,
                "pos": txn.start,
                "index": index,
                "end": None,
                "gtid": None,
                "ts": ts,
            }
            event = {
                "key": str(key),
                "op": "d" if value is None else "u",
                "after": value,
                "ts_ms": ts,
                "source": {"position": f"{FILE}:{txn.start}:{index}"},
            }
            self.pending.append((table, event, None, state))
        self.last = reader._commit(here, self.pending, FILE, txn.end) or self.last
        self.publish(reader._chunk_point(self.pending, (file_number(FILE), txn.end)))
        if len(self.pending) >= self.size:
            self.publish(reader._flush(self.pending))


def play(
    steps: list[Step], initial: dict[int, int], size: int
) -> tuple[Source, list[dict[str, Any]], bool]:
    src = Source(dict(initial), max(initial.values(), default=0))
    start = {"mode": MODE, "phase": "stream", "file": FILE, "pos": HEADER, "index": -1}
    start |= {"end": None, "gtid": None, "ts": 0}
    kept = [{**request(start, t, 0), "table": t} for t in TABLES]
    topic: list[dict[str, Any]] = []
    run = Run(src, kept, topic, size)
    crashed = False
    for kind, a, b, flag, tick, lag in steps:
        src.clock += tick
        if kind == "commit":
            src.commit({a, b}, flag, lag)
        elif kind == "deliver":
            run.step()
        elif kind == "crash":  # kill -9 (flag: after the last publish, before it was kept)
            crashed = True
            kept = run.kept[:-1] if flag and len(run.kept) > len(TABLES) else run.kept
            run = Run(src, list(kept), topic, size)
        elif kind == "restart" and run.done:  # the next run
            run = Run(src, run.kept, topic, size)
    # the stream and the chunks finish
    for _ in range(4 * len(src.binlog) + 8 * KEYS + 8):
        if run.done:
            if run.next >= len(src.binlog):
                break
            run = Run(src, run.kept, topic, size)
        run.step()
    assert run.done and run.next >= len(src.binlog), "the stream did not finish"
    assert all(progress_of(t, run.held(t)) is None for t in TABLES), "chunks did not finish"
    return src, topic, crashed


def position(text: str) -> tuple[int, int, int]:
    file, pos, index = text.split(":")
    return file_number(file), int(pos), int(index)


STEPS = st.lists(
    st.tuples(
        st.sampled_from(WEIGHTED),
        KEY,
        KEY,
        st.booleans(),
        st.integers(0, 3),  # seconds passing
        st.integers(0, 3),  # a commit's first statement began as many seconds before
    ),
    min_size=4,
    max_size=80,
)


@settings(max_examples=600, deadline=None)
@given(
    steps=STEPS,
    initial=INITIAL,
    size=st.integers(1, 3),
    lost=LOST,
    cuts=CUTS,
    mark=st.booleans(),
)
def test_the_topic_ends_with_the_source_state(
    steps: list[Step],
    initial: dict[int, int],
    size: int,
    lost: dict[int, str],
    cuts: list[int],
    mark: bool,
) -> None:
    src, topic, crashed = play(steps, initial, size)
    check_topic(topic, src.final(), initial, lost, cuts, mark, None if crashed else position)


def test_a_change_with_an_older_binlog_time_still_wins_over_the_chunk() -> None:
    """T1 commits (binlog time 100 s) and is streamed, the chunk is read at P after T1 and
    published (the stream is at P), then T2 commits with a binlog time 2 s older than the clock
    (its statement began earlier): T2's change is clamped to the newest version published and
    wins over the chunk's row at the sink, even in one batch."""
    steps: list[Step] = [
        ("commit", 0, 0, False, 0, 0),  # T1: key 0 = 1 at 100 s
        ("deliver", 0, 0, False, 0, 0),  # T1 streamed, the chunk of t read at P and published
        ("commit", 0, 0, False, 1, 3),  # T2: key 0 = 2 at 98 s (began 3 s before the clock)
        ("deliver", 0, 0, False, 0, 0),  # T2 streamed after the chunk
    ]
    src, topic, _ = play(steps, {}, 1)
    assert [(e["key"], e["op"], e["after"]) for e in topic][:3] == [
        ("0", "u", 1),
        ("0", "r", 1),
        ("0", "u", 2),
    ]
    assert len({e["ts_ms"] for e in topic[:3]}) == 1  # ties: the later event wins
    assert sink(topic, [], False) == src.final() == {"0": 2}


def test_a_restart_resumes_the_chunks_a_stream_batch_carried() -> None:
    """The chunk of t is read at P after T2 and waits; T1's batch of t carries the progress;
    killed there, the next run goes on with the chunks (the sink lost t's rows)."""
    steps: list[Step] = [
        ("commit", 3, 3, False, 0, 0),  # T1: key 3 of t
        ("commit", 4, 4, False, 0, 0),  # T2: key 4 of u
        ("deliver", 0, 0, False, 0, 0),  # T1 streamed, a chunk of t read at P after T2
        ("crash", 0, 0, False, 0, 0),
    ]
    initial = {0: 1, 1: 1, 2: 1}
    src, topic, _ = play(steps, initial, 1)
    gone = {k: "gone" for k in initial}
    assert sink(earlier(initial, gone) + topic, [], False) == src.final()


def test_a_restart_keeps_the_version_floor() -> None:
    """T1 (100 s) published, the run killed, then T2 with an older binlog time (98 s): the next
    run starts after T1 and resumes the floor from the positions, so T2's change still wins."""
    steps: list[Step] = [
        ("commit", 0, 0, False, 0, 0),  # T1: key 0 = 1 at 100 s
        ("deliver", 0, 0, False, 0, 0),  # T1 streamed, the chunks read and published
        ("deliver", 0, 0, False, 0, 0),  # the read ends: every table's position after T1
        ("crash", 0, 0, False, 0, 0),
        ("commit", 0, 0, False, 1, 3),  # T2: key 0 = 2 at 98 s
        ("deliver", 0, 0, False, 0, 0),
    ]
    src, topic, _ = play(steps, {}, 1)
    assert sink(topic, [1, 2, 3], False) == src.final() == {"0": 2}
