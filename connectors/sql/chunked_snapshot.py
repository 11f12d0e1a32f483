"""Chunked re-snapshots of ``mode: log`` tables while the stream goes on (``lgsp connector
snapshot``): the DBLog / Debezium incremental-snapshot algorithm, with a watermark that the
connector only *reads* (it writes no watermark table, no logical message, nothing). The
PostgreSQL (``pglog``) and MariaDB (``mylog``) log readers share the chunks, their progress and
their publication (``ChunkedSnapshots``, ``chunk_reader``); each has its own watermark
(``Mark``).

How the watermark works when the connector may only read (PostgreSQL)
--------------------------------------------------------------------
A table is read in primary-key chunks (``WHERE key > last ORDER BY key``, one batch of the
connector's ``batch_size`` rows), each in its own ``REPEATABLE READ`` transaction whose first
statement reads ``pg_current_snapshot()`` (xmin, xmax, the in-progress xids) and
``pg_current_wal_insert_lsn()`` (the *high watermark* H). The chunk's rows are exactly the
effects of the transactions *visible* in that snapshot S: committed before it, i.e. xid < xmin,
or xid < xmax and not in the in-progress list.

The stream goes on meanwhile. Every streamed transaction is *committed* (pgoutput sends a
transaction at its commit) and its Begin carries its xid, so the reader knows for each one
whether S saw it. A chunk row is held back until the stream has gone past H, and meanwhile
every streamed change of a transaction that S did **not** see, to a key of the chunk, drops
that key's row from the chunk: the streamed event carries the newer state. The rows left are
published as ``r`` events once the stream reached H, after the changes published before and
before every change published after. Why this is exact, key by key:

- every transaction S saw committed (wrote its commit record) before S was taken, so before H:
  the stream has published it before the chunk (the chunk waits for H). The ``r`` row holds
  its effect, so it is never older than a change already published for its key;
- a transaction S did not see and whose commit record lies before H (it committed while the
  chunk was read, or it wrote its commit record before S but became visible after it, which
  PostgreSQL allows: commit order in the WAL is not visibility order) is streamed before the
  chunk is published, and it removed the row of every key it touched;
- a transaction whose commit record lies at or after H was not visible in S either (its
  commit record was written after S was taken) and is published after the chunk: a later
  event, which the sinks apply after the ``r`` row.
- a transaction streamed *before* the chunk was read may still be invisible in S (its commit
  record was sent, its end not yet made visible): the changes seen while a snapshot is pending
  are kept (xid, table, key) and checked against each new chunk's snapshot, then forgotten
  once their xid is below a snapshot's xmin (visible to every later snapshot).
- keys inserted after S into a chunk's range are streamed; keys above a chunk's last key are
  read by a later chunk, in a later snapshot.

What is seen is kept in memory: a run does not know the changes streamed before it began (an
earlier run, before a crash). A transaction streamed then and still not visible when the run
reads its first chunk (held after its commit record, e.g. by a synchronous standby that does
not answer) is not checked against that chunk; the sinks then keep the newer of the two by
``ts_ms``. ``tests/unit/connectors/test_chunked_snapshot.py`` plays the rule against a model of
PostgreSQL's visibility, restarts included (under that assumption).

So, per key, the topic holds: the changes S saw, the ``r`` row with their result, then the
changes S did not see: a consumer applying the topic in order ends with the source's state.

The sinks apply by version (``_lgsp_ts_ms``, a stored row changes only when the incoming
version is not older; ``connectors.sql.sink``), not by arrival. An ``r`` row's ``ts_ms`` is the
server's clock read before the chunk's transaction began, less ``GUARD_MS``. A change
published after the chunk comes from a transaction invisible in S, whose commit time is taken
just before its commit record is written, at or after H, so after the clock was read; the
guard covers a commit time taken up to ``GUARD_MS`` before its commit record was written. Such
a change is never older than the ``r`` row and wins over it (ties go to the later event).
The ``r`` row may be older than a change that S saw and that was published before it: the
sink keeps that change, which is the same state. ``source.position`` of an ``r`` row is
``<H>:-1``: after every change S saw (their commit LSNs are below H) and before every change
published after the chunk.

How the watermark works when the connector may only read (MariaDB)
------------------------------------------------------------------
Each chunk is read in its own transaction opened with ``START TRANSACTION WITH CONSISTENT
SNAPSHOT``, and in it the status variables ``binlog_snapshot_file`` /
``binlog_snapshot_position`` give the binlog position P that snapshot is consistent with
(``connectors.sql.mylog.BinlogWatermark``): MariaDB documents them as the binlog position
consistent with the snapshot, so every transaction whose commit lies before P in the binlog
is in the snapshot and none after it (the first snapshot of ``mylog`` relies on the same).
The binlog is in commit order and the stream reads it in order, so, unlike PostgreSQL, there is
no gap between visibility and log order and the watermark is one point, with no xid
bookkeeping. P is at or after where the stream is when the chunk is read (the binlog's end at
that moment), and the chunk is published when the stream reaches P: after a transaction ending
at or past P, or before an event starting at or past P (a new binlog file's first events are
not shown to the reader: its transactions begin after P), or when a read of the binlog ended
at or past P (the dump is non-blocking; while a chunked snapshot goes on the reader opens
another from where the last one ended). Key by key:

- a transaction before P is in the chunk's rows and was published before them;
- a transaction after P is not in them and is published after them.

So no streamed change ever needs to drop a row of the chunk (a change read before the chunk is
published lies before P) and the changes are not checked against it. The ``r`` rows' ``ts_ms``
is set when the chunk is published: the version of the newest change the reader published
(its floor, kept in the positions across runs). The reader gives every change a version no
older than that floor (binlog times are whole seconds and a statement's time is when it
started), so a change published after the chunk is never older than its rows and wins (ties
go to the later event), and a change before P is never newer. ``source.position`` of an ``r``
row is ``<GTID at P>:-1`` (``<file>:<P>:-1`` without GTIDs), the form of a table's snapshot
position: the binlog state the rows hold, every transaction up to that GTID included.

Progress: the table's position keeps ``chunked`` = {table, after (the last key read, as
``connectors.positions`` dumps it), chunks, rows (published), dropped, size (rows a chunk
reads: the connector's ``batch_size``), requested_ms}. The
chunk's batch is published with it and, like every position, committed only after the broker
acknowledged it; a run killed in a chunk resumes after the last finished one (the rows of the
unfinished one are read again, in a new snapshot). Stream batches of the table carry the
progress along (``carry``). When a table's last chunk is published, ``chunked`` goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from connectors.base import Invalid, Stream
from connectors.errors import TableStoppedError
from connectors.sql import pgoutput as pg

STATE = "chunked"
# an ``r`` row's ts_ms is this far below the clock read before its chunk (see the docstring)
GUARD_MS = 1000
_XID32 = 1 << 32


class Mark(Protocol):
    """A chunk's watermark: which streamed transactions its rows saw, when the stream has gone
    far enough for them to be published, and the ``source.position`` they get then. PostgreSQL:
    ``Watermark``; MariaDB: ``connectors.sql.mylog.BinlogWatermark``."""

    def visible(self, txn: Any) -> bool:
        """Whether the chunk's read saw the changes of streamed transaction ``txn``."""
        ...

    def settled(self, txn: Any) -> bool:
        """Whether every chunk read later sees ``txn`` too (it need not be kept)."""
        ...

    def due(self, reached: Any) -> bool:
        """Whether the stream, having read up to ``reached``, may publish the chunk."""
        ...

    def position(self) -> str:
        """``source.position`` of the chunk's ``r`` rows."""
        ...


@dataclass(frozen=True)
class Watermark:
    """A chunk's snapshot (64-bit xids, as ``pg_current_snapshot()`` gives them) and the WAL
    insert position read after it (``high``)."""

    xmin: int
    xmax: int
    xip: frozenset[int]
    high: int

    @classmethod
    def parse(cls, snapshot: str, high: int) -> Watermark:
        """``xmin:xmax:xip,...`` (the text of a ``pg_snapshot``)."""
        parts = snapshot.split(":")
        if len(parts) != 3:
            raise ValueError(f"pg_current_snapshot(): expected 'xmin:xmax:xip', got {snapshot!r}")
        xip = frozenset(int(x) for x in parts[2].split(",") if x)
        return cls(int(parts[0]), int(parts[1]), xip, high)

    def full_xid(self, xid: int) -> int:
        """A 32-bit xid (pgoutput's Begin) as the 64-bit one nearest to ``xmax``."""
        full = (self.xmax & ~(_XID32 - 1)) | (xid & (_XID32 - 1))
        if full > self.xmax + (_XID32 >> 1):
            full -= _XID32
        elif full < self.xmax - (_XID32 >> 1):
            full += _XID32
        return full

    def visible(self, xid: int) -> bool:
        """Whether the snapshot sees a committed transaction's changes."""
        full = self.full_xid(xid)
        return full < self.xmin or (full < self.xmax and full not in self.xip)

    def settled(self, xid: int) -> bool:
        return self.full_xid(xid) < self.xmin

    def due(self, reached: int) -> bool:
        return reached >= self.high

    def position(self) -> str:
        return snapshot_position(self.high)


Row = tuple[str, dict[str, Any] | Invalid]  # (event key, its event or the row that did not fit)


@dataclass
class Chunk:
    """A chunk read, waiting for the stream to reach its high watermark."""

    table: str
    watermark: Mark
    rows: dict[str, dict[str, Any] | Invalid]  # by event key, in key order
    after: Any  # the keyset position after the chunk: its last row read (dropped or not)
    last: bool  # the table's last chunk (fewer rows than a chunk holds)
    read: int
    dropped: int = 0
    opened: float = field(default_factory=time.monotonic)
    sent_at: float | None = None  # when the server said it sent past the chunk (a quiet stream)

    def observe(self, xid: Any, key: str) -> None:
        """A streamed change of ``key`` by transaction ``xid``: a row the snapshot read before
        that change is dropped."""
        if key in self.rows and not self.watermark.visible(xid):
            del self.rows[key]
            self.dropped += 1

    def due(self, reached: Any) -> bool:
        return self.watermark.due(reached)


ReadChunk = Callable[[Stream, dict[str, Any]], Chunk]


def snapshot_ms(clock_ms: int) -> int:
    """The ``ts_ms`` of a chunk's ``r`` rows: the server's clock read before the chunk's
    transaction began, less ``GUARD_MS`` (see the module's docstring)."""
    return clock_ms - GUARD_MS


def snapshot_position(high: int) -> str:
    """``source.position`` of a chunk's ``r`` rows: ``<H>:-1``, after every change with a
    commit LSN below the high watermark ``H`` (``<commit LSN>:<index>``), before the rest."""
    return f"{pg.lsn_text(high)}:-1"


def request(position: dict[str, Any], table: str, now_ms: int) -> dict[str, Any]:
    """``position`` with a chunked snapshot of ``table`` requested from its first chunk."""
    out = dict(position)
    out[STATE] = {"table": table, "after": None, "chunks": 0, "rows": 0, "requested_ms": now_ms}
    return out


def progress_of(table: str, position: dict[str, Any] | None) -> dict[str, Any] | None:
    """The table's pending chunked snapshot in its position, or None."""
    held = (position or {}).get(STATE)
    if isinstance(held, dict) and held.get("table") == table:
        return dict(held)
    return None


class ChunkedSnapshots:
    """The chunked snapshots a log read performs between its stream's transactions: which
    table's chunk is open, what the stream changed meanwhile, what each table has done."""

    def __init__(
        self,
        streams: dict[str, Stream],
        positions: dict[str, dict[str, Any] | None],
        read_chunk: ReadChunk | None = None,
    ) -> None:
        self.streams = streams
        self.read_chunk = read_chunk
        self.progress: dict[str, dict[str, Any]] = {}
        for table in streams:
            held = progress_of(table, positions.get(table))
            if held is not None:
                self.progress[table] = held
        self.history: list[tuple[Any, str, str]] = []  # (xid, table, key) while pending
        self.open: Chunk | None = None

    @property
    def busy(self) -> bool:
        return bool(self.progress)

    def pending(self, table: str) -> bool:
        return table in self.progress

    def carry(self, table: str, state: dict[str, Any]) -> dict[str, Any]:
        """A position of ``table`` with its chunked progress (and no other table's)."""
        out = {k: v for k, v in state.items() if k != STATE}
        held = self.progress.get(table)
        if held is not None:
            out[STATE] = dict(held)
        return out

    def observe(self, xid: Any, table: str, keys: list[str]) -> None:
        """A streamed change of ``keys`` of ``table`` by (committed) transaction ``xid``."""
        if table not in self.progress:
            return
        for key in keys:
            self.history.append((xid, table, key))
            if self.open is not None and self.open.table == table:
                self.open.observe(xid, key)

    def start(self) -> Chunk | None:
        """Read the next chunk when none is open and a table waits for one."""
        if self.open is not None or not self.progress or self.read_chunk is None:
            return self.open
        table = next(iter(self.progress))
        chunk = self.read_chunk(self.streams[table], self.progress[table])
        for xid, seen_table, key in self.history:
            if seen_table == table:
                chunk.observe(xid, key)
        mark = chunk.watermark
        self.history = [h for h in self.history if not mark.settled(h[0])]
        self.open = chunk
        return chunk

    def due(self, reached: Any) -> bool:
        """The open chunk may be published: the stream went past its watermark."""
        return self.open is not None and self.open.due(reached)

    def finish(
        self, acked: dict[str, Any], ts_ms: int | None = None
    ) -> tuple[str, list[dict[str, Any]], list[Invalid], dict[str, Any]]:
        """The open chunk's rows left (events, rows that do not fit) as a batch of its table,
        with the position: the last acknowledged stream position and the progress after it.
        ``ts_ms``: the rows' version when the reader sets it at publication (MariaDB), else the
        one given when the chunk was read."""
        chunk = self.open
        assert chunk is not None
        self.open = None
        table = chunk.table
        held = self.progress[table]
        held["after"] = chunk.after
        held["chunks"] = int(held.get("chunks", 0)) + 1
        held["rows"] = int(held.get("rows", 0)) + len(chunk.rows)
        held["dropped"] = int(held.get("dropped", 0)) + chunk.dropped
        position = chunk.watermark.position()
        events: list[dict[str, Any]] = []
        invalid: list[Invalid] = []
        for item in chunk.rows.values():
            event = item.event if isinstance(item, Invalid) else item
            event["source"]["position"] = position
            if ts_ms is not None:
                event["ts_ms"] = ts_ms
            (invalid if isinstance(item, Invalid) else events).append(item)  # type: ignore[arg-type]
        state = self.carry(table, acked)
        if chunk.last:
            del self.progress[table]
            state.pop(STATE, None)
            if not self.progress:
                self.history = []
        return table, events, invalid, state


def chunk_reader(
    source: Any, clock_ms: Callable[[], int], watermark: Callable[[Connection], Mark]
) -> ReadChunk:
    """How a log reader reads a chunk: ``clock_ms`` (the server's clock) first, then, in one
    transaction that ``watermark`` opens on the connection (and reads the chunk's watermark
    in), the chunk's rows, through ``SqlSource.read_stream`` (the keyset, conversions and
    dataset plan of every snapshot)."""

    def read(stream: Stream, progress: dict[str, Any]) -> Chunk:
        if not stream.primary_key:
            raise TableStoppedError(
                stream.name,
                "a chunked snapshot reads a table in primary-key order, and this table has no "
                "primary key (nor key: in its configuration): give it one, or re-snapshot the "
                "whole connector with: lgsp connector reset NAME && lgsp connector run NAME",
            )
        progress["size"] = int(source.connector.batch_size)
        marks: list[Mark] = []

        def prepare(conn: Connection) -> Connection:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            marks.append(watermark(conn))
            return conn

        begin = {
            "mode": "snapshot",
            "snapshot_ms": snapshot_ms(clock_ms()),
            "after": progress.get("after"),
            "done": False,
        }
        reads = source.read_stream(stream, begin, prepare=prepare, mode="snapshot")
        try:
            batch = next(reads)
        finally:
            reads.close()
        rows: dict[str, dict[str, Any] | Invalid] = {}
        for event in batch.events:
            rows[event["key"]] = event
        for bad in batch.invalid:
            rows[bad.event["key"]] = bad
        state = batch.state or {}
        return Chunk(
            stream.name,
            marks[0],
            rows,
            state.get("after"),
            bool(state.get("done")),
            len(batch.events) + len(batch.invalid),
        )

    return read


def pg_chunk_reader(source: Any, clock_ms: Callable[[], int]) -> ReadChunk:
    """How a PostgreSQL log reader reads a chunk: a ``REPEATABLE READ`` transaction whose first
    statement reads the watermark (``Watermark``)."""

    def watermark(conn: Connection) -> Mark:
        row = conn.exec_driver_sql(
            "SELECT pg_current_snapshot()::text, pg_current_wal_insert_lsn()::text"
        ).one()
        return Watermark.parse(str(row[0]), pg.parse_lsn(str(row[1])))

    return chunk_reader(source, clock_ms, watermark)
