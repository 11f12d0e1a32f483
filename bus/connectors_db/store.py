"""Registered connectors, their positions and run locks in the control database.

``add`` stores a connector in one transaction (nothing half-registered); ``save_position``
is called only after the broker acknowledged the batch the position follows, and only by the
run that holds the connector's run lock (``acquire_lock``), so two runs never move one
position (nor one back).

A source position is saved with the offsets the broker acknowledged for the rows before it (a
``connector_position_mark``, the last ``MARKS_KEPT`` per table): ``lgsp broker restore`` moves
a position back to the newest mark the archive covers after the broker lost its topics.

A batch costs two statements: the position's update (an insert the first time) and its mark's
insert. A mark is small: the position without what a resumed read can rebuild
(``connectors.positions.essential``: not the lookback window's digests) and the ends its own
batch was acknowledged at. What a mark stands on is the most its table's marks reached up to
it (``marks`` adds them up); the oldest mark kept holds what the marks pruned before it
reached, so pruning (every ``PRUNE_EVERY`` saves of a table) loses nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from bus import processes
from bus.config import Settings
from bus.connectors_db.models import (
    ConnectorLock,
    ConnectorPosition,
    ConnectorPositionMark,
    ConnectorRow,
    OperationLock,
)
from bus.db import session_scope
from bus.timeutil import as_utc, utcnow
from connectors.errors import ConnectorBusyError, ConnectorExistsError, ConnectorNotFoundError
from connectors.positions import essential


@dataclass(frozen=True)
class StoredConnector:
    name: str
    type: str
    role: str
    agency: str
    unit: str
    config: dict[str, Any]
    topics: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class TablePosition:
    table: str
    position: dict[str, Any] | None
    status: str
    error: str | None
    rows_total: int
    updated_at: dt.datetime


MARKS_KEPT = 500
PRUNE_EVERY = 50


@dataclass(frozen=True)
class PositionMark:
    """A saved source position and the end offset per partition of ``topic`` it stands on."""

    id: int
    table: str
    topic: str
    position: dict[str, Any] | None
    ends: dict[int, int]


LockTable = type[ConnectorLock] | type[OperationLock]


def _key(table: LockTable) -> Any:
    """The column naming what a lock row locks."""
    return table.connector if table is ConnectorLock else table.name


@dataclass(frozen=True)
class RunLock:
    """Who holds a connector's run lock, since when, and until when (unless extended)."""

    connector: str
    owner: str
    acquired_at: dt.datetime
    expires_at: dt.datetime
    took_over: RunLock | None = None  # the lock of a crashed run this one replaced


def lock_owner() -> str:
    """This process's name as a lock holder: ``host:pid:start:scope:run``. The pid's start
    time and the pid scope (``bus.processes.pid_scope``) let a later run of the same host tell
    that the holder crashed, even after its pid was reused."""
    pid = os.getpid()
    started = processes.start_ticks(pid)
    return (
        f"{socket.gethostname()}:{pid}:{started if started is not None else '-'}:"
        f"{processes.pid_scope()}:{uuid.uuid4().hex[:8]}"
    )


def holder_crashed(owner: str) -> bool:
    """True when ``owner`` (a ``lock_owner()``) is a process of this host, boot and pid
    namespace that is no longer running. A holder elsewhere, or one whose name does not say,
    counts as running: its lock expires instead."""
    parts = owner.split(":")
    if len(parts) != 5 or not parts[1].isdigit():
        return False
    host, pid, started, scope, _run = parts
    if host != socket.gethostname() or scope != processes.pid_scope():
        return False
    return not processes.process_alive(int(pid), int(started) if started.isdigit() else None)


def _added_up(marks: list[tuple[str, dict[str, int]]]) -> list[dict[int, int]]:
    """Per mark (``(topic, ends)``, oldest first), the most the marks up to it reached per
    partition, counted from the latest change of topic."""
    out: list[dict[int, int]] = []
    reached: dict[int, int] = {}
    topic = None
    for mark_topic, ends in marks:
        if mark_topic != topic:
            reached, topic = {}, mark_topic
        reached = dict(reached)
        for p, e in ends.items():
            reached[int(p)] = max(reached.get(int(p), 0), int(e))
        out.append(reached)
    return out


def _stored(row: ConnectorRow) -> StoredConnector:
    return StoredConnector(
        row.name,
        row.type,
        row.role,
        row.agency,
        row.unit,
        dict(row.config),
        dict(row.topics),
        row.created_at,
        row.updated_at,
    )


class ConnectorStore:
    """Reads and writes the ``connector`` and ``connector_position`` tables."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._saves: dict[tuple[str, str], int] = {}  # marks saved per table (when to prune)

    # ---- connectors ----------------------------------------------------------------------
    def add(
        self,
        *,
        name: str,
        type: str,
        role: str,
        agency: str,
        unit: str,
        config: dict[str, Any],
        topics: dict[str, str],
        replace: bool = False,
    ) -> StoredConnector:
        """Store a connector; with ``replace`` an existing one is updated (positions kept)."""
        now = utcnow()
        with session_scope(self.settings) as s:
            row = s.get(ConnectorRow, name)
            if row is not None and not replace:
                raise ConnectorExistsError(
                    f"name: connector {name!r} is already registered; "
                    "use --replace to update it or 'lgsp connector remove' first"
                )
            if row is None:
                row = ConnectorRow(name=name, created_at=now)
                s.add(row)
            row.type, row.role, row.agency, row.unit = type, role, agency, unit
            row.config, row.topics, row.updated_at = config, topics, now
            if replace:  # tables no longer configured lose their positions
                s.execute(
                    delete(ConnectorPosition).where(
                        ConnectorPosition.connector == name,
                        ConnectorPosition.table_name.not_in(list(topics)),
                    )
                )
            s.flush()
            stored = _stored(row)
        return stored

    def get(self, name: str) -> StoredConnector:
        with session_scope(self.settings) as s:
            row = s.get(ConnectorRow, name)
            if row is None:
                known = s.scalars(select(ConnectorRow.name).order_by(ConnectorRow.name)).all()
                hint = f"; registered: {', '.join(known)}" if known else "; none is registered"
                raise ConnectorNotFoundError(f"connector {name!r} is not registered{hint}")
            return _stored(row)

    def list(self) -> list[StoredConnector]:
        with session_scope(self.settings) as s:
            return [_stored(r) for r in s.scalars(select(ConnectorRow).order_by(ConnectorRow.name))]

    def remove(self, name: str) -> None:
        self.get(name)
        with session_scope(self.settings) as s:
            s.execute(delete(ConnectorPosition).where(ConnectorPosition.connector == name))
            s.execute(delete(ConnectorLock).where(ConnectorLock.connector == name))
            s.execute(delete(ConnectorRow).where(ConnectorRow.name == name))

    def publishers_of(self, topics: list[str]) -> dict[str, str]:
        """``{topic: source connector}`` for the topics some source already publishes to."""
        wanted = set(topics)
        out: dict[str, str] = {}
        for item in self.list():
            if item.role != "source":
                continue
            for topic in item.topics.values():
                if topic in wanted:
                    out[topic] = item.name
        return out

    # ---- positions -----------------------------------------------------------------------
    def positions(self, name: str) -> dict[str, TablePosition]:
        with session_scope(self.settings) as s:
            rows = s.scalars(
                select(ConnectorPosition).where(ConnectorPosition.connector == name)
            ).all()
            return {
                r.table_name: TablePosition(
                    r.table_name,
                    dict(r.position) if r.position is not None else None,
                    r.status,
                    r.error,
                    int(r.rows_total or 0),
                    r.updated_at,
                )
                for r in rows
            }

    def save_position(
        self,
        name: str,
        table: str,
        position: dict[str, Any] | None,
        *,
        rows: int = 0,
        topic: str | None = None,
        ends: dict[int, int] | None = None,
    ) -> None:
        """Commit a table's position (after the broker acknowledged what precedes it). A
        source passes its ``topic`` and the acknowledged ``ends`` of the batch: they are
        marked with the position."""
        now = utcnow()
        with session_scope(self.settings) as s:
            moved = s.execute(
                update(ConnectorPosition)
                .where(ConnectorPosition.connector == name, ConnectorPosition.table_name == table)
                .values(
                    position=position,
                    status="ok",
                    error=None,
                    rows_total=func.coalesce(ConnectorPosition.rows_total, 0) + rows,
                    updated_at=now,
                )
            ).rowcount
            if not moved:
                s.add(
                    ConnectorPosition(
                        connector=name,
                        table_name=table,
                        position=position,
                        status="ok",
                        error=None,
                        rows_total=rows,
                        updated_at=now,
                    )
                )
                s.flush()
            if topic is not None:
                self._mark(s, name, table, topic, position, ends or {})

    def _mark(
        self,
        s: Any,
        name: str,
        table: str,
        topic: str,
        position: dict[str, Any] | None,
        ends: dict[int, int],
    ) -> None:
        s.execute(
            insert(ConnectorPositionMark).values(
                connector=name,
                table_name=table,
                topic=topic,
                position=essential(position),
                ends={str(p): e for p, e in sorted(ends.items())},
                saved_at=utcnow(),
            )
        )
        saves = self._saves[(name, table)] = self._saves.get((name, table), 0) + 1
        if saves % PRUNE_EVERY == 1:  # this store's first save of the table, then every 50th
            self._prune(s, name, table)

    def _prune(self, s: Any, name: str, table: str) -> None:
        """Keep the newest ``MARKS_KEPT`` marks of a table; the oldest kept one takes over
        what the pruned ones reached (of its topic), so that ``marks`` adds up the same."""
        where = (ConnectorPositionMark.connector == name, ConnectorPositionMark.table_name == table)
        cut = s.scalars(
            select(ConnectorPositionMark.id)
            .where(*where)
            .order_by(ConnectorPositionMark.id.desc())
            .offset(MARKS_KEPT)
            .limit(1)
        ).first()
        if cut is None:
            return
        kept = s.scalars(
            select(ConnectorPositionMark)
            .where(*where, ConnectorPositionMark.id > cut)
            .order_by(ConnectorPositionMark.id)
            .limit(1)
        ).first()
        if kept is None:  # not possible: MARKS_KEPT marks are newer than the cut
            return
        pruned = s.execute(
            select(ConnectorPositionMark.topic, ConnectorPositionMark.ends)
            .where(*where, ConnectorPositionMark.id <= cut)
            .order_by(ConnectorPositionMark.id)
        ).all()
        reached = _added_up([*pruned, (kept.topic, kept.ends)])[-1]
        kept.ends = {str(p): e for p, e in sorted(reached.items())}
        s.execute(delete(ConnectorPositionMark).where(*where, ConnectorPositionMark.id <= cut))

    def marks(self, name: str, table: str) -> list[PositionMark]:
        """The position marks of a source table, newest first, each with the most its table's
        batches reached up to it (on its topic)."""
        with session_scope(self.settings) as s:
            rows = s.scalars(
                select(ConnectorPositionMark)
                .where(
                    ConnectorPositionMark.connector == name,
                    ConnectorPositionMark.table_name == table,
                )
                .order_by(ConnectorPositionMark.id)
            ).all()
            reached = _added_up([(r.topic, r.ends) for r in rows])
            return [
                PositionMark(
                    r.id,
                    r.table_name,
                    r.topic,
                    dict(r.position) if r.position is not None else None,
                    ends,
                )
                for r, ends in reversed(list(zip(rows, reached, strict=True)))
            ]

    def rewind(self, name: str, table: str, topic: str, position: dict[str, Any] | None) -> None:
        """Set a source table's position after the broker lost its topic (``lgsp broker
        restore``): its marks are replaced by one that stands on nothing of the lost log."""
        with session_scope(self.settings) as s:
            s.execute(
                delete(ConnectorPositionMark).where(
                    ConnectorPositionMark.connector == name,
                    ConnectorPositionMark.table_name == table,
                )
            )
            row = s.get(ConnectorPosition, (name, table))
            if row is None:
                row = ConnectorPosition(connector=name, table_name=table, rows_total=0)
                s.add(row)
            row.position = position
            row.status = "ok"
            row.error = None
            row.updated_at = utcnow()
            s.flush()
            self._mark(s, name, table, topic, position, {})

    def set_status(self, name: str, table: str, status: str, error: str | None = None) -> None:
        with session_scope(self.settings) as s:
            row = s.get(ConnectorPosition, (name, table))
            if row is None:
                row = ConnectorPosition(
                    connector=name, table_name=table, position=None, rows_total=0
                )
                s.add(row)
            row.status = status
            row.error = error
            row.updated_at = utcnow()

    def reset(self, name: str, table: str | None = None) -> int:
        """Forget positions and their marks (all tables, or one) so that the next run starts
        over; returns how many positions were forgotten. (A sink's consumer-group offsets are
        on the broker: ``bus.connector_service.reset`` moves them.)"""
        self.get(name)
        with session_scope(self.settings) as s:
            stmt = delete(ConnectorPosition).where(ConnectorPosition.connector == name)
            marks = delete(ConnectorPositionMark).where(ConnectorPositionMark.connector == name)
            if table is not None:
                stmt = stmt.where(ConnectorPosition.table_name == table)
                marks = marks.where(ConnectorPositionMark.table_name == table)
            s.execute(marks)
            return int(s.execute(stmt).rowcount or 0)

    # ---- run lock ------------------------------------------------------------------------
    def acquire_lock(
        self, name: str, owner: str, ttl_s: float, table: LockTable = ConnectorLock
    ) -> RunLock:
        """Take the run lock of ``name`` for ``owner`` (``ttl_s`` seconds unless extended; a
        connector's, or in ``OperationLock`` a bus-wide operation's):
        take over an expired lock, or the lock of a crashed run of this host at once
        (``holder_crashed``; the result's ``took_over`` names it), or insert a new one, each
        in one statement, so that of concurrent runs exactly one gets it; the others get
        ``ConnectorBusyError``."""
        now = utcnow()
        expires = now + dt.timedelta(seconds=ttl_s)
        values = {"owner": owner, "acquired_at": now, "expires_at": expires}
        with session_scope(self.settings) as s:
            taken = s.execute(
                update(table).where(_key(table) == name, table.expires_at < now).values(**values)
            ).rowcount
        if taken:
            return RunLock(name, owner, now, expires)
        try:
            with session_scope(self.settings) as s:
                s.execute(insert(table).values({_key(table).key: name, **values}))
        except IntegrityError:
            held = self.lock(name, table)
            what = f"connector {name!r}" if table is ConnectorLock else name
            if held is None:  # released in between: the caller may try again at once
                raise ConnectorBusyError(f"{what} was just running; try again") from None
            if holder_crashed(held.owner) and self._take_over(name, held.owner, values, table):
                return RunLock(name, owner, now, expires, took_over=held)
            raise ConnectorBusyError(
                f"{what} is already running "
                f"(since {held.acquired_at:%Y-%m-%d %H:%M:%S} UTC, by {held.owner}; "
                f"its lock expires at {held.expires_at:%Y-%m-%d %H:%M:%S} UTC unless "
                "that run extends it)"
            ) from None
        return RunLock(name, owner, now, expires)

    def _take_over(self, name: str, holder: str, values: dict[str, Any], table: LockTable) -> bool:
        """Replace ``holder``'s lock if it still holds it (one statement: one taker wins)."""
        with session_scope(self.settings) as s:
            return bool(
                s.execute(
                    update(table).where(_key(table) == name, table.owner == holder).values(**values)
                ).rowcount
            )

    def refresh_lock(
        self, name: str, owner: str, ttl_s: float, table: LockTable = ConnectorLock
    ) -> bool:
        """Extend ``owner``'s lock of ``name``; False when ``owner`` no longer holds it."""
        expires = utcnow() + dt.timedelta(seconds=ttl_s)
        with session_scope(self.settings) as s:
            updated = s.execute(
                update(table)
                .where(_key(table) == name, table.owner == owner)
                .values(expires_at=expires)
            ).rowcount
        return bool(updated)

    def release_lock(self, name: str, owner: str, table: LockTable = ConnectorLock) -> None:
        """Release ``owner``'s lock of ``name`` (nothing when another run took it over)."""
        with session_scope(self.settings) as s:
            s.execute(delete(table).where(_key(table) == name, table.owner == owner))

    def lock(self, name: str, table: LockTable = ConnectorLock) -> RunLock | None:
        """The current holder of ``name``'s run lock (an expired one included), if any."""
        with session_scope(self.settings) as s:
            row = s.get(table, name)
            if row is None:
                return None
            return RunLock(name, row.owner, as_utc(row.acquired_at), as_utc(row.expires_at))
