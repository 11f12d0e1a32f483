"""MariaDB/MySQL log-based capture (``mode: log``): the server's row binlog, read as a
replica would read it (``pymysqlreplication``, a ``COM_BINLOG_DUMP`` from a binlog file and
offset), beside PostgreSQL's ``connectors.sql.pglog`` with the same envelope and rules.

The server must write whole rows to its binlog: ``log_bin`` on, ``binlog_format = ROW``,
``binlog_row_image = FULL`` (the old row of an update or delete is whole) and
``binlog_row_metadata = FULL`` (the log names each column and says whether an integer is
unsigned, so that a value is never read against the wrong column or sign); the user needs
REPLICATION SLAVE (read the binlog) and REPLICATION CLIENT (MariaDB: BINLOG MONITOR; see the
binlog's files and position). Registration (``check``) and every run refuse a server or user
that lacks one, naming the setting and the my.cnf line to add.

First run (and a table with no complete log position: added, reset, its snapshot cut short):
each such table is read in a transaction opened with ``START TRANSACTION WITH CONSISTENT
SNAPSHOT`` (no global lock: InnoDB's MVCC snapshot), through ``SqlSource.read_stream``'s
snapshot mode (op ``r``). Right after the snapshot is opened, in that transaction, the server's
status variables ``binlog_snapshot_file`` / ``binlog_snapshot_position`` give the binlog
position that snapshot is consistent with (MariaDB: every transaction before it is in the
snapshot, none after it), and ``BINLOG_GTID_POS(file, position)`` its GTID. That position is
the table's position: the stream starts there for it, so no change is lost or read twice
between snapshot and stream. Each table has its own snapshot and position.

Streaming: the stream starts at the oldest position of the connector's tables (a transaction
boundary) and reads to the end of the binlog (a non-blocking dump); for each table, changes at
or before its own position are skipped. Rows of WriteRows/UpdateRows/DeleteRows become events
``c``/``u``/``d`` with ``after`` and ``before`` (the whole old row, ``binlog_row_image =
FULL``); ``source.position`` is ``<GTID>:<index of the event among the transaction's rows of
the connector's tables>`` on MariaDB (``<file>:<offset of the transaction>:<index>`` where a
server writes no GTID). MySQL is refused for now: it has no ``binlog_snapshot_file``, so a
snapshot consistent with a binlog position would need a global read lock. Values go through the
same converters as a snapshot read, after turning the binlog's Python values into the ones the
driver gives for the same column (``_Values``): FLOAT as its shortest text, TIMESTAMP in the
session's time zone, SET as its text, BIT as bytes. ``ts_ms`` is the event's timestamp (whole
seconds), never earlier than the last one published nor than the snapshot's: the sinks keep a
row's newest version by ``ts_ms``, and a statement's timestamp is when it started, which can be
before an earlier-committed change of the same row (it waited for a lock).

Positions: a batch's state holds, per table, the binlog file, the offset where the last event's
transaction starts, the event's index in it and, when the batch ends the transaction, the
offset after it (``end``). The caller commits a state only once the broker acknowledged the
batch (``bus.sync``). After a crash the next run starts again at the oldest table's last
transaction and skips what each table had published: duplicates can only come after the
stored position, and nothing before it is lost. When a pass ends, tables whose position is
behind the end of what was read move to it (an empty batch), so that a quiet table does not
keep the next run reading old binlog files the server may since have purged.

Chunked re-snapshots (``lgsp connector snapshot``, ``connectors.sql.chunked_snapshot``): while
a table's position holds a request, the stream reads a primary-key chunk of it between two
transactions, each in a snapshot of its own whose binlog position P is its watermark
(``BinlogWatermark``), and publishes the chunk's rows (op ``r``) when the stream reaches P; the
pass does not end until the chunked snapshot has (the binlog is read again and again to its
end meanwhile). Stream batches of the table carry its progress along.

Schema changes: a Table_map event precedes each row event and (``binlog_row_metadata =
FULL``) describes the table's columns as they were when the row was written. The columns of
the last Table_map a table's events were read with are kept in its position (``columns``);
when a Table_map of the table differs, ``logschema.column_changes`` (the rule PostgreSQL's
Relation messages go through too) tells what changed. An incompatible change (a dropped
column, a narrowed type, a changed key) stops the read before the table's first row after it
(position kept, the stop kept in it) naming the table, the column, the change, the ALTER's
binlog position and the re-snapshot command. A compatible one goes on: the run's discovery
(the catalog of now) already has an added column, whose value is null in rows written before
the ALTER; a column added after the run's discovery ends the read before the first row that
has it, so that the next run registers the schema with it and reads that row again. A table
whose Table_map columns are not known yet (just snapshotted, or a position from before this
rule) takes the first Table_map it meets as they are: a change between its snapshot and its
first row in the binlog is not compared.

DROP, TRUNCATE, RENAME (and ALTER ... RENAME TO), CREATE OR REPLACE of a captured table stop
the read at its transaction (position kept before it) with an error saying how to re-snapshot:
TRUNCATE lists no rows, and the others leave the rows that follow under another table.
A binlog file the position needs that the server no longer has stops the read too.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import struct
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Connection

from connectors.base import Batch, Stream
from connectors.errors import ConnectorConfigError, ConnectorUnavailableError, TableStoppedError
from connectors.sql import logbatch, logschema
from connectors.sql.chunked_snapshot import ChunkedSnapshots, Mark, chunk_reader
from connectors.sql.logbatch import Pending
from connectors.sql.types import split_table

log = logging.getLogger(__name__)

MODE = "log"

# server setting -> (expected value, the my.cnf line under [mysqld])
SETTINGS: dict[str, tuple[str, str]] = {
    "log_bin": ("ON", "log_bin = mysql-bin (and server_id = 1), then restart the server"),
    "binlog_format": ("ROW", "binlog_format = ROW"),
    "binlog_row_image": ("FULL", "binlog_row_image = FULL"),
    "binlog_row_metadata": ("FULL", "binlog_row_metadata = FULL (MariaDB 10.5+, MySQL 8.0.14+)"),
}
# privilege -> the names servers list it under (MariaDB 10.5 renamed REPLICATION CLIENT)
PRIVILEGES: dict[str, tuple[str, ...]] = {
    "REPLICATION SLAVE": ("REPLICATION SLAVE", "REPLICATION REPLICA"),
    "REPLICATION CLIENT": ("REPLICATION CLIENT", "BINLOG MONITOR"),
}


def resnapshot_command(connector: str) -> str:
    return f"lgsp connector reset {connector} && lgsp connector run {connector}"


def server_problems(conn: Connection) -> list[str]:
    """What the server or the connection's user lacks for binlog capture, each naming the
    setting (and the my.cnf line) or the privilege (empty when nothing is missing)."""
    names = ", ".join(f"'{n}'" for n in SETTINGS)
    found = {
        str(k).lower(): str(v)
        for k, v in conn.exec_driver_sql(
            f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})"
        ).all()
    }
    problems: list[str] = []
    version = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
    if "mariadb" not in version.lower():
        problems.append(
            f"server {version} is not MariaDB: mode log needs MariaDB's binlog_snapshot_file "
            "status variable (a snapshot consistent with a binlog position without a global "
            "lock); MySQL is not supported yet: use snapshot or incremental"
        )
    for name, (expected, line) in SETTINGS.items():
        value = found.get(name)
        if value is None or value.upper() != expected:
            dynamic = (
                f"; SET GLOBAL {name} = '{expected}' applies it without a restart"
                if name != "log_bin" and value is not None
                else ""
            )
            problems.append(
                f"server setting {name} is {value!r}, expected {expected!r} (add "
                f"'{line}' under [mysqld] in my.cnf{dynamic})"
            )
    held = {
        str(p).upper()
        for p in conn.exec_driver_sql(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = "
            "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', "
            "SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')"
        ).scalars()
    }
    user = conn.exec_driver_sql("SELECT CURRENT_USER()").scalar()
    missing = [p for p, aliases in PRIVILEGES.items() if not held.intersection(aliases)]
    if missing:
        problems.append(
            f"user {user} lacks the privilege{'s' if len(missing) > 1 else ''} "
            f"{' and '.join(missing)} (GRANT {', '.join(missing)} ON *.* TO {user})"
        )
    conn.commit()
    return problems


# ---- positions --------------------------------------------------------------------------------


def file_number(name: str) -> int:
    """The sequence number of a binlog file (``mysql-bin.000042`` -> 42)."""
    _, _, suffix = name.rpartition(".")
    return int(suffix) if suffix.isdigit() else 0


Key = tuple[int, int, int]  # (file number, offset of the transaction, index in it)


def position_key(state: dict[str, Any] | None) -> Key | None:
    """The last change a table published (a snapshot: the position it is consistent with,
    index -1), None without a complete log position."""
    if not state or state.get("mode") != MODE or state.get("phase") != "stream":
        return None
    if "file" not in state or "pos" not in state:
        return None
    return file_number(str(state["file"])), int(state["pos"]), int(state["index"])


def resume_point(state: dict[str, Any]) -> tuple[str, int]:
    """Where a table's next read starts: after its transaction when that was published whole,
    else at its start (the events published already are skipped)."""
    if state.get("end") is not None:
        return str(state.get("end_file") or state["file"]), int(state["end"])
    return str(state["file"]), int(state["pos"])


def resume_floor(acked: Iterable[dict[str, Any]]) -> int:
    """The version floor a read resumes with: the newest ``ts`` kept in the tables'
    positions (every change and chunk published before carries one no newer)."""
    return max((int(s.get("ts") or 0) for s in acked), default=0)


@dataclass
class BinlogStatus:
    """What ``lgsp connector show`` reports of the server's binlog for a log source."""

    file: str | None
    position: int | None
    gtid: str | None
    oldest_file: str | None
    files: int
    bytes: int
    expire_seconds: int | None = None
    kind: str = "binlog"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "file": self.file,
            "position": self.position,
            "gtid": self.gtid,
            "oldest_file": self.oldest_file,
            "files": self.files,
            "bytes": self.bytes,
            "expire_seconds": self.expire_seconds,
            **self.extra,
        }


def binary_logs(conn: Connection) -> list[tuple[str, int]]:
    rows = conn.exec_driver_sql("SHOW BINARY LOGS").all()
    conn.commit()
    return [(str(r[0]), int(r[1])) for r in rows]


def binlog_status(conn: Connection) -> BinlogStatus:
    master = conn.exec_driver_sql("SHOW MASTER STATUS").first()
    logs = binary_logs(conn)
    gtid = _scalar(conn, "SELECT @@GLOBAL.gtid_binlog_pos")  # MariaDB only
    expire = _scalar(conn, "SELECT @@GLOBAL.binlog_expire_logs_seconds")
    conn.commit()
    return BinlogStatus(
        file=str(master[0]) if master else None,
        position=int(master[1]) if master else None,
        gtid=str(gtid) if gtid else None,
        oldest_file=logs[0][0] if logs else None,
        files=len(logs),
        bytes=sum(size for _, size in logs),
        expire_seconds=None if expire is None else int(expire),
    )


def _scalar(conn: Connection, sql: str) -> Any:
    try:
        value = conn.exec_driver_sql(sql).scalar()
    except Exception:
        conn.rollback()
        return None
    conn.commit()
    return value


def server_id_for(connector: str) -> int:
    """The replica id the connector's binlog reads register with: stable per connector, in a
    range servers' own ids rarely use (two readers with one id would cut each other off)."""
    return 0x40000000 + zlib.crc32(connector.encode()) % 0x3FFFFFFF


def session_zone(conn: Connection) -> dt.tzinfo:
    """The time zone a snapshot read's TIMESTAMP values are in (the session's)."""
    zone, system, offset = conn.exec_driver_sql(
        "SELECT @@session.time_zone, @@system_time_zone, "
        "TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW())"
    ).one()
    conn.commit()
    name = str(system if str(zone).upper() == "SYSTEM" else zone)
    match = re.fullmatch(r"([+-])(\d{1,2}):(\d{2})", name)
    if match:
        sign = -1 if match.group(1) == "-" else 1
        minutes = int(match.group(2)) * 60 + int(match.group(3))
        return dt.timezone(sign * dt.timedelta(minutes=minutes))
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError, OSError):  # an abbreviation ('CET', '+07'): now's offset
        return dt.timezone(dt.timedelta(seconds=int(offset)))


def snapshot_point(conn: Connection, connector: str) -> tuple[str, int, str | None]:
    """The binlog position (file, offset, GTID) the transaction just opened with ``START
    TRANSACTION WITH CONSISTENT SNAPSHOT`` on ``conn`` is consistent with (MariaDB: every
    transaction committed before it is in the snapshot, none after it)."""
    status = {
        str(k).lower(): v
        for k, v in conn.exec_driver_sql("SHOW STATUS LIKE 'binlog_snapshot_%%'").all()
    }
    if "binlog_snapshot_file" not in status:  # MySQL: the read stops before it starts
        raise ConnectorConfigError(
            [
                "mode: log: this server has no binlog_snapshot_file status variable "
                "(MariaDB has it): a snapshot consistent with a binlog position "
                "cannot be taken without a global lock"
            ],
            name=connector,
        )
    file = str(status["binlog_snapshot_file"])
    pos = int(status["binlog_snapshot_position"])
    gtid = conn.exec_driver_sql("SELECT BINLOG_GTID_POS(%(f)s, %(p)s)", {"f": file, "p": pos})
    found = gtid.scalar()
    return file, pos, str(found) if found else None


@dataclass(frozen=True)
class BinlogWatermark:
    """A chunk's watermark on MariaDB (``connectors.sql.chunked_snapshot``): the one binlog
    position P its snapshot is consistent with. The binlog is in commit order and P splits it
    exactly (before: in the chunk; after: not), so the chunk is published when the stream
    reaches P, before any transaction after it, and no streamed change drops a row."""

    file: str
    pos: int
    gtid: str | None

    @property
    def point(self) -> tuple[int, int]:
        return file_number(self.file), self.pos

    def visible(self, at: tuple[int, int]) -> bool:
        return at < self.point

    def settled(self, at: tuple[int, int]) -> bool:
        return at < self.point  # every later chunk's position is at or after this one

    def due(self, reached: tuple[int, int]) -> bool:
        return reached >= self.point

    def position(self) -> str:
        """``<GTID at P>:-1`` (``<file>:<P>:-1`` without GTIDs), as a table's snapshot position
        is stored: the binlog state the rows hold, every transaction up to that GTID."""
        return f"{self.gtid}:-1" if self.gtid else f"{self.file}:{self.pos}:-1"


# ---- DDL --------------------------------------------------------------------------------------

_IDENT = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})?"
_DDL = re.compile(
    r"^\s*(?P<verb>ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE(?:\s+IF\s+EXISTS)?|"
    r"DROP\s+(?:TEMPORARY\s+)?TABLES?(?:\s+IF\s+EXISTS)?|TRUNCATE(?:\s+TABLE)?|"
    r"RENAME\s+TABLES?|CREATE\s+OR\s+REPLACE\s+(?:TEMPORARY\s+)?TABLE)\s+(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_COMMENT = re.compile(r"/\*.*?\*/|--[^\n]*|#[^\n]*", re.DOTALL)


def _unquote(name: str) -> str:
    parts = re.findall(_IDENT, name)
    return ".".join(p[1:-1].replace("``", "`") if p.startswith("`") else p for p in parts)


_RENAME_TABLE = re.compile(r"(?:^|,)\s*RENAME\s+(?!(?:COLUMN|INDEX|KEY)\b)", re.IGNORECASE)


def renames_table(query: str) -> bool:
    """Whether an ``ALTER TABLE`` statement renames the table (``RENAME [TO|AS] name``, not a
    column's or an index's rename)."""
    match = _DDL.match(_COMMENT.sub(" ", query))
    if match is None:
        return False
    rest = re.sub(rf"^\s*{_NAME}", ",", match.group("rest"))  # the table's own name
    rest = re.sub(r"'(?:[^']|'')*'|`(?:[^`]|``)*`", "''", rest)  # strings, quoted names
    return bool(_RENAME_TABLE.search(rest))


def ddl_tables(query: str, schema: str) -> tuple[str, list[str]] | None:
    """The statement's verb and the ``schema.table`` names it changes, or None for a
    statement that changes no table's rows or shape (DML, CREATE TABLE, ...)."""
    text = _COMMENT.sub(" ", query)
    match = _DDL.match(text)
    if match is None:
        return None
    verb = " ".join(match.group("verb").upper().split()[:2])
    rest = match.group("rest")
    if verb.startswith(("DROP", "RENAME")):
        names = re.findall(_NAME, rest.split(";")[0])
        names = [n for n in names if n.upper() not in ("TO", "RESTRICT", "CASCADE", "WAIT")]
    else:
        first = re.match(rf"\s*({_NAME})", rest)
        names = [first.group(1)] if first else []
    out = []
    for name in names:
        plain = _unquote(name)
        out.append(plain if "." in plain else f"{schema}.{plain}")
    return verb, out


# ---- a table's columns from the catalog ----------------------------------------------------------

# information_schema DATA_TYPE -> the binlog's type code (pymysqlreplication FIELD_TYPE)
_CATALOG_TYPES = {
    "tinyint": 1,
    "smallint": 2,
    "mediumint": 9,
    "int": 3,
    "bigint": 8,
    "float": 4,
    "double": 5,
    "decimal": 246,
    "varchar": 15,
    "varbinary": 15,
    "char": 254,
    "binary": 254,
    "enum": 247,
    "set": 248,
    "date": 10,
    "time": 19,
    "datetime": 18,
    "timestamp": 17,
    "year": 13,
    "bit": 16,
    "json": 245,  # MySQL's (MariaDB lists a JSON column as longtext)
}
_CATALOG_BLOBS = {"tiny": 1, "": 2, "medium": 3, "long": 4}


def catalog_columns(conn: Connection, schema: str, table: str) -> list[logschema.Column]:
    """A table's columns as its Table_map events would describe them (``logschema.Column``),
    from ``information_schema`` (the definition of now): the columns a snapshot was read with,
    until the table's first Table_map replaces them."""
    rows = conn.exec_driver_sql(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, COLUMN_KEY, "
        "CHARACTER_OCTET_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, "
        "COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %(s)s "
        "AND TABLE_NAME = %(t)s ORDER BY ORDINAL_POSITION",
        {"s": schema, "t": table},
    ).all()
    out = []
    for name, data_type, column_type, nullable, key, octets, precision, scale, fsp, coll in rows:
        kind = str(data_type).lower()
        full = str(column_type).lower()
        blob = re.fullmatch(r"(tiny|medium|long|)(text|blob)", kind)
        binary = kind in ("binary", "varbinary") or (blob is not None and blob.group(2) == "blob")
        members = None
        if kind in ("enum", "set"):
            members = [m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", full)]
        column = SimpleNamespace(
            type=252 if blob else _CATALOG_TYPES.get(kind, 255),  # else: named as geometry
            name=str(name),
            unsigned="unsigned" in full,
            is_primary=str(key).upper() == "PRI",
            collation_name="binary" if binary else coll,
            max_length=int(octets or 0),
            length_size=_CATALOG_BLOBS[blob.group(1)] if blob else 4,
            precision=int(precision or 0),
            decimals=int(scale or 0),
            fsp=int(fsp or 0),
            bits=int(precision or 0),
            enum_values=[""] + members if members is not None and kind == "enum" else None,
            set_values=members if kind == "set" else None,
        )
        out.append(logschema.binlog_column(column, str(nullable).upper() == "YES"))
    return out


# ---- values -----------------------------------------------------------------------------------


class _Values:
    """A binlog row's values as the driver gives them for the same columns in a snapshot read
    (``SqlSource``'s converters then make both the same Avro value)."""

    # pymysqlreplication.constants.FIELD_TYPE
    TIMESTAMP, FLOAT, SET, BIT, DATE, DATETIME = 7, 4, 248, 16, 10, 12
    TIMESTAMP2, DATETIME2, NEWDATE, JSON = 17, 18, 14, 245

    def __init__(self, zone: dt.tzinfo) -> None:
        self.zone = zone

    def value(self, column: Any, value: Any, none_source: str | None) -> Any:
        kind = column.type
        if value is None:
            if none_source == "empty set":
                return ""
            if none_source and none_source.startswith("out of date"):
                return "0000-00-00"  # the driver's text for a zero date: refused per row
            return None
        if kind == self.FLOAT:
            return _float32(value)
        if kind in (self.TIMESTAMP, self.TIMESTAMP2):
            aware = value.replace(tzinfo=dt.UTC).astimezone(self.zone)
            return aware.replace(tzinfo=None)
        if isinstance(value, set | frozenset):  # SET: the driver gives its text
            return ",".join(v for v in (column.set_values or []) if v in value)
        if kind == self.BIT:
            return int(value, 2).to_bytes(int(column.bytes), "big")
        if kind == self.JSON and not isinstance(value, str):  # MySQL's binary JSON
            import json

            return json.dumps(_text_keys(value), ensure_ascii=False)
        return value


def _text_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            (k.decode() if isinstance(k, bytes) else k): _text_keys(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_text_keys(v) for v in value]
    return value.decode() if isinstance(value, bytes) else value


def _float32(value: float) -> float:
    """A FLOAT as the server prints it: the shortest decimal that is the same 32-bit float
    (the binlog holds the float's bits, a snapshot read its text)."""
    packed = struct.pack("<f", value)
    for digits in range(1, 10):
        text = f"{value:.{digits}g}"
        try:
            if struct.pack("<f", float(text)) == packed:
                return float(text)
        except OverflowError:  # rounded past the largest float
            continue
    return float(value)


# ---- the reader -------------------------------------------------------------------------------


class MyLogReader:
    """One read of a connector's log tables (snapshots where needed, then the binlog to its
    end), as batches of one table each."""

    def __init__(self, source: Any, streams: list[Stream]) -> None:
        self.source = source  # connectors.sql.source.SqlSource
        self.connector = source.connector
        self.streams = {s.name: s for s in streams}
        self.batch_size = int(self.connector.batch_size)
        self._acked: dict[str, dict[str, Any]] = {}
        self._by_qualified: dict[str, str] = {}
        self._values = _Values(dt.UTC)
        self._ts_floor = 0
        self._gtids = False
        self._processor_cache: dict[str, list[Any]] = {}
        # per table: the columns of the last Table_map its events were read with (and their
        # form kept in its position), the ALTER read since then
        self._columns: dict[str, list[logschema.Column]] = {}
        self._columns_kept: dict[str, list[list[Any]]] = {}
        self._altered: dict[str, str] = {}
        self._from_catalog: set[str] = set()  # columns read from the catalog at a snapshot
        self._chunks = ChunkedSnapshots(self.streams, {})  # lgsp connector snapshot
        self._reached: tuple[int, int] = (0, 0)  # where the last binlog read ended

    def _qualify(self, conn: Connection) -> None:
        database = conn.exec_driver_sql("SELECT DATABASE()").scalar() or ""
        conn.commit()
        for name in self.streams:
            schema, table = split_table(name)
            self._by_qualified[f"{schema or database}.{table}"] = name

    # ---- the read ------------------------------------------------------------------------------
    def read(self, positions: dict[str, dict[str, Any] | None]) -> Iterator[Batch]:
        held = {name: positions.get(name) for name in self.streams}
        halted = [p["halt"] for p in held.values() if p is not None and p.get("halt")]
        if halted:
            raise TableStoppedError(", ".join(self.streams), f"stopped earlier: {halted[0]}")
        with self.connector.connect() as conn:
            problems = server_problems(conn)
            if problems:
                raise ConnectorConfigError(problems, name=self.connector.name)
            self._qualify(conn)
            self._values = _Values(session_zone(conn))
            self._gtids = bool(_scalar(conn, "SELECT @@GLOBAL.gtid_binlog_pos") is not None)
        self._chunks = ChunkedSnapshots(
            self.streams, held, chunk_reader(self.source, _clock_ms, self._watermark)
        )
        for name, state in held.items():
            if position_key(state) is not None:
                self._acked[name] = dict(state)  # type: ignore[arg-type]
                kept = state.get("columns") if state else None
                if kept:
                    self._keep_columns(
                        name,
                        [logschema.Column.from_list(c) for c in kept],
                        from_catalog=bool(state and state.get("columns_catalog")),
                    )
                if state and state.get("altered"):
                    self._altered[name] = str(state["altered"])
        for name, stream in self.streams.items():
            if name not in self._acked:
                yield from self._snapshot(stream, held.get(name))
        self._ts_floor = resume_floor(self._acked.values())
        start = min(
            self._acked.values(), key=lambda s: _point_key(resume_point(s))
        )  # the oldest table's next change
        file, pos = resume_point(start)
        with self.connector.connect() as conn:
            files = [f for f, _ in binary_logs(conn)]
        if file not in files:
            raise TableStoppedError(
                ", ".join(self.streams),
                f"binlog file {file} is no longer on the server (purged; oldest: "
                f"{files[0] if files else 'none'}): changes since the last position cannot be "
                f"read; re-snapshot with: {resnapshot_command(self.connector.name)}",
            )
        yield from self._stream(file, pos)

    def _snapshot(self, stream: Stream, earlier: dict[str, Any] | None = None) -> Iterator[Batch]:
        """The table read (op ``r``) in a consistent snapshot; its position is the binlog
        position that snapshot is consistent with, or, when it redoes a snapshot cut short
        (``earlier``), the older position of that one: rows the cut-short snapshot published
        and that were deleted since must get their ``d`` from the stream (as ``pglog`` does
        with its kept slot). The changes replayed from there carry ``ts_ms`` no earlier than
        the new snapshot's (binlog times are whole seconds: an older floor would make the
        sinks drop changes made after the snapshot in its second), so a sink applies them in
        order and ends at the table's state; until the replay has passed the new snapshot's
        point a sink may show rows older than that snapshot's."""
        at: dict[str, Any] = {}

        def in_snapshot(c: Connection) -> Connection:
            c = c.execution_options(isolation_level="REPEATABLE READ")
            c.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            at["file"], at["pos"], at["gtid"] = snapshot_point(c, self.connector.name)
            schema, _, table = next(
                q for q, n in self._by_qualified.items() if n == stream.name
            ).partition(".")
            at["columns"] = catalog_columns(c, schema, table)
            return c

        with self.connector.connect() as conn:
            snapshot_ms = int(
                conn.exec_driver_sql("SELECT FLOOR(UNIX_TIMESTAMP(NOW(3)) * 1000)").scalar_one()
            )
            conn.commit()
        begin = {"mode": "snapshot", "snapshot_ms": snapshot_ms, "after": None, "done": False}
        redo = (
            earlier is not None
            and earlier.get("mode") == MODE
            and earlier.get("phase") == "snapshot"
            and "file" in earlier
            and "pos" in earlier
        )
        for batch in self.source.read_stream(stream, begin, prepare=in_snapshot, mode="snapshot"):
            inner = batch.state or {}
            done = bool(inner.get("done"))
            point = at
            if redo and earlier is not None:
                if _point_key((earlier["file"], int(earlier["pos"]))) < _point_key(
                    (at["file"], at["pos"])
                ):
                    point = earlier
            batch.state = {
                "mode": MODE,
                "phase": "stream" if done else "snapshot",
                "file": point["file"],
                "pos": int(point["pos"]),
                "index": -1,
                "end": int(point["pos"]),
                "gtid": point.get("gtid"),
                "ts": snapshot_ms,
                "rows": inner.get("rows", 0),
                "snapshot_ms": inner.get("snapshot_ms"),
                "columns": [c.to_list() for c in at["columns"]],
                "columns_catalog": True,
            }
            yield batch
            if done:
                self._acked[stream.name] = dict(batch.state)
                self._keep_columns(stream.name, at["columns"], from_catalog=True)

    def _reader(self, file: str, pos: int) -> Any:
        kinds = _kinds()
        from pymysqlreplication import BinLogStreamReader

        url = self.connector.url
        settings = {
            "host": url.host or "localhost",
            "port": int(url.port or 3306),
            "user": url.username or "",
            "password": url.password or "",
            "connect_timeout": max(1, int(self.connector.config.connection.connect_timeout_s)),
        }
        schemas = sorted({q.split(".", 1)[0] for q in self._by_qualified})
        tables = sorted({q.split(".", 1)[1] for q in self._by_qualified})
        return BinLogStreamReader(
            connection_settings=settings,
            server_id=server_id_for(self.connector.name),
            resume_stream=True,
            log_file=file,
            log_pos=pos,
            blocking=False,  # to the binlog's end, then stop
            only_events=list(kinds),
            only_schemas=schemas,  # other tables' rows are not even decoded
            only_tables=tables,
            enable_logging=False,
        )

    def _stream(self, file: str, pos: int) -> Iterator[Batch]:
        yield from self._events(self._binlog(file, pos), file, pos)

    def _binlog(self, file: str, pos: int) -> Iterator[Any]:
        """The binlog's events from ``file:pos`` to its end, then None; while a chunked
        snapshot goes on, a new read from where the last one ended, to the end again, then None
        again (the dump is non-blocking: it ends where the binlog ended when it got there)."""
        while True:
            try:
                reader = self._reader(file, pos)
            except Exception as exc:
                raise ConnectorUnavailableError(
                    f"connection.url: cannot open a binlog reader ({type(exc).__name__})"
                ) from exc
            count = 0
            try:
                for event in reader:
                    count += 1
                    yield event
                # where the dump ended, filtered events included: the server ends a dump at
                # the end of a whole transaction group
                file, pos = str(reader.log_file), int(reader.log_pos)
            finally:
                reader.close()
            self._reached = _point_key((file, pos))
            yield None
            if not self._chunks.busy:
                return
            if count <= 1:  # nothing new (a read begins with a Rotate of its own)
                time.sleep(0.05)

    def _events(self, reader: Iterator[Any], file: str, pos: int) -> Iterator[Batch]:
        kinds = _kinds()
        pending: list[Pending] = []
        prev_end = pos  # the offset after the last event read (a transaction starts there)
        txn: _Txn | None = None
        last: tuple[str, int, str | None] | None = None  # the last whole transaction's end
        try:
            for event in reader:
                if event is None:  # the binlog's end, for now
                    if txn is None:
                        yield from self._chunk_point(pending, self._reached)
                    continue
                if isinstance(event, kinds.rotate):
                    file, prev_end = str(event.next_binlog), int(event.position)
                    continue
                end = int(event.packet.log_pos)
                if txn is None and self._chunks.open is not None:  # before the event
                    start = end - int(event.packet.event_size)
                    if self._chunks.due((file_number(file), start)):
                        yield from self._chunk_point(pending, (file_number(file), start))
                if isinstance(event, kinds.mariadb_gtid):  # a "BEGIN GTID", or standalone DDL
                    txn = _Txn(file, prev_end, str(event.gtid), begun=not event.flags & 1)
                elif isinstance(event, kinds.gtid):  # MySQL: BEGIN follows for a transaction
                    txn = _Txn(file, prev_end, str(event.gtid))
                elif isinstance(event, kinds.query):
                    query = _text(event.query)
                    word = query.strip().upper()
                    if word == "BEGIN":
                        txn = txn or _Txn(file, prev_end, None)
                        txn.begun = True
                    elif word == "COMMIT" or word.startswith("XA "):
                        last = self._commit(txn, pending, file, end) or last
                        txn = None
                        yield from self._chunk_point(pending, (file_number(file), end))
                    else:
                        here = txn or _Txn(file, prev_end, None)
                        stop = self._ddl(here, query, _text(event.schema))
                        if stop is not None:  # what came before it is published first
                            yield from self._flush(pending)
                            yield self._halt(stop)
                            raise stop
                        if not here.begun:  # a statement of its own: the transaction ends
                            last = self._commit(here, pending, file, end) or last
                            txn = None
                            yield from self._chunk_point(pending, (file_number(file), end))
                elif isinstance(event, kinds.xid):
                    last = self._commit(txn, pending, file, end) or last
                    txn = None
                    yield from self._chunk_point(pending, (file_number(file), end))
                elif isinstance(event, kinds.table_map):
                    here = txn or _Txn(file, prev_end, None)
                    verdict = self._table_map(event, here)
                    if isinstance(verdict, TableStoppedError):
                        yield from self._flush(pending)
                        yield self._halt(verdict)
                        raise verdict
                    if verdict == "rediscover":  # the next run's schema has the new column
                        yield from self._flush(pending)
                        if last is not None:
                            yield from self._advance(*last)
                        return
                elif isinstance(event, (kinds.write, kinds.update, kinds.delete)):
                    if txn is None:
                        txn = _Txn(file, prev_end, None)
                    self._rows(event, txn, pending)
                    if len(pending) >= self.batch_size * 4:  # a long transaction
                        yield from self._flush(pending)
                        pending = []
                prev_end = end
                if txn is None and len(pending) >= self.batch_size:
                    yield from self._flush(pending)
                    pending = []
        except TableStoppedError:
            raise
        except Exception as exc:  # the server's or the protocol's errors
            if type(exc).__module__.startswith(("pymysql", "pymysqlreplication")):
                raise ConnectorUnavailableError(
                    f"binlog read at {file}:{prev_end} failed ({type(exc).__name__}: "
                    f"{str(exc)[:200]})"
                ) from exc
            raise
        yield from self._flush(pending)
        if last is not None:
            yield from self._advance(*last)

    def _commit(
        self, txn: _Txn | None, pending: list[Pending], file: str, end: int
    ) -> tuple[str, int, str | None] | None:
        """A transaction ended at ``file:end``: its last pending event's state says so."""
        if txn is None:
            return None
        if pending and pending[-1][3]["pos"] == txn.pos and pending[-1][3]["file"] == txn.file:
            pending[-1][3]["end"] = end
            pending[-1][3]["end_file"] = file
        return file, end, txn.gtid

    def _advance(self, file: str, end: int, gtid: str | None) -> Iterator[Batch]:
        """Tables behind the end of what was read move to it (all published and acknowledged
        before it): the next run need not read those files again."""
        point = _point_key((file, end))
        for name, stream in self.streams.items():
            state = self._acked.get(name)
            if state is not None and _point_key(resume_point(state)) >= point:
                continue
            moved = {
                "mode": MODE,
                "phase": "stream",
                "file": file,
                "pos": end,
                "index": -1,
                "end": end,
                "gtid": gtid,
                "ts": self._ts_floor,
            }
            if name in self._columns_kept:
                moved["columns"] = self._columns_kept[name]
                moved["columns_catalog"] = name in self._from_catalog
            if name in self._altered:  # an ALTER read, no row of the table after it yet
                moved["altered"] = self._altered[name]
            moved = self._chunks.carry(name, moved)
            yield Batch(name, [], moved, stream.record_schema)
            self._acked[name] = moved

    def _ddl(self, txn: _Txn, query: str, schema: str) -> TableStoppedError | None:
        found = ddl_tables(query, schema)
        if found is None:
            return None
        verb, names = found
        hit = [
            self._by_qualified[n]
            for n in names
            if n in self._by_qualified and self._ahead(self._by_qualified[n], txn)
        ]
        if not hit:
            return None
        where = f"{txn.gtid} ({txn.file}:{txn.pos})" if txn.gtid else f"{txn.file}:{txn.pos}"
        if verb.startswith("ALTER") and not renames_table(query):
            # the columns after it are compared at the table's next Table_map (logschema)
            for table in hit:
                self._altered[table] = f"binlog {where} ({verb})"
            return None
        what = (
            "the rows it removed are not in the log, so no event can name them"
            if (verb.startswith(("TRUNCATE", "DROP")))
            else "the rows after it are another table's"
        )
        return TableStoppedError(
            ", ".join(hit),
            f"{verb} at binlog {where}: {what}; the position stays before it. Empty the "
            "table's sinks (or reconcile them with repair), then re-snapshot with: "
            f"{resnapshot_command(self.connector.name)}",
        )

    def _ahead(self, table: str, txn: _Txn) -> bool:
        """Whether the transaction comes after what the table published (a table whose
        position is later than where the read started meets older transactions first)."""
        acked = position_key(self._acked.get(table))
        if acked is None:
            return True
        here = (file_number(txn.file), txn.pos)
        return here > acked[:2] or (here == acked[:2] and acked[2] < 0)

    def _keep_columns(
        self, table: str, columns: list[logschema.Column], *, from_catalog: bool = False
    ) -> None:
        self._columns[table] = columns
        self._columns_kept[table] = [c.to_list() for c in columns]
        if from_catalog:
            self._from_catalog.add(table)
        else:
            self._from_catalog.discard(table)

    def _table_map(self, event: Any, txn: _Txn) -> TableStoppedError | str | None:
        """A Table_map of a captured table: its columns compared with the last ones its events
        were read with (``logschema``). A stop for an incompatible change; ``"rediscover"``
        when a compatible change added a column the run's schema lacks; else None."""
        table = self._by_qualified.get(f"{event.schema}.{event.table}")
        if table is None or not self._ahead(table, txn):
            return None
        new = logschema.binlog_columns(event.columns, event.null_bitmask)
        old = self._columns.get(table)
        altered = self._altered.pop(table, None)  # an ALTER of no column: nothing to compare
        if old == new:
            return None
        if old is not None and table in self._from_catalog and altered is None:
            # the catalog's description at the snapshot, no ALTER read since: the same
            # definition (a type the catalog names otherwise than the binlog is no change)
            old = None
        if old is not None:
            at = altered or (
                f"binlog {txn.gtid or f'{txn.file}:{txn.pos}'} (the first change read after it)"
            )
            changes = logschema.column_changes(old, new)
            reason = logschema.stop_reason(
                f"{event.schema}.{event.table}",
                changes,
                at,
                resnapshot_command(self.connector.name),
            )
            if reason is not None:
                return TableStoppedError(table, reason)
            log.info(
                "%s: compatible schema change at %s: %s",
                table,
                at,
                "; ".join(f"column {c.column!r}: {c.what}" for c in changes),
            )
            names = set(self.source.log_context(self.streams[table]).names)
            if any(c.name not in names for c in new if c.name not in {o.name for o in old}):
                log.info("%s: a column this run's schema lacks: the next run reads on", table)
                return "rediscover"
        self._keep_columns(table, new)
        return None

    def _rows(self, event: Any, txn: _Txn, pending: list[Pending]) -> None:
        from pymysqlreplication.row_event import DeleteRowsEvent, WriteRowsEvent

        table = self._by_qualified.get(f"{event.schema}.{event.table}")
        if table is None:
            for _ in event.rows:  # a same-named table of another captured schema: counted
                txn.next_index()
            return
        stream = self.streams[table]
        context = self.source.log_context(stream)
        processors = self._processors(stream, context.names)
        acked = position_key(self._acked.get(table))
        ts = self._version(int(event.timestamp))
        columns = {c.name: c for c in event.columns}
        nullable = {c.name for c in stream.columns if c.nullable}
        missing = [n for n in context.names if n not in columns]
        required = [n for n in missing if n not in nullable]
        if required:
            raise TableStoppedError(
                table,
                f"the binlog's rows of {table!r} at {txn.gtid or f'{txn.file}:{txn.pos}'} "
                f"have no column {required[0]!r}, which the table has now and which is NOT "
                "NULL (added or renamed after these rows were written): re-snapshot with: "
                f"{resnapshot_command(self.connector.name)}",
            )
        # a nullable column added after these rows were written: null in their events
        for raw in event.rows:
            index = txn.next_index()
            key = (file_number(txn.file), txn.pos, index)
            if acked is not None and key <= acked:
                continue  # published before: acknowledged already
            if isinstance(event, WriteRowsEvent):
                op, after, before = "c", raw["values"], None
                after_none = raw.get("none_sources") or {}
                before_none: dict[str, str] = {}
            elif isinstance(event, DeleteRowsEvent):
                op, after, before = "d", None, raw["values"]
                before_none = raw.get("none_sources") or {}
                after_none = {}
            else:
                op, after, before = "u", raw["after_values"], raw["before_values"]
                after_none = raw.get("after_none_sources") or {}
                before_none = raw.get("before_none_sources") or {}
            pending.append(
                self._event(
                    table,
                    context,
                    txn,
                    index,
                    op,
                    ts,
                    self._row(columns, after, after_none, context.names, processors),
                    self._row(columns, before, before_none, context.names, processors),
                )
            )

    def _version(self, seconds: int) -> int:
        """A change's ``ts_ms``: its binlog time (whole seconds, when its statement began:
        it may be older than a change committed before it) raised to the newest version
        published so far (the floor), which it becomes."""
        self._ts_floor = max(self._ts_floor, seconds * 1000)
        return self._ts_floor

    def _row(
        self,
        columns: dict[str, Any],
        values: dict[str, Any] | None,
        none_sources: dict[str, str],
        names: list[str],
        processors: list[Any],
    ) -> tuple[Any, ...] | None:
        if values is None:
            return None
        convert = self._values.value
        out = []
        for name, process in zip(names, processors, strict=True):
            column = columns.get(name)
            if column is None:  # added to the table after this row (see _rows)
                out.append(None)
                continue
            value = convert(column, values.get(name), none_sources.get(name))
            out.append(value if process is None or value is None else process(value))
        return tuple(out)

    def _processors(self, stream: Stream, names: list[str]) -> list[Any]:
        """Each column's SQLAlchemy result processor: what a snapshot read does to the
        driver's value before the converters (a TIME's timedelta becomes a time, a SET's
        text a set of members)."""
        cached = self._processor_cache.get(stream.name)
        if cached is None:
            table = self.source._source_table(stream)
            dialect = self.connector.engine.dialect
            cached = [
                table.c[n].type.dialect_impl(dialect).result_processor(dialect, None) for n in names
            ]
            self._processor_cache[stream.name] = cached
        return cached

    def _event(
        self,
        table: str,
        context: Any,
        txn: _Txn,
        index: int,
        op: str,
        ts: int,
        after_row: tuple[Any, ...] | None,
        before_row: tuple[Any, ...] | None,
    ) -> Pending:
        position = (
            f"{txn.gtid}:{index}" if txn.gtid and self._gtids else f"{txn.file}:{txn.pos}:{index}"
        )
        state = {
            "mode": MODE,
            "phase": "stream",
            "file": txn.file,
            "pos": txn.pos,
            "index": index,
            "end": None,
            "gtid": txn.gtid,
            "ts": ts,
        }
        if table in self._columns_kept:
            state["columns"] = self._columns_kept[table]
        row = after_row if after_row is not None else before_row
        assert row is not None
        event, bad = self.source.log_event(context, op, ts, position, row, before_row)
        return table, event, bad, state

    def _halt(self, stop: TableStoppedError) -> Batch:
        """An empty batch whose state is the first table's last acknowledged position marked
        with the reason the read stopped: every later run stops again with it until the
        connector is reset."""
        table = next(iter(self.streams))
        state = dict(self._acked.get(table) or {"mode": MODE, "phase": "stream"})
        state["halt"] = stop.reason
        return Batch(table, [], state, self.streams[table].record_schema)

    def _flush(self, pending: list[Pending]) -> Iterator[Batch]:
        """The pending events as batches of one table each (``logbatch.flush``), then none
        pending; each batch acknowledged is its table's position."""
        yield from logbatch.flush(pending, self.streams, self._chunks, self._acked.__setitem__)
        pending.clear()

    # ---- chunked snapshots (connectors.sql.chunked_snapshot) ---------------------------------
    def _watermark(self, conn: Connection) -> Mark:
        """A chunk's transaction opened and its watermark read (``chunk_reader``)."""
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        return BinlogWatermark(*snapshot_point(conn, self.connector.name))

    def _chunk_point(self, pending: list[Pending], reached: tuple[int, int]) -> Iterator[Batch]:
        """Between two transactions, the stream having read up to ``reached``: the open chunk
        published once the stream reached its watermark (what came before first), and the
        next chunk read when none is open. The stream's changes need not be checked against
        a chunk (``BinlogWatermark``): every change read before the chunk is published lies
        before its watermark, so its effect is in the chunk's rows."""
        if not self._chunks.busy:
            return
        chunk = self._chunks.start()
        while chunk is not None and self._chunks.due(reached):
            yield from self._flush(pending)
            acked = self._acked.get(chunk.table) or {"mode": MODE, "phase": "stream"}
            # the version of the newest change published: every change published later
            # carries one at least as new (binlog times never go back here) and wins
            table, events, invalid, state = self._chunks.finish(acked, self._ts_floor)
            yield Batch(table, events, state, self.streams[table].record_schema, invalid)
            self._acked[table] = state
            chunk = self._chunks.start()  # a quiet binlog: it may be due at once


class _Txn:
    def __init__(self, file: str, pos: int, gtid: str | None, *, begun: bool = False) -> None:
        self.file, self.pos, self.gtid = file, pos, gtid
        self.begun = begun  # BEGIN seen: only COMMIT or an Xid ends it
        self.index = -1

    def next_index(self) -> int:
        self.index += 1
        return self.index


class _Kinds(NamedTuple):
    """The binlog events a read asks for and tells apart (mysql-replication's classes)."""

    mariadb_gtid: type
    gtid: type
    query: type
    xid: type
    rotate: type
    table_map: type
    write: type
    update: type
    delete: type


def _kinds() -> _Kinds:
    """The binlog event classes, imported when a read begins (``ConnectorConfigError`` when
    mysql-replication is not installed)."""
    try:
        from pymysqlreplication.event import (
            GtidEvent,
            MariadbGtidEvent,
            QueryEvent,
            RotateEvent,
            XidEvent,
        )
        from pymysqlreplication.row_event import (
            DeleteRowsEvent,
            TableMapEvent,
            UpdateRowsEvent,
            WriteRowsEvent,
        )
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise ConnectorConfigError(
            ["mode: log needs mysql-replication (pip install mysql-replication)"]
        ) from exc
    return _Kinds(
        MariadbGtidEvent,
        GtidEvent,
        QueryEvent,
        XidEvent,
        RotateEvent,
        TableMapEvent,
        WriteRowsEvent,
        UpdateRowsEvent,
        DeleteRowsEvent,
    )


def _clock_ms() -> int:
    """Names a chunk's ``r`` events (their ``event_id``); their ``ts_ms`` is set when the chunk
    is published (``MyLogReader._chunk_point``)."""
    return int(time.time() * 1000)


def _point_key(point: tuple[str, int]) -> tuple[int, int]:
    return file_number(point[0]), point[1]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
