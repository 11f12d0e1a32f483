"""``lgsp connector snapshot``: request a chunked re-snapshot of a log source's tables, which
the connector's next run performs between its stream's transactions
(``connectors.sql.chunked_snapshot``).

The request is written into each table's position (``chunked``, from the first chunk), under
the connector's run lock: a run going on meanwhile would overwrite it (the request is refused
while one holds the lock, like ``lgsp connector reset``). A table that has not finished its
first snapshot is left alone: its next run reads it whole anyway.

Refused, with the command that does work (``lgsp connector reset NAME && lgsp connector run
NAME``, a new slot and a snapshot of every table):

- a connector that is neither PostgreSQL nor MariaDB/MySQL (``mysql``: the binlog reader,
  whose watermark is the binlog position of ``START TRANSACTION WITH CONSISTENT SNAPSHOT``);
- a connector stopped (``halt`` in its positions: a TRUNCATE, an incompatible schema change,
  an UPDATE without its TOASTed value, the log size limit that dropped the slot). A chunked
  snapshot streams on from the kept position, which is before the change that stopped it: the
  run would read that change again and stop again (or find no slot). The slot lost or
  invalidated without a stop kept is refused by the run itself, with the same command.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.errors import ConfigurationError, NotFoundError
from bus.run_lock import HeldLock
from connectors.sql import mylog
from connectors.sql.chunked_snapshot import request

LOCK_TTL_S = 60.0
LOG_TYPES = ("postgresql", "mysql")  # the sources whose log readers perform chunked snapshots


@dataclass(frozen=True)
class Requested:
    table: str
    requested: bool  # False: its first snapshot has not finished, the next run reads it whole
    restarted: bool = False  # a chunked snapshot was under way: it starts again from chunk 1


def request_snapshot(settings: Settings, name: str, table: str | None = None) -> list[Requested]:
    """Request a chunked re-snapshot of connector ``name``'s ``mode: log`` tables (or of
    ``table``). ``NotFoundError`` for a table the connector does not have,
    ``ConfigurationError`` for a sink or a table not in ``mode: log``, ``ConnectorBusyError``
    while a run holds the connector's lock."""
    store = ConnectorStore(settings)
    stored = store.get(name)
    if stored.role != "source":
        raise ConfigurationError(
            f"connector {name!r} is a {stored.role}: only a source's tables are snapshotted "
            f"(a sink reads its topics again after: lgsp connector reset {name})"
        )
    again = f"lgsp connector reset {name} && lgsp connector run {name}"
    if stored.type not in LOG_TYPES:
        raise ConfigurationError(
            f"connector {name!r} is a {stored.type} source: chunked snapshots are built for "
            f"PostgreSQL and MariaDB mode: log tables only; re-snapshot with: {again}"
        )
    modes = {str(t.get("table")): t.get("mode") for t in stored.config.get("tables", [])}
    if table is not None:
        if table not in stored.topics:
            raise NotFoundError(
                f"--table: {table!r} is not a table of connector {name!r}; "
                f"its tables: {', '.join(stored.topics)}"
            )
        if modes.get(table) != "log":
            raise ConfigurationError(
                f"--table: table {table!r} of connector {name!r} is not in mode: log (a chunked "
                "snapshot runs between the changes of the log); read it again from the start "
                f"with: lgsp connector reset {name} --table {table}"
            )
        chosen = [table]
    else:
        chosen = [t for t in stored.topics if modes.get(t) == "log"]
        if not chosen:
            raise ConfigurationError(
                f"connector {name!r} has no table in mode: log (a chunked snapshot runs between "
                f"the changes of the log); read it again with: lgsp connector reset {name}"
            )
    out: list[Requested] = []
    now_ms = int(time.time() * 1000)
    with HeldLock(store, name, LOCK_TTL_S):
        positions = store.positions(name)
        halts = [p.position["halt"] for p in positions.values() if (p.position or {}).get("halt")]
        if halts:
            raise ConfigurationError(
                f"connector {name!r} is stopped ({halts[0]}); a chunked snapshot streams on from "
                "the stopped position and would stop there again: re-snapshot with: " + again
            )
        # the first snapshot is over once the stream began (its last table's end says so)
        streaming = any(
            p.position and p.position.get("phase") == "stream" and "lsn" in p.position
            for p in positions.values()
        )
        for t in chosen:
            held = positions.get(t)
            position = held.position if held is not None else None
            if stored.type == "mysql":  # each table has a snapshot of its own
                streaming = mylog.position_key(position) is not None
            if not streaming or not position or position.get("mode") != "log":
                out.append(Requested(t, requested=False))
                continue
            store.save_position(name, t, request(position, t, now_ms))
            out.append(Requested(t, requested=True, restarted="chunked" in position))
    return out
