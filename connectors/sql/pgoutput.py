"""A decoder of PostgreSQL's built-in ``pgoutput`` logical replication messages (protocol 1).

Written from the protocol documentation ("Logical Replication Message Formats"): each message
of the replication stream's ``XLogData`` payload is one of Begin ``B``, Commit ``C``, Origin
``O``, Relation ``R``, Type ``Y``, Insert ``I``, Update ``U``, Delete ``D``, Truncate ``T`` or a
logical decoding Message ``M``. Column values come in text format as the server's output
functions write them (``'t'``), as NULL (``'n'``) or as the marker of an unchanged TOASTed value
that the server did not send (``'u'``, ``UNCHANGED``). Integers are big-endian; an LSN is a
64-bit integer; times are microseconds since 2000-01-01 UTC.

The decoder only splits bytes into messages: turning a column's text into a Python value is
the caller's (``connectors.sql.pglog`` uses the driver's own text loaders).
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field
from typing import Final

from bus.errors import DataError

PG_EPOCH_US: Final = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01


class Unchanged:
    """The marker of a TOASTed value the server did not send (it did not change)."""

    _instance: Unchanged | None = None

    def __new__(cls) -> Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = Unchanged()

# a tuple's column: None (NULL), UNCHANGED, or the value's text as bytes
Value = bytes | Unchanged | None


@dataclass(frozen=True)
class RelationColumn:
    name: str
    type_oid: int
    type_modifier: int
    key: bool  # part of the replica identity


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    # d: default (primary key), n: nothing, f: full, i: an index
    replica_identity: str
    columns: tuple[RelationColumn, ...]

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}"


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_us: int  # microseconds since 1970-01-01 UTC
    xid: int

    @property
    def commit_ms(self) -> int:
        return self.commit_us // 1000


@dataclass(frozen=True)
class Commit:
    flags: int
    commit_lsn: int
    end_lsn: int
    commit_us: int


@dataclass(frozen=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True)
class TypeInfo:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True)
class Insert:
    relation_oid: int
    new: tuple[Value, ...]


@dataclass(frozen=True)
class Update:
    relation_oid: int
    new: tuple[Value, ...]
    # the old row: its key columns ('K', the others None) or all of it ('O', REPLICA IDENTITY
    # FULL); None when the key did not change and the identity is not FULL
    old: tuple[Value, ...] | None = None
    old_kind: str | None = None  # 'K' or 'O'


@dataclass(frozen=True)
class Delete:
    relation_oid: int
    old: tuple[Value, ...]
    old_kind: str  # 'K' or 'O'


@dataclass(frozen=True)
class Truncate:
    relation_oids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class LogicalMessage:
    transactional: bool
    lsn: int
    prefix: str
    content: bytes = field(repr=False)


Message = (
    Begin
    | Commit
    | Origin
    | Relation
    | TypeInfo
    | Insert
    | Update
    | Delete
    | Truncate
    | LogicalMessage
)


def lsn_text(lsn: int) -> str:
    """An LSN as PostgreSQL writes it (``16/B374D848``)."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    """``16/B374D848`` as an integer."""
    high, sep, low = text.partition("/")
    if not sep:
        raise ValueError(f"not an LSN: {text!r} (expected two hex numbers such as 0/16B3748)")
    return (int(high, 16) << 32) | int(low, 16)


def pg_time(us: int) -> dt.datetime:
    """A decoded commit time (microseconds since 1970) as an aware datetime."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise DataError(
                f"pgoutput: message of {len(self.data)} bytes ends before byte {end} "
                f"(expected {n} more at byte {self.pos})"
            )
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def byte(self) -> str:
        return chr(self.take(1)[0])

    def int8(self) -> int:
        return self.take(1)[0]

    def int16(self) -> int:
        return int(struct.unpack(">h", self.take(2))[0])

    def int32(self) -> int:
        return int(struct.unpack(">i", self.take(4))[0])

    def uint32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def int64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def uint64(self) -> int:
        return int(struct.unpack(">Q", self.take(8))[0])

    def string(self) -> str:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise DataError(f"pgoutput: a string at byte {self.pos} has no terminating zero")
        text = self.data[self.pos : end].decode("utf-8")
        self.pos = end + 1
        return text

    def tuple_data(self) -> tuple[Value, ...]:
        values: list[Value] = []
        for _ in range(self.int16()):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED)
            elif kind in ("t", "b"):
                values.append(self.take(self.int32()))
            else:
                raise DataError(
                    f"pgoutput: column kind {kind!r} at byte {self.pos - 1} "
                    "(expected 'n', 'u', 't' or 'b')"
                )
        return tuple(values)

    def timestamp_us(self) -> int:
        return self.int64() + PG_EPOCH_US


class _Malformed(Exception):
    """Raised by a fast path: the careful decoder reads the message again and names the fault."""


_BEGIN = struct.Struct(">QqI").unpack_from
_COMMIT = struct.Struct(">BQQq").unpack_from
_INT16 = struct.Struct(">h").unpack_from
_INT32 = struct.Struct(">i").unpack_from
_UINT32 = struct.Struct(">I").unpack_from
_N, _K, _O = ord("N"), ord("K"), ord("O")


def _fast_tuple(data: bytes, pos: int) -> tuple[tuple[Value, ...], int]:
    """A TupleData at ``pos`` and the position after it (the hot path of ``decode``)."""
    (count,) = _INT16(data, pos)
    pos += 2
    values: list[Value] = []
    append = values.append
    size = len(data)
    for _ in range(count):
        kind = data[pos]
        if kind == 116 or kind == 98:  # 't', 'b'
            (length,) = _INT32(data, pos + 1)
            pos += 5
            end = pos + length
            if length < 0 or end > size:
                raise _Malformed
            append(data[pos:end])
            pos = end
        elif kind == 110:  # 'n'
            append(None)
            pos += 1
        elif kind == 117:  # 'u'
            append(UNCHANGED)
            pos += 1
        else:
            raise _Malformed
    return tuple(values), pos


def _fast(data: bytes) -> Message | None:
    """The messages of every transaction (Begin, Commit, Insert, Update, Delete) decoded with
    no per-field calls; None for the other kinds. Raises ``_Malformed`` (or ``struct.error``,
    ``IndexError``) on a malformed message."""
    kind = data[0]
    if kind == 66:  # 'B'
        final_lsn, commit, xid = _BEGIN(data, 1)
        return Begin(final_lsn, commit + PG_EPOCH_US, xid)
    if kind == 67:  # 'C'
        flags, commit_lsn, end_lsn, commit = _COMMIT(data, 1)
        return Commit(flags, commit_lsn, end_lsn, commit + PG_EPOCH_US)
    if kind == 85:  # 'U'
        (oid,) = _UINT32(data, 1)
        tag = data[5]
        old: tuple[Value, ...] | None = None
        old_kind: str | None = None
        pos = 6
        if tag == _K or tag == _O:
            old_kind = chr(tag)
            old, pos = _fast_tuple(data, pos)
            tag = data[pos]
            pos += 1
        if tag != _N:
            raise _Malformed
        return Update(oid, _fast_tuple(data, pos)[0], old, old_kind)
    if kind == 73:  # 'I'
        (oid,) = _UINT32(data, 1)
        if data[5] != _N:
            raise _Malformed
        return Insert(oid, _fast_tuple(data, 6)[0])
    if kind == 68:  # 'D'
        (oid,) = _UINT32(data, 1)
        tag = data[5]
        if tag != _K and tag != _O:
            raise _Malformed
        return Delete(oid, _fast_tuple(data, 6)[0], chr(tag))
    return None


def decode(payload: bytes) -> Message:
    """One ``pgoutput`` message (the payload of an ``XLogData``)."""
    if not payload:
        raise DataError("pgoutput: empty message")
    data = payload if type(payload) is bytes else bytes(payload)
    try:
        message = _fast(data)
    except (_Malformed, struct.error, IndexError):
        message = None  # the careful reading below names what is wrong
    if message is not None:
        return message
    return _decode(data)


def _decode(data: bytes) -> Message:
    """``decode`` field by field, each read checked."""
    r = _Reader(data)
    kind = r.byte()
    if kind == "B":
        return Begin(final_lsn=r.uint64(), commit_us=r.timestamp_us(), xid=r.uint32())
    if kind == "C":
        return Commit(
            flags=r.int8(), commit_lsn=r.uint64(), end_lsn=r.uint64(), commit_us=r.timestamp_us()
        )
    if kind == "O":
        return Origin(lsn=r.uint64(), name=r.string())
    if kind == "R":
        oid, namespace, name = r.uint32(), r.string(), r.string()
        identity = r.byte()
        columns = []
        for _ in range(r.int16()):
            flags = r.int8()
            columns.append(
                RelationColumn(
                    name=r.string(),
                    type_oid=r.uint32(),
                    type_modifier=r.int32(),
                    key=bool(flags & 1),
                )
            )
        return Relation(oid, namespace, name, identity, tuple(columns))
    if kind == "Y":
        return TypeInfo(oid=r.uint32(), namespace=r.string(), name=r.string())
    if kind == "I":
        oid = r.uint32()
        _expect(r, "N")
        return Insert(oid, r.tuple_data())
    if kind == "U":
        oid = r.uint32()
        tag = r.byte()
        old: tuple[Value, ...] | None = None
        old_kind: str | None = None
        if tag in ("K", "O"):
            old_kind = tag
            old = r.tuple_data()
            tag = r.byte()
        if tag != "N":
            raise DataError(f"pgoutput: update tag {tag!r} (expected 'K', 'O' or 'N')")
        return Update(oid, r.tuple_data(), old, old_kind)
    if kind == "D":
        oid = r.uint32()
        tag = r.byte()
        if tag not in ("K", "O"):
            raise DataError(f"pgoutput: delete tag {tag!r} (expected 'K' or 'O')")
        return Delete(oid, r.tuple_data(), tag)
    if kind == "T":
        count = r.int32()
        options = r.int8()
        oids = tuple(r.uint32() for _ in range(count))
        return Truncate(oids, cascade=bool(options & 1), restart_identity=bool(options & 2))
    if kind == "M":
        flags = r.int8()
        lsn, prefix = r.uint64(), r.string()
        return LogicalMessage(bool(flags & 1), lsn, prefix, r.take(r.int32()))
    raise DataError(
        f"pgoutput: message type {kind!r} is not one of B, C, O, R, Y, I, U, D, T, M "
        "(protocol version 1)"
    )


def _expect(r: _Reader, tag: str) -> None:
    got = r.byte()
    if got != tag:
        raise DataError(f"pgoutput: tag {got!r} at byte {r.pos - 1} (expected {tag!r})")
