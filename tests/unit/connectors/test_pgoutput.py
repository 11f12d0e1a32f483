"""The pgoutput decoder on messages built byte by byte as the protocol documentation lays out."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from bus.errors import DataError
from connectors.sql import pgoutput as pg
from connectors.sql.pgoutput import UNCHANGED

MS_2026 = int(dt.datetime(2026, 12, 5, 8, 30, tzinfo=dt.UTC).timestamp() * 1_000_000)


def _ts(us_since_1970: int) -> bytes:
    return struct.pack(">q", us_since_1970 - pg.PG_EPOCH_US)


def _s(text: str) -> bytes:
    return text.encode() + b"\x00"


def _tuple(*values: bytes | None | object) -> bytes:
    out = struct.pack(">h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        else:
            assert isinstance(v, bytes)
            out += b"t" + struct.pack(">i", len(v)) + v
    return out


def test_begin_and_commit() -> None:
    begin = pg.decode(b"B" + struct.pack(">Q", 0x16_B374D848) + _ts(MS_2026) + struct.pack(">I", 7))
    assert begin == pg.Begin(final_lsn=0x16_B374D848, commit_us=MS_2026, xid=7)
    assert begin.commit_ms == MS_2026 // 1000
    assert pg.pg_time(begin.commit_us) == dt.datetime(2026, 12, 5, 8, 30, tzinfo=dt.UTC)
    commit = pg.decode(b"C\x00" + struct.pack(">QQ", 100, 180) + _ts(MS_2026))
    assert commit == pg.Commit(flags=0, commit_lsn=100, end_lsn=180, commit_us=MS_2026)


def test_relation_with_key_flags() -> None:
    body = struct.pack(">I", 16384) + _s("public") + _s("ho_so") + b"f" + struct.pack(">h", 2)
    body += b"\x01" + _s("id") + struct.pack(">Ii", 23, -1)
    body += b"\x00" + _s("ten") + struct.pack(">Ii", 1043, 104)
    rel = pg.decode(b"R" + body)
    assert isinstance(rel, pg.Relation)
    assert rel.qualified == "public.ho_so"
    assert rel.replica_identity == "f"
    assert rel.columns == (
        pg.RelationColumn("id", 23, -1, key=True),
        pg.RelationColumn("ten", 1043, 104, key=False),
    )


def test_insert_with_text_null_and_vietnamese() -> None:
    name = "Nguyễn Thị Ánh".encode()
    msg = pg.decode(b"I" + struct.pack(">I", 16384) + b"N" + _tuple(b"1", None, name))
    assert msg == pg.Insert(16384, (b"1", None, name))
    assert msg.new[2].decode() == "Nguyễn Thị Ánh"  # type: ignore[union-attr]


def test_update_forms() -> None:
    oid = struct.pack(">I", 5)
    plain = pg.decode(b"U" + oid + b"N" + _tuple(b"1", UNCHANGED))
    assert plain == pg.Update(5, (b"1", UNCHANGED), None, None)
    keyed = pg.decode(b"U" + oid + b"K" + _tuple(b"1", None) + b"N" + _tuple(b"2", b"x"))
    assert keyed == pg.Update(5, (b"2", b"x"), (b"1", None), "K")
    full = pg.decode(b"U" + oid + b"O" + _tuple(b"1", b"big") + b"N" + _tuple(b"1", UNCHANGED))
    assert isinstance(full, pg.Update)
    assert full.old_kind == "O" and full.old == (b"1", b"big") and full.new[1] is UNCHANGED


def test_delete_truncate_origin_type_message() -> None:
    assert pg.decode(b"D" + struct.pack(">I", 5) + b"K" + _tuple(b"9")) == pg.Delete(
        5, (b"9",), "K"
    )
    truncate = pg.decode(b"T" + struct.pack(">ib", 2, 3) + struct.pack(">II", 5, 6))
    assert truncate == pg.Truncate((5, 6), cascade=True, restart_identity=True)
    assert pg.decode(b"O" + struct.pack(">Q", 9) + _s("node1")) == pg.Origin(9, "node1")
    assert pg.decode(b"Y" + struct.pack(">I", 700) + _s("public") + _s("mood")) == pg.TypeInfo(
        700, "public", "mood"
    )
    message = pg.decode(b"M\x01" + struct.pack(">Q", 4) + _s("lgsp") + struct.pack(">i", 2) + b"hi")
    assert message == pg.LogicalMessage(True, 4, "lgsp", b"hi")


def test_lsn_text_round_trip() -> None:
    assert pg.lsn_text(0x16_B374D848) == "16/B374D848"
    assert pg.parse_lsn("16/B374D848") == 0x16_B374D848
    assert pg.parse_lsn("0/0") == 0
    with pytest.raises(ValueError, match="not an LSN"):
        pg.parse_lsn("12345")


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "empty message"),
        (b"Z123", "message type 'Z'"),
        (b"B\x00\x00", "ends before byte"),
        (b"I" + struct.pack(">I", 5) + b"X", "tag 'X'"),
        (b"I" + struct.pack(">I", 5) + b"N" + struct.pack(">h", 1) + b"q", "column kind 'q'"),
        (b"D" + struct.pack(">I", 5) + b"N", "delete tag 'N'"),
        (b"U" + struct.pack(">I", 5) + b"Q", "update tag 'Q'"),
        (b"O" + struct.pack(">Q", 9) + b"no-zero", "no terminating zero"),
        # the fast path of B, C, I, U, D leaves faults to the careful reader, which names them
        (b"C\x00" + struct.pack(">Q", 1), "ends before byte"),
        (
            b"I" + struct.pack(">I", 5) + b"N" + struct.pack(">h", 1) + b"t\x00\x00\x00\x09abc",
            "ends",
        ),
        (b"I" + struct.pack(">I", 5) + b"N" + struct.pack(">h", 2) + b"n", "ends before byte"),
        (b"U" + struct.pack(">I", 5) + b"K" + _tuple(b"1") + b"X", "update tag 'X'"),
        (b"D" + struct.pack(">I", 5) + b"K" + struct.pack(">h", 1) + b"z", "column kind 'z'"),
    ],
)
def test_malformed_messages_are_refused_with_where(payload: bytes, words: str) -> None:
    with pytest.raises(DataError, match=words):
        pg.decode(payload)


@pytest.mark.parametrize(
    "payload",
    [
        b"B" + struct.pack(">Q", 9) + _ts(MS_2026) + struct.pack(">I", 4_000_000_000),
        b"C\x01" + struct.pack(">QQ", 100, 180) + _ts(MS_2026),
        b"I" + struct.pack(">I", 5) + b"N" + _tuple(b"", None, UNCHANGED, "Ánh".encode()),
        b"I"
        + struct.pack(">I", 5)
        + b"N"
        + struct.pack(">h", 1)
        + b"b"
        + struct.pack(">i", 2)
        + b"\x00\x01",
        b"U" + struct.pack(">I", 5) + b"O" + _tuple(b"1", b"big") + b"N" + _tuple(b"1", UNCHANGED),
        b"U" + struct.pack(">I", 5) + b"K" + _tuple(b"1", None) + b"N" + _tuple(b"2", b"x"),
        b"U" + struct.pack(">I", 5) + b"N" + _tuple(),
        b"D" + struct.pack(">I", 5) + b"O" + _tuple(b"9", None),
    ],
)
def test_fast_path_decodes_as_the_careful_reader(payload: bytes) -> None:
    """Begin, Commit and the changes take a fast path: it must give what the field-by-field
    reader gives (and both must read a memoryview as its bytes)."""
    fast = pg._fast(payload)
    assert fast is not None
    assert fast == pg._decode(payload) == pg.decode(memoryview(payload))  # type: ignore[arg-type]
