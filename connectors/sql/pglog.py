"""PostgreSQL log-based capture (``mode: log``): a publication and a logical replication slot per
connector, read over a replication connection of our own (``_Replication``: the streaming
replication protocol on psycopg 3's libpq binding ``psycopg.pq``) with the built-in ``pgoutput``
plugin (decoded by ``connectors.sql.pgoutput``).

First run: the slot is created with ``EXPORT_SNAPSHOT``; every log table is read in that
snapshot (op ``r``, through ``SqlSource.read_stream``'s snapshot mode) while the replication
connection holds it, then the stream starts at the slot's consistent point, so that no change
is lost or read twice between snapshot and stream. A run that stops during the snapshot drops
the slot and snapshots again (the snapshot it read in is gone).

Streaming: each change becomes an event of the same envelope as the other modes: ``op``
c/u/d, ``after``, ``before`` (the whole old row when the table has ``REPLICA IDENTITY FULL``,
else null: the key is in ``key``), ``ts_ms`` = the transaction's commit time and
``source.position`` = ``<commit LSN>:<index of the event in the transaction>``. Rows are
converted exactly as a snapshot read converts them: each column's text goes through the
driver's own text loader for its type, then the stream's converters or dataset plan.

Positions: a batch's state holds the commit LSN, the event's index and, when the batch ends a
transaction, the transaction's end LSN. The caller commits a state only once the broker
acknowledged the batch (``bus.sync``); the generator resumes only after that, and only then
tells the server that the slot may forget the WAL up to the last whole transaction (a Standby
Status Update). The client sends no other position, never a keepalive's WAL end while anything
received waits for the broker; when nothing received is unacknowledged, a keepalive's WAL end
is confirmed (the heartbeat): a slot over quiet tables moves with the WAL that other tables and
databases write instead of retaining it.
After a crash the server sends again every transaction not confirmed; events at or before the
committed position are skipped, so duplicates can only come after it.

An UPDATE whose new row lacks an unchanged TOASTed value (pgoutput sends a marker, not the
value) takes it from the old row, which the server sends whole only under ``REPLICA IDENTITY
FULL``; without it the read stops with an error naming the column and the fix (it never
publishes a wrong or missing value). A TRUNCATE stops the read at that transaction (position
kept before it) with an error saying how to re-snapshot: rows removed by a TRUNCATE are not
listed in the log, so no event could name them.
"""

from __future__ import annotations

import logging
import re
import select
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy.engine import URL, Connection

from bus.errors import DataError
from connectors.base import Batch, Stream
from connectors.errors import ConnectorConfigError, ConnectorUnavailableError, TableStoppedError
from connectors.sql import logbatch, logschema
from connectors.sql import pgoutput as pg
from connectors.sql.chunked_snapshot import ChunkedSnapshots, pg_chunk_reader
from connectors.sql.logbatch import Pending
from connectors.sql.types import split_table

log = logging.getLogger(__name__)

MODE = "log"
_CHANGES = (pg.Insert, pg.Update, pg.Delete)
# a bounded pass ends once the server has read past the WAL end seen at its start, or after
# this long without a message between transactions
IDLE_S = 5.0


def slot_name(connector: str) -> str:
    """The replication slot (and publication) name of a connector: ``lgsp_`` and the name with
    dashes as underscores (slot names allow lowercase letters, digits and underscores)."""
    return "lgsp_" + re.sub(r"[^a-z0-9_]", "_", connector.lower())[:58]


def publication_name(connector: str) -> str:
    return slot_name(connector)


@dataclass
class SlotStatus:
    """What ``lgsp connector show`` reports of a connector's slot."""

    slot: str
    publication: str
    exists: bool
    active: bool = False
    wal_status: str | None = None
    confirmed_flush_lsn: str | None = None
    retained_wal_bytes: int | None = None
    publication_exists: bool = False
    publication_kept: bool = False  # on remove: owned by another role, left to it

    @property
    def lost(self) -> bool:
        return self.exists and self.wal_status == "lost"

    def to_dict(self) -> dict[str, Any]:
        return {
            "slot": self.slot,
            "publication": self.publication,
            "exists": self.exists,
            "active": self.active,
            "wal_status": self.wal_status,
            "confirmed_flush_lsn": self.confirmed_flush_lsn,
            "retained_wal_bytes": self.retained_wal_bytes,
            "publication_exists": self.publication_exists,
            "publication_kept": self.publication_kept,
        }


def resnapshot_command(connector: str) -> str:
    """The re-snapshot every stop of this module names. Not the chunked ``lgsp connector
    snapshot``: that one streams on from the kept position, and each stop leaves none to stream
    from (the slot lost, invalidated or dropped at the log limit) or keeps one before the
    change that stopped it (a TRUNCATE, an incompatible Relation, an UPDATE without its TOASTed
    value), which the stream would read again and stop at again. A reset makes a new slot and
    snapshots every table in its exported snapshot."""
    return f"lgsp connector reset {connector} && lgsp connector run {connector}"


def server_problems(conn: Connection) -> list[str]:
    """What the server or the connection's role lacks for log capture, each naming the setting
    or grant to change (empty when nothing is missing)."""
    problems: list[str] = []
    level = conn.exec_driver_sql("SHOW wal_level").scalar()
    if level != "logical":
        problems.append(
            f"server setting wal_level is {level!r}, expected 'logical' (ALTER SYSTEM SET "
            "wal_level = logical, then restart the server)"
        )
    row = conn.exec_driver_sql(
        "SELECT rolname, rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user"
    ).one()
    if not row[1]:
        problems.append(
            f"role {row[0]!r} lacks the REPLICATION attribute (ALTER ROLE {row[0]} REPLICATION)"
        )
    slots = conn.exec_driver_sql("SHOW max_replication_slots").scalar()
    if slots is not None and int(slots) == 0:
        problems.append("server setting max_replication_slots is 0, expected at least 1")
    return problems


def replica_identity(conn: Connection, table: str) -> tuple[str, bool] | None:
    """A table's replica identity (d, n, f, i) and whether it has a primary key; None when
    there is no such table."""
    schema, name = split_table(table)
    row = conn.exec_driver_sql(
        "SELECT c.relreplident, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid "
        "AND i.indisprimary) FROM pg_class c WHERE c.oid = to_regclass("
        "CASE WHEN %(s)s = '' THEN '' ELSE quote_ident(%(s)s) || '.' END || quote_ident(%(n)s))",
        {"s": schema or "", "n": name},
    ).first()
    conn.commit()
    return None if row is None else (str(row[0]), bool(row[1]))


def identity_problem(table: str, identity: tuple[str, bool] | None) -> str | None:
    """Why the table cannot be captured (PostgreSQL would refuse its UPDATEs and DELETEs
    once it is in a publication), or None."""
    if identity is None:
        return None
    kind, has_key = identity
    if kind == "n" or (kind == "d" and not has_key):
        what = "NOTHING" if kind == "n" else "DEFAULT and no primary key"
        return (
            f"table {table!r} has REPLICA IDENTITY {what}: in a publication, PostgreSQL "
            "would refuse its UPDATEs and DELETEs; give it a primary key or REPLICA IDENTITY "
            "FULL (ALTER TABLE ... REPLICA IDENTITY FULL)"
        )
    return None


def identity_warning(table: str, identity: tuple[str, bool] | None) -> str | None:
    if identity is None or identity[0] == "f":
        return None
    return (
        f"table {table!r} is not REPLICA IDENTITY FULL: its updates and deletes carry no old "
        "row (before is null), and an update that leaves a large (TOASTed) value unchanged "
        "stops the read; ALTER TABLE ... REPLICA IDENTITY FULL avoids both"
    )


def slot_status(conn: Connection, connector: str) -> SlotStatus:
    slot, publication = slot_name(connector), publication_name(connector)
    status = SlotStatus(slot, publication, exists=False)
    status.publication_exists = bool(
        conn.exec_driver_sql(
            "SELECT 1 FROM pg_publication WHERE pubname = %(p)s", {"p": publication}
        ).first()
    )
    row = conn.exec_driver_sql(
        "SELECT active, wal_status, confirmed_flush_lsn::text, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = %(s)s",
        {"s": slot},
    ).first()
    if row is not None:
        status.exists = True
        status.active, status.wal_status, status.confirmed_flush_lsn = row[0], row[1], row[2]
        status.retained_wal_bytes = None if row[3] is None else int(row[3])
    return status


def drop(conn: Connection, connector: str) -> SlotStatus:
    """Drop the connector's slot and its publication (what was there, as it was). A
    publication another role owns (a DBA made it) is left to its owner
    (``publication_kept``)."""
    status = slot_status(conn, connector)
    if status.publication_exists:
        status.publication_kept = not conn.exec_driver_sql(
            "SELECT p.pubowner = r.oid OR r.rolsuper FROM pg_publication p, pg_roles r "
            "WHERE p.pubname = %(p)s AND r.rolname = current_user",
            {"p": status.publication},
        ).scalar()
    if status.exists:
        conn.exec_driver_sql("SELECT pg_drop_replication_slot(%(s)s)", {"s": status.slot})
    if status.publication_exists and not status.publication_kept:
        conn.exec_driver_sql(f'DROP PUBLICATION IF EXISTS "{status.publication}"')
    conn.commit()
    return status


# microseconds from 1970-01-01 to 2000-01-01, the epoch of the replication protocol's clocks
_PG_EPOCH_US = 946_684_800_000_000


_XLOG_HEADER = struct.Struct(">QQq").unpack_from
_KEEPALIVE = struct.Struct(">QqB").unpack_from


class _XLogData(NamedTuple):
    """A ``w`` message: ``payload`` is one pgoutput message."""

    start: int
    end: int
    payload: bytes


class _Keepalive(NamedTuple):
    """A ``k`` message: the server has sent everything before ``wal_end``."""

    wal_end: int
    reply: bool


class _Replication:
    """A logical replication connection (``replication=database``) over psycopg 3's libpq
    binding: the replication commands, then the COPY BOTH stream of ``XLogData`` and keepalive
    messages. The server hears of a position only through ``confirm`` (and ``answer``, which
    repeats it): whole transactions the broker acknowledged, or a keepalive's WAL end when
    nothing received waits for the broker."""

    def __init__(self, conninfo: str, where: str) -> None:
        from psycopg import OperationalError, pq

        self._pq = pq
        self._broken = OperationalError
        self.where = where
        self.confirmed = 0  # the flush position last sent (never moves back)
        self.wal_end = 0  # the server's WAL end in the last message received
        self._conn = pq.PGconn.connect(conninfo.encode())
        if self._conn.status != pq.ConnStatus.OK:
            self.close()
            raise ConnectorUnavailableError(
                f"connection.url: cannot open a replication connection to {where} "
                "(OperationalError; the role needs the REPLICATION attribute and pg_hba.conf "
                "must allow it)"
            )
        try:
            self.command("IDENTIFY_SYSTEM")  # a walsender of the database, answering
        except BaseException:
            self.close()
            raise

    def _error(self, what: str) -> ConnectorUnavailableError:
        reason = self._conn.get_error_message(encoding="utf-8").strip() or "connection lost"
        return ConnectorUnavailableError(
            f"replication connection to {self.where}: {what}: {reason}"
        )

    def command(self, sql: str) -> list[tuple[str | None, ...]]:
        """A replication command's rows, as text."""
        pq = self._pq
        result = self._conn.exec_(sql.encode())
        if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
            message = (result.error_message or b"").decode("utf-8", "replace").strip()
            raise ConnectorUnavailableError(
                f"replication connection to {self.where}: {sql.split(' (')[0]} failed: {message}"
            )
        return [
            tuple(
                None if (v := result.get_value(r, c)) is None else bytes(v).decode()
                for c in range(result.nfields)
            )
            for r in range(result.ntuples)
        ]

    def create_slot(self, slot: str) -> tuple[int, str]:
        """A new slot with an exported snapshot: (its consistent point, the snapshot's name),
        the snapshot usable until the next command on this connection."""
        if self._conn.server_version >= 150000:
            how = "(SNAPSHOT 'export')"
        else:  # the form before PostgreSQL 15
            how = "EXPORT_SNAPSHOT"
        row = self.command(f"CREATE_REPLICATION_SLOT {slot} LOGICAL pgoutput {how}")[0]
        assert row[1] is not None and row[2] is not None
        return pg.parse_lsn(row[1]), row[2]

    def start(self, slot: str, lsn: int, publication: str, confirmed: int) -> None:
        """Stream the slot from ``lsn`` (0: where it was confirmed); ``confirmed`` is the
        slot's confirmed position (a reply never sends less)."""
        pq = self._pq
        self.confirmed = confirmed
        self._conn.send_query(
            f"START_REPLICATION SLOT {slot} LOGICAL {pg.lsn_text(lsn)} "
            f"(proto_version '1', publication_names '{publication}')".encode()
        )
        result = self._conn.get_result()
        if result is None or result.status != pq.ExecStatus.COPY_BOTH:
            message = b"" if result is None else (result.error_message or b"")
            raise ConnectorUnavailableError(
                f"replication connection to {self.where}: START_REPLICATION failed: "
                + message.decode("utf-8", "replace").strip()
            )

    def receive(self) -> _XLogData | _Keepalive | None:
        """The next message if one has arrived, else None (never waits)."""
        try:
            size, data = self._conn.get_copy_data(1)
            if size == 0:
                self._conn.consume_input()
                size, data = self._conn.get_copy_data(1)
        except self._broken as exc:
            raise self._error("the stream broke") from exc
        if size == 0:
            return None
        if size < 0:  # the server ended the stream
            result = self._conn.get_result()
            message = b"" if result is None else (result.error_message or b"")
            raise ConnectorUnavailableError(
                f"replication connection to {self.where}: the server ended the stream: "
                + (message.decode("utf-8", "replace").strip() or "no reason given")
            )
        raw = bytes(data)
        kind = raw[0]
        if kind == 119:  # 'w'
            start, end, _clock = _XLOG_HEADER(raw, 1)
            if end > self.wal_end:
                self.wal_end = end
            return _XLogData(start, end, raw[25:])
        if kind == 107:  # 'k'
            wal_end, _clock, reply = _KEEPALIVE(raw, 1)
            if wal_end > self.wal_end:
                self.wal_end = wal_end
            return _Keepalive(wal_end, bool(reply))
        raise DataError(f"replication stream: unknown message type {raw[:1]!r}")

    def wait(self, timeout_s: float) -> None:
        """Until the server sends something or ``timeout_s`` passed."""
        select.select([self._conn.socket], [], [], timeout_s)

    def confirm(self, lsn: int) -> None:
        """Tell the server it may forget the WAL before ``lsn``: every transaction whose commit
        starts before it is done with (the server skips them on restart)."""
        if lsn > self.confirmed:
            self.confirmed = lsn
            self._status()

    def answer(self) -> None:
        """The reply a keepalive asked for: the position already confirmed, nothing more."""
        self._status()

    def _status(self) -> None:
        from psycopg import OperationalError

        lsn = self.confirmed
        clock = time.time_ns() // 1000 - _PG_EPOCH_US
        message = b"r" + struct.pack(">QQQqB", lsn, lsn, lsn, clock, 0)
        try:
            self._conn.put_copy_data(message)
            while self._conn.flush():
                select.select([], [self._conn.socket], [], 1.0)
        except OperationalError as exc:
            raise self._error("sending the confirmed position failed") from exc

    def close(self) -> None:
        self._conn.finish()


def _replication_conninfo(url: URL, connect_timeout_s: float) -> str:
    """The libpq connection string of a replication connection to the source's database."""
    from psycopg.conninfo import make_conninfo

    params: dict[str, Any] = {
        "host": url.host or "localhost",
        "port": url.port or 5432,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
        "connect_timeout": max(2, int(connect_timeout_s)),
        "options": "-c DateStyle=ISO -c TimeZone=UTC -c extra_float_digits=3",
        "replication": "database",
    }
    # the URL's libpq parameters (sslmode, sslrootcert, ...) apply to this connection too
    for key, value in url.query.items():
        if isinstance(value, str) and key not in params:
            params[key] = value
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def _server_ms(conn: Connection) -> int:
    """The server's clock in ms: the ``ts_ms`` of snapshot rows, read before the snapshot so
    that every change committed after it has a commit time at or after it (the sinks'
    version rule orders by ``ts_ms``)."""
    value = conn.exec_driver_sql(
        "SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    ).scalar_one()
    conn.commit()
    return int(value)


def _position_key(state: dict[str, Any] | None) -> tuple[int, int] | None:
    if not state or state.get("mode") != MODE or state.get("phase") != "stream":
        return None
    if "lsn" not in state:
        return None
    return int(state["lsn"]), int(state["index"])


class PgLogReader:
    """One read of a connector's log tables (snapshot if needed, then the stream until it is
    quiet), as batches of one table each."""

    def __init__(self, source: Any, streams: list[Stream], idle_s: float = IDLE_S) -> None:
        self.source = source  # connectors.sql.source.SqlSource
        self.connector = source.connector
        self.streams = {s.name: s for s in streams}
        self.slot = slot_name(self.connector.name)
        self.publication = publication_name(self.connector.name)
        self.idle_s = idle_s
        self.batch_size = int(self.connector.batch_size)
        self._relations: dict[int, pg.Relation] = {}
        self._acked_state: dict[str, Any] = {"mode": MODE, "phase": "stream"}
        self._by_qualified: dict[str, str] = {}
        self._chunks = ChunkedSnapshots(self.streams, {})  # lgsp connector snapshot

    # ---- set-up ------------------------------------------------------------------------------
    def _replication_connection(self) -> _Replication:
        url = self.connector.url
        conninfo = _replication_conninfo(url, self.connector.config.connection.connect_timeout_s)
        return _Replication(conninfo, f"{url.host}:{url.port} as {url.username!r}")

    def _qualified(self, conn: Connection, table: str) -> str:
        schema, name = split_table(table)
        if not schema:
            schema = conn.exec_driver_sql("SELECT current_schema()").scalar() or "public"
        return f"{schema}.{name}"

    def _ensure_publication(self, conn: Connection) -> None:
        tables = [self._qualified(conn, name) for name in self.streams]
        self._by_qualified = dict(zip(tables, self.streams, strict=True))
        quoted = ", ".join(
            ".".join(f'"{part}"' for part in t.split(".", 1)) for t in sorted(tables)
        )
        exists = conn.exec_driver_sql(
            "SELECT 1 FROM pg_publication WHERE pubname = %(p)s", {"p": self.publication}
        ).first()
        if exists:
            held = conn.exec_driver_sql(
                "SELECT schemaname || '.' || tablename FROM pg_publication_tables "
                "WHERE pubname = %(p)s",
                {"p": self.publication},
            ).scalars()
            if set(held) == set(tables):  # as it is (it may be a DBA's, owned by another role)
                conn.commit()
                return
        verb = "ALTER PUBLICATION" if exists else "CREATE PUBLICATION"
        how = "SET TABLE" if exists else "FOR TABLE"
        conn.exec_driver_sql(f'{verb} "{self.publication}" {how} {quoted}')
        conn.commit()

    # ---- the read ----------------------------------------------------------------------------
    def read(self, positions: dict[str, dict[str, Any] | None]) -> Iterator[Batch]:
        """Snapshot when needed, then the stream until it is quiet.

        - No log position at all (first run, or ``connector reset``): a new slot, created with
          an exported snapshot that the tables are read in; the stream starts at the slot's
          consistent point.
        - Some table without a complete log position (a snapshot cut short, a table added or
          reset alone) while the slot is there: the slot is kept, the tables are read again
          in a new snapshot, and the stream resumes where the slot was confirmed. Changes
          streamed from before that snapshot are older than its rows by ``ts_ms`` and the
          sinks' version rule drops them, but deletes of rows the snapshot no longer has
          reach the sinks (a new slot would lose them).
        - Otherwise the stream resumes after the last acknowledged change.
        """
        held = [positions.get(name) for name in self.streams]
        halted = [p["halt"] for p in held if p is not None and p.get("halt")]
        if halted:
            raise TableStoppedError(", ".join(self.streams), f"stopped earlier: {halted[0]}")
        keys = [k for k in (_position_key(p) for p in held) if k is not None]
        acked = max(keys) if keys else None  # the last acknowledged change: never sent again
        if acked is not None:
            self._acked_state = dict(
                next(p for p in held if p is not None and _position_key(p) == acked)
            )
        logged = [p is not None and p.get("mode") == MODE for p in held]
        with self.connector.connect() as conn:
            self._chunks = ChunkedSnapshots(
                self.streams,
                dict(zip(self.streams, held, strict=True)),
                pg_chunk_reader(self.source, lambda: _server_ms(conn)),
            )
            problems = server_problems(conn)
            if problems:
                raise ConnectorConfigError(problems, name=self.connector.name)
            self._ensure_publication(conn)
            status = slot_status(conn, self.connector.name)
            conn.commit()
            usable = status.exists and not status.lost
            if any(logged) and not usable:
                why = "was invalidated (its WAL is gone)" if status.lost else "is missing"
                raise TableStoppedError(
                    ", ".join(self.streams),
                    f"replication slot {self.slot} {why}: changes since the last position "
                    "cannot be read; re-snapshot with: " + resnapshot_command(self.connector.name),
                )
            if status.exists:
                self._wait_inactive(conn)
            repl = self._replication_connection()
            try:
                start = 0  # the slot's confirmed position
                confirmed = pg.parse_lsn(status.confirmed_flush_lsn or "0/0")
                if not any(logged):  # a new slot and its exported snapshot
                    if status.exists:
                        conn.exec_driver_sql(
                            "SELECT pg_drop_replication_slot(%(s)s)", {"s": self.slot}
                        )
                        conn.commit()
                    snapshot_ms = _server_ms(conn)
                    start, snapshot = repl.create_slot(self.slot)
                    confirmed = start
                    yield from self._snapshot(snapshot, start, snapshot_ms)
                    acked = (start, -1)
                elif not all(logged) or acked is None:  # a snapshot again, the slot kept
                    yield from self._snapshot(None, 0, _server_ms(conn))
                yield from self._stream(conn, repl, start, confirmed, acked)
            finally:
                repl.close()

    def _wait_inactive(self, conn: Connection, timeout_s: float = 30.0) -> None:
        """Wait while the slot is still held by a connection the server has not yet seen die
        (a run killed a moment ago); another live run would hold the connector's lock."""
        deadline = time.monotonic() + timeout_s
        while True:
            active = conn.exec_driver_sql(
                "SELECT active FROM pg_replication_slots WHERE slot_name = %(s)s",
                {"s": self.slot},
            ).scalar()
            conn.commit()
            if not active:
                return
            if time.monotonic() > deadline:
                raise ConnectorUnavailableError(
                    f"replication slot {self.slot} is still in use by another connection after "
                    f"{timeout_s:g} s (pg_stat_replication shows which)"
                )
            time.sleep(0.2)

    def _snapshot(self, snapshot: str | None, start: int, snapshot_ms: int) -> Iterator[Batch]:
        """Every log table read (op ``r``) in the slot's exported ``snapshot``, or in a
        snapshot of its own (a repeatable-read transaction per table)."""

        def in_snapshot(c: Connection) -> Connection:
            c = c.execution_options(isolation_level="REPEATABLE READ")
            if snapshot is not None:
                c.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            return c

        streams = list(self.streams.values())
        for n, stream in enumerate(streams):
            begin = {"mode": "snapshot", "snapshot_ms": snapshot_ms, "after": None, "done": False}
            for batch in self.source.read_stream(
                stream, begin, prepare=in_snapshot, mode="snapshot"
            ):
                inner = batch.state or {}
                last = n == len(streams) - 1 and bool(inner.get("done"))
                batch.state = {
                    "mode": MODE,
                    "phase": "stream" if last else "snapshot",
                    "lsn": start,
                    "index": -1,
                    "end": start,
                    "slot": self.slot,
                    "rows": inner.get("rows", 0),
                    "snapshot_ms": inner.get("snapshot_ms"),
                }
                yield batch

    def _stream(
        self,
        conn: Connection,
        repl: _Replication,
        start: int,
        confirmed: int,
        done: tuple[int, int] | None,
    ) -> Iterator[Batch]:
        # the WAL *insert* position: a transaction committed asynchronously
        # (synchronous_commit=off) is past the write position until the WAL writer flushes it,
        # and a pass that stopped at the write position ended before it (found by a test)
        target = pg.parse_lsn(
            conn.exec_driver_sql("SELECT pg_current_wal_insert_lsn()::text").scalar()
        )
        conn.commit()
        loaders = _Loaders(conn)
        repl.start(self.slot, start, self.publication, confirmed)
        pending: list[Pending] = []
        txn: _Txn | None = None
        last_data = time.monotonic()
        last_end = 0
        while True:
            msg = repl.receive()
            if msg is None:
                if txn is None:
                    if pending:
                        yield from self._flush(pending)
                        pending = []
                    repl.confirm(last_end)
                    quiet = time.monotonic() - last_data
                    if self._chunks.busy:  # a chunked snapshot goes on while the stream is quiet
                        if self._chunk_quiet_due(conn, max(last_end, repl.wal_end), quiet):
                            yield self._chunk_batch()
                        self._chunks.start()
                        repl.wait(0.05)
                        continue
                    # the server has read its WAL up to where it was when the pass began, or
                    # nothing came for a while
                    if max(last_end, repl.wal_end) >= target or quiet >= self.idle_s:
                        break
                repl.wait(0.1)
                continue
            if isinstance(msg, _Keepalive):
                # the server sent everything before wal_end: when nothing received waits for
                # the broker, the slot may move there (the heartbeat of quiet tables); else the
                # server hears the acknowledged position only
                if txn is None and not pending:
                    repl.confirm(max(last_end, msg.wal_end))
                if msg.reply:
                    repl.answer()
                continue
            last_data = time.monotonic()
            message = pg.decode(msg.payload)
            if isinstance(message, pg.Begin):
                txn = _Txn(message)
            elif isinstance(message, pg.Relation):
                stop = self._schema_stop(message, txn)
                self._relations[message.oid] = message
                if stop is not None:  # what came before it is published first
                    yield from self._flush(pending)
                    yield self._halt(stop)
                    raise stop
            elif isinstance(message, pg.Commit):
                assert txn is not None
                last_end = message.end_lsn
                if pending and pending[-1][3]["lsn"] == txn.begin.final_lsn:
                    pending[-1][3]["end"] = message.end_lsn
                txn = None
                if len(pending) >= self.batch_size:
                    yield from self._flush(pending)
                    pending = []
                    repl.confirm(last_end)
                if self._chunks.busy:  # a chunked snapshot, between transactions
                    if self._chunks.due(max(last_end, repl.wal_end)):
                        yield from self._flush(pending)
                        pending = []
                        yield self._chunk_batch()
                    self._chunks.start()
            elif isinstance(message, _CHANGES):
                assert txn is not None
                index = txn.next_index()
                if done is not None and (txn.begin.final_lsn, index) <= done:
                    continue  # published before a crash: acknowledged already
                try:
                    item = self._event(loaders, txn, index, message)
                except TableStoppedError as exc:  # what came before it is published first
                    yield from self._flush(pending)
                    yield self._halt(exc)
                    raise
                if item is not None:
                    self._observe(loaders, txn, message, item)
                    pending.append(item)
                    if len(pending) >= self.batch_size * 4:  # a long transaction
                        yield from self._flush(pending)
                        pending = []
            elif isinstance(message, pg.Truncate):
                assert txn is not None
                names = [
                    self._relations[o].qualified
                    for o in message.relation_oids
                    if o in self._relations
                ]
                yield from self._flush(pending)  # what came before it
                stop = TableStoppedError(
                    ", ".join(names) or "?",
                    f"TRUNCATE at LSN {pg.lsn_text(txn.begin.final_lsn)}: the rows it removed are "
                    "not in the log, so no event can name them; the position stays before it. "
                    "Empty the table's sinks (or reconcile them with repair), then re-snapshot "
                    f"with: {resnapshot_command(self.connector.name)}",
                )
                yield self._halt(stop)
                raise stop

    def _schema_stop(self, message: pg.Relation, txn: _Txn | None) -> TableStoppedError | None:
        """The stop for an incompatible change of a streamed table's columns (logschema)."""
        table = self._by_qualified.get(message.qualified)
        if table is None:
            return None
        previous = self._relations.get(message.oid)
        if previous is None:
            return None  # the first of this read: nothing to compare with (see logschema)
        changes = logschema.relation_changes(previous.columns, message.columns)
        at = f"LSN {pg.lsn_text(txn.begin.final_lsn)}" if txn is not None else "the stream start"
        reason = logschema.stop_reason(
            message.qualified, changes, at, resnapshot_command(self.connector.name)
        )
        return None if reason is None else TableStoppedError(table, reason)

    def _halt(self, stop: TableStoppedError) -> Batch:
        """An empty batch whose state is the last acknowledged position marked with the
        reason the read stopped: every later run stops again with it until the connector is
        reset. The stop lives in the position, not in the slot (which a DBA may move or
        drop): a run never confirms past an unacknowledged change, so the slot stays before it
        too, but that is not what the next run relies on."""
        state = dict(self._acked_state)
        state["halt"] = stop.reason
        table = next(iter(self.streams))
        return Batch(table, [], state, self.streams[table].record_schema)

    def _flush(self, pending: list[Pending]) -> Iterator[Batch]:
        """The pending events as batches of one table each (``logbatch.flush``); each batch
        acknowledged is the position a halt keeps."""
        yield from logbatch.flush(pending, self.streams, self._chunks, self._ack)

    def _ack(self, table: str, state: dict[str, Any]) -> None:
        """A batch of ``table`` acknowledged: its state is the last acknowledged position."""
        self._acked_state = state

    # ---- chunked snapshots (connectors.sql.chunked_snapshot) ---------------------------------
    def _observe(
        self,
        loaders: _Loaders,
        txn: _Txn,
        message: pg.Insert | pg.Update | pg.Delete,
        item: Pending,
    ) -> None:
        """Tell the chunked snapshots of a change: its key and, for an update that moved the
        row to another key, the old one."""
        table, event = item[0], item[1]
        if not self._chunks.pending(table):
            return
        keys = [str(event["key"])]
        if isinstance(message, pg.Update) and message.old is not None:
            relation = self._relations[message.relation_oid]
            context = self.source.log_context(self.streams[table])
            row = loaders.row(relation, message.old, context.names)
            old, _ = self.source.row_event(context, row)
            if old["key"] != keys[0]:
                keys.append(str(old["key"]))
        self._chunks.observe(txn.begin.xid, table, keys)

    def _chunk_batch(self) -> Batch:
        """The open chunk's rows left, published after the changes before its watermark."""
        table, events, invalid, state = self._chunks.finish(self._acked_state)
        return Batch(table, events, state, self.streams[table].record_schema, invalid)

    def _chunk_quiet_due(self, conn: Connection, reached: int, quiet: float) -> bool:
        """Whether the open chunk may be published while the stream is quiet: the stream
        reached its high watermark; or the server's sender for this slot (pg_stat_replication)
        has sent the WAL up to it, or all the WAL the server flushed a second after the chunk
        was read (an asynchronous commit is flushed by then; WAL after the last transaction
        that nobody flushes sends no message), and 0.1 s passed for what it sent to arrive."""
        chunk = self._chunks.open
        if chunk is None:
            return False
        if chunk.due(reached):
            return True
        now = time.monotonic()
        if chunk.sent_at is not None:
            return now - chunk.sent_at >= 0.1
        if quiet < 0.1:
            return False
        row = conn.exec_driver_sql(
            "SELECT s.sent_lsn::text, pg_current_wal_flush_lsn()::text FROM pg_stat_replication s "
            "JOIN pg_replication_slots r ON r.active_pid = s.pid WHERE r.slot_name = %(s)s",
            {"s": self.slot},
        ).first()
        conn.commit()
        if row is not None and row[0] is not None:
            sent, flushed = pg.parse_lsn(row[0]), pg.parse_lsn(row[1])
            high = chunk.watermark.high
            if sent >= high or (sent >= flushed and now - chunk.opened >= 1.0):
                chunk.sent_at = now
        return False

    def _event(
        self, loaders: _Loaders, txn: _Txn, index: int, message: pg.Insert | pg.Update | pg.Delete
    ) -> Pending | None:
        relation = self._relations.get(message.relation_oid)
        if relation is None:
            raise DataError(
                f"pgoutput: a change of relation {message.relation_oid} before its Relation message"
            )
        table = self._by_qualified.get(relation.qualified)
        if table is None:
            return None  # a table added to the publication by hand
        stream = self.streams[table]
        old_full = None
        after_values: tuple[pg.Value, ...] | None = None
        before_values: tuple[pg.Value, ...] | None = None
        if isinstance(message, pg.Insert):
            op, after_values = "c", message.new
        elif isinstance(message, pg.Update):
            op, after_values = "u", message.new
            if message.old_kind == "O":
                old_full = before_values = message.old
        else:
            op = "d"
            before_values = message.old
            if message.old_kind == "O":
                old_full = message.old
        if after_values is not None:
            after_values = self._fill_unchanged(relation, table, after_values, old_full)
        context = self.source.log_context(stream)
        position = f"{pg.lsn_text(txn.begin.final_lsn)}:{index}"
        state = {
            "mode": MODE,
            "phase": "stream",
            "lsn": txn.begin.final_lsn,
            "index": index,
            "end": None,
            "slot": self.slot,
        }
        row_values = after_values if after_values is not None else before_values
        assert row_values is not None
        row = loaders.row(relation, row_values, context.names)
        old_row = None if old_full is None else loaders.row(relation, old_full, context.names)
        event, bad = self.source.log_event(context, op, txn.begin.commit_ms, position, row, old_row)
        return table, event, bad, state

    def _fill_unchanged(
        self,
        relation: pg.Relation,
        table: str,
        new: tuple[pg.Value, ...],
        old: tuple[pg.Value, ...] | None,
    ) -> tuple[pg.Value, ...]:
        if pg.UNCHANGED not in new:
            return new
        filled = list(new)
        for i, value in enumerate(new):
            if value is not pg.UNCHANGED:
                continue
            if old is not None and old[i] is not pg.UNCHANGED:
                filled[i] = old[i]
                continue
            raise TableStoppedError(
                table,
                f"an UPDATE left column {relation.columns[i].name!r} (a large TOASTed value) "
                "unchanged and the log does not carry it: give the table REPLICA IDENTITY "
                f"FULL ({relation.qualified}) so that the old row carries it, "
                f"then re-snapshot with: {resnapshot_command(self.connector.name)}",
            )
        return tuple(filled)


class _Txn:
    def __init__(self, begin: pg.Begin) -> None:
        self.begin = begin
        self.index = -1

    def next_index(self) -> int:
        self.index += 1
        return self.index


class _Loaders:
    """Each column's text turned into the Python value a snapshot read gets, by the driver's
    own text loader for the column's type (the source connection's adapters)."""

    def __init__(self, conn: Connection) -> None:
        from psycopg.adapt import Transformer
        from psycopg.pq import Format

        driver = conn.connection.driver_connection
        self._tx = Transformer(driver)
        self._format = Format.TEXT
        self._loaders: dict[int, Any] = {}
        # per relation and column list: the relation that plan is for, the list, and for each
        # name the index of its value and the value's load function (-1, None: not sent)
        self._plans: dict[
            tuple[int, int], tuple[pg.Relation, list[str], list[tuple[int, Any]]]
        ] = {}

    def _load(self, oid: int) -> Any:
        """The text load function of type ``oid``."""
        loader = self._loaders.get(oid)
        if loader is None:
            loader = self._loaders[oid] = self._tx.get_loader(oid, self._format)
        return loader.load

    def _plan(self, relation: pg.Relation, names: list[str]) -> list[tuple[int, Any]]:
        key = (relation.oid, id(names))
        cached = self._plans.get(key)
        if cached is not None and cached[0] is relation and cached[1] is names:
            return cached[2]
        at = {col.name: i for i, col in enumerate(relation.columns)}  # the last of a name wins
        plan = [
            (i, self._load(relation.columns[i].type_oid))
            if (i := at.get(n, -1)) >= 0
            else (-1, None)
            for n in names
        ]
        self._plans[key] = (relation, names, plan)
        return plan

    def row(
        self, relation: pg.Relation, values: tuple[pg.Value, ...], names: list[str]
    ) -> tuple[Any, ...]:
        """The values in ``names`` order (None: NULL, or a column the relation lacks)."""
        if len(values) != len(relation.columns):
            raise DataError(
                f"pgoutput: a row of {len(values)} values for relation {relation.qualified} "
                f"of {len(relation.columns)} columns (expected one value a column)"
            )
        out = []
        for i, load in self._plan(relation, names):
            value = values[i] if i >= 0 else None
            out.append(load(value) if value.__class__ is bytes else None)
        return tuple(out)
