"""How far a ``mode: log`` source may fall behind: the connector file's ``log:`` block, the
figures it is judged by, and the hard limit's action (PostgreSQL).

The figures (``assess``, shown by ``lgsp connector show|status``, the API's connector status,
``lgsp connector check`` and each run):

- PostgreSQL: ``behind_bytes`` is the WAL the connector's replication slot retains (the server's
  WAL position minus the slot's ``restart_lsn``): what the server cannot recycle while the
  connector is down or stuck. No time figure: the WAL does not say when it was written.
- MariaDB/MySQL: the binlog is the server's own, kept for its ``binlog_expire_logs_seconds``
  whatever the connector does. ``behind_bytes`` is the binlog not yet read (the server's
  position minus the connector's oldest table position, across files by their sizes in
  ``SHOW BINARY LOGS``), ``behind_seconds`` the time since the last acknowledged event (0 when
  nothing is left to read). A position whose file was purged is reported with the re-snapshot
  command.

``log.warn_bytes`` and ``log.warn_time`` only warn. ``log.max_bytes`` (PostgreSQL) is the hard
limit: once the slot retains more, and the connector has not confirmed that much either
(a connector that keeps up while an open transaction holds the slot's restart point back is
warned about, not cut off), ``enforce`` drops the slot (ending the walsender that holds
it, if any), which frees the WAL at the server's next checkpoint; the caller
(``bus.connector_service.log_guard``) stops the connector's log tables with the message that
says how to resume.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from typing import Any

from pydantic import field_validator
from sqlalchemy.engine import Connection

from connectors.config import Strict
from connectors.errors import FieldError
from connectors.sql import mylog, pglog
from connectors.sql.lookback import parse_duration

# a warning threshold in time reaches at most this far (a binlog kept longer is rare)
MAX_WARN_TIME_S = 90 * 86_400
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
# as PostgreSQL counts its own sizes (max_slot_wal_keep_size = 10GB): 1 kB = 1024 bytes
_UNIT = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
_SIZE_HINT = "expected a size such as 512MB, 10GB or 800kB, or a number of bytes"


def parse_size(value: Any) -> int:
    """Bytes of ``512MB``, ``10GB``, ``1.5GB``, ``800kB`` (units of 1024, as PostgreSQL's; ``MiB``
    etc. are the same) or a whole number of bytes; at least 1."""
    if isinstance(value, bool):
        raise ValueError(_SIZE_HINT)
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        unit = (match.group(2) or "b").lower().replace("ib", "b")
        size = int(float(match.group(1)) * _UNIT[unit])
    else:
        raise ValueError(_SIZE_HINT)
    if size < 1:
        raise ValueError("expected a size above 0")
    return size


def format_bytes(size: int) -> str:
    """``12.0 MB`` (units of 1024, as PostgreSQL's ``pg_size_pretty``)."""
    for unit in ("TB", "GB", "MB", "kB"):
        if size >= _UNIT[unit.lower()]:
            return f"{size / _UNIT[unit.lower()]:.1f} {unit}"
    return f"{size} bytes"


def format_seconds(seconds: float) -> str:
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{days}d" if days else "",
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
    ]
    text = " ".join(p for p in parts if p)
    return text or f"{secs}s"


class LogLimits(Strict):
    """``log:`` of a source with ``mode: log`` tables: how far it may fall behind."""

    # warn once the figure passes it: bytes (512MB, 10GB) and/or time (30m, 6h, 2d)
    warn_bytes: int | None = None
    warn_time: int | None = None
    # PostgreSQL: drop the slot and stop the log tables once the slot retains more WAL
    max_bytes: int | None = None

    @field_validator("warn_bytes", "max_bytes", mode="before")
    @classmethod
    def _size(cls, value: Any) -> int | None:
        return None if value is None else parse_size(value)

    @field_validator("warn_time", mode="before")
    @classmethod
    def _time(cls, value: Any) -> int | None:
        if value is None:
            return None
        seconds = parse_duration(value, MAX_WARN_TIME_S)
        if seconds < 1:
            raise ValueError("expected a duration above 0, such as 30m or 6h")
        return seconds

    def problems(self, type_name: str) -> list[FieldError]:
        out: list[FieldError] = []
        if self.max_bytes is not None and type_name != "postgresql":
            out.append(
                FieldError(
                    "log.max_bytes",
                    "only for postgresql: a MariaDB/MySQL binlog is kept by the server's "
                    "binlog_expire_logs_seconds, not for the connector (use warn_bytes or "
                    "warn_time)",
                )
            )
        if (
            self.warn_bytes is not None
            and self.max_bytes is not None
            and self.warn_bytes >= self.max_bytes
        ):
            out.append(
                FieldError(
                    "log.warn_bytes",
                    f"must be below log.max_bytes ({format_bytes(self.max_bytes)}): the "
                    "warning comes before the stop",
                )
            )
        if not any((self.warn_bytes, self.warn_time, self.max_bytes)):
            out.append(
                FieldError("log", "expected at least one of warn_bytes, warn_time, max_bytes")
            )
        return out

    def shown(self) -> dict[str, Any]:
        return {
            "warn_bytes": self.warn_bytes,
            "warn_time_s": self.warn_time,
            "max_bytes": self.max_bytes,
        }


# ---- figures --------------------------------------------------------------------------------


def binlog_behind(
    conn: Connection, states: Iterable[dict[str, Any] | None], connector: str
) -> dict[str, Any]:
    """The binlog a MariaDB/MySQL log source has not read yet: bytes from its oldest table
    position to the server's, across files; seconds since its last acknowledged event (0 when
    nothing is left); a position whose file was purged as ``problem``."""
    held = [s for s in states if mylog.position_key(s) is not None]
    out: dict[str, Any] = {"behind_bytes": None, "behind_seconds": None, "read_file": None}
    if not held:
        return out
    file, pos = min(
        (mylog.resume_point(s) for s in held), key=lambda p: (mylog.file_number(p[0]), p[1])
    )
    out["read_file"], out["read_position"] = file, pos
    master = conn.exec_driver_sql("SHOW MASTER STATUS").first()
    logs = mylog.binary_logs(conn)
    if master is None:
        return out
    sizes = dict(logs)
    if file not in sizes:
        out["problem"] = (
            f"binlog file {file} (the connector's position) is no longer on the server "
            f"(purged; oldest: {logs[0][0] if logs else 'none'}): changes since the last "
            f"position cannot be read; re-snapshot with: {mylog.resnapshot_command(connector)}"
        )
        return out
    server_file, server_pos = str(master[0]), int(master[1])
    if file == server_file:
        behind = max(0, server_pos - pos)
    else:
        behind = max(0, sizes[file] - pos) + server_pos
        ours, theirs = mylog.file_number(file), mylog.file_number(server_file)
        behind += sum(size for name, size in logs if ours < mylog.file_number(name) < theirs)
    last_ms = max(int(s.get("ts") or 0) for s in held if s is not None)
    out["behind_bytes"] = behind
    # the bytes left may be events of no transaction (a binlog checkpoint after a rotation):
    # by GTID, nothing is left to read when the server's last transaction of each domain is
    # one the connector has (a server without GTIDs: when no byte is left)
    gtid = conn.exec_driver_sql("SELECT @@GLOBAL.gtid_binlog_pos").scalar()
    conn.commit()
    left = behind > 0 if gtid is None else _gtids_after(str(gtid), held)
    out["behind_seconds"] = max(0, int(time.time() - last_ms / 1000)) if left and last_ms else 0
    return out


def _gtids_after(server: str, held: list[dict[str, Any] | None]) -> bool:
    """Whether the server's binlog has a transaction after every GTID the connector's
    positions name, domain by domain (a domain they do not name is not counted)."""
    ours: dict[str, int] = {}
    for state in held:
        for part in str((state or {}).get("gtid") or "").split(","):
            domain, _, seq = part.strip().rpartition("-")
            if domain and seq.isdigit():
                key = domain.split("-")[0]
                ours[key] = max(ours.get(key, -1), int(seq))
    for part in server.split(","):
        domain, _, seq = part.strip().rpartition("-")
        key = domain.split("-")[0]
        if domain and seq.isdigit() and key in ours and int(seq) > ours[key]:
            return True
    return False


def server_keep_bytes(conn: Connection) -> int | None:
    """PostgreSQL's ``max_slot_wal_keep_size`` in bytes, None when unlimited (-1)."""
    raw = str(conn.exec_driver_sql("SHOW max_slot_wal_keep_size").scalar() or "-1")
    conn.commit()
    return None if raw.strip().startswith("-") else parse_size(raw)


def unconfirmed_bytes(conn: Connection, slot: str) -> int | None:
    """The WAL written after the slot's confirmed position (what the connector has not
    acknowledged), None without the slot."""
    value = conn.exec_driver_sql(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
        "FROM pg_replication_slots WHERE slot_name = %(s)s",
        {"s": slot},
    ).scalar()
    conn.commit()
    return None if value is None else int(value)


def assess(connector: Any, status: dict[str, Any], states: Iterable[dict[str, Any] | None]) -> None:
    """Add to a log source's ``status`` (``SqlConnector.log_status()``) how far it is behind
    and what its limits say: ``behind_bytes``, ``behind_seconds``, ``limits``, ``warnings``
    and, past the hard limit, ``over_limit``."""
    limits: LogLimits | None = getattr(connector.config, "log", None)
    if status.get("kind") == "binlog":
        with connector.connect() as conn:
            status.update(binlog_behind(conn, states, connector.name))
        what = f"the binlog read is {{}} behind the server's (from {status.get('read_file')})"
    else:
        status["behind_bytes"] = status.get("retained_wal_bytes")
        status["behind_seconds"] = None
        with connector.connect() as conn:
            status["server_max_slot_wal_keep_bytes"] = server_keep_bytes(conn)
            status["unconfirmed_wal_bytes"] = unconfirmed_bytes(conn, str(status.get("slot")))
        what = f"replication slot {status.get('slot')} retains {{}} of WAL"
    status["limits"] = limits.shown() if limits is not None else None
    warnings: list[str] = []
    status["over_limit"] = None
    behind, seconds = status.get("behind_bytes"), status.get("behind_seconds")
    unconfirmed = status.get("unconfirmed_wal_bytes")
    if limits is not None and behind is not None:
        if (
            limits.max_bytes is not None
            and behind > limits.max_bytes
            and unconfirmed is not None
            and unconfirmed <= limits.max_bytes
        ):  # the connector keeps up: the server holds the WAL for the slot's restart point
            warnings.append(
                f"{what.format(format_bytes(behind))}, over log.max_bytes = "
                f"{format_bytes(limits.max_bytes)}, but the connector has confirmed all but "
                f"{format_bytes(unconfirmed)} of it: the slot's restart point waits for a "
                "transaction still open (pg_stat_activity shows it) or for the server's next "
                "note of running transactions; the slot is not dropped"
            )
        elif limits.max_bytes is not None and behind > limits.max_bytes:
            status["over_limit"] = (
                f"{what.format(format_bytes(behind))}, over the hard limit log.max_bytes = "
                f"{format_bytes(limits.max_bytes)}"
            )
        elif limits.warn_bytes is not None and behind > limits.warn_bytes:
            warnings.append(
                f"{what.format(format_bytes(behind))} ({behind} bytes), over log.warn_bytes = "
                f"{format_bytes(limits.warn_bytes)}"
                + (
                    f"; at log.max_bytes = {format_bytes(limits.max_bytes)} the slot is dropped "
                    "and the connector stops"
                    if limits.max_bytes is not None
                    else ""
                )
            )
    if limits is not None and limits.warn_time is not None and seconds is not None:
        if seconds > limits.warn_time:
            warnings.append(
                f"the last change read is {format_seconds(seconds)} old and the binlog has "
                f"moved on since, over log.warn_time = {format_seconds(limits.warn_time)}"
            )
    keep = status.get("server_max_slot_wal_keep_bytes")
    if limits is not None and limits.max_bytes is not None and keep is not None:
        if limits.max_bytes >= keep:
            warnings.append(
                f"log.max_bytes ({format_bytes(limits.max_bytes)}) is not below the server's "
                f"max_slot_wal_keep_size ({format_bytes(keep)}): the server invalidates the "
                "slot first"
            )
    status["warnings"] = warnings


def enforce(connector: Any, status: dict[str, Any]) -> str | None:
    """Past the hard limit (``assess`` set ``over_limit``; PostgreSQL): drop the slot, freeing
    its WAL, and return the message that stops the connector's log tables; else None."""
    over = status.get("over_limit")
    if not over or status.get("kind") == "binlog" or not status.get("exists"):
        return None
    with connector.connect() as conn:
        drop_slot(conn, str(status["slot"]))
    return (
        f"{over}: the slot was dropped to keep the server's disk from filling, so the changes "
        "since the last position can no longer be read; resume with a new snapshot: "
        + pglog.resnapshot_command(connector.name)
    )


def drop_slot(conn: Connection, slot: str, timeout_s: float = 10.0) -> None:
    """Drop ``slot``, first ending the walsender that holds it (a run stuck while the WAL
    grows); a slot already gone is no error."""
    pid = conn.exec_driver_sql(
        "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %(s)s", {"s": slot}
    ).scalar()
    if pid:
        conn.exec_driver_sql("SELECT pg_terminate_backend(%(p)s)", {"p": pid})
    conn.commit()
    deadline = time.monotonic() + timeout_s
    while True:
        row = conn.exec_driver_sql(
            "SELECT active FROM pg_replication_slots WHERE slot_name = %(s)s", {"s": slot}
        ).first()
        conn.commit()
        if row is None:
            return
        if not row[0] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    conn.exec_driver_sql("SELECT pg_drop_replication_slot(%(s)s)", {"s": slot})
    conn.commit()
