"""The canonical bytes and hash chain, topic parsing and time parsing (no services)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest

from bus.archive.chain import (
    canonical_bytes,
    canonical_json,
    chain_hash,
    genesis,
    is_dataset_topic,
    parse_dataset_topic,
    unit_within,
)
from bus.archive.replay import content_hash, table_name
from bus.errors import ConfigurationError, InvalidNameError
from bus.timeutil import parse_cli_time, to_epoch_ms


def test_hash_follows_the_written_definition() -> None:
    """Recomputed here from the docstring's definition, byte by byte."""
    h0 = hashlib.sha256(b"LGSP-ARCHIVE-V1\x00lgsp.79.tthc.dossier\x002").digest()
    assert genesis("lgsp.79.tthc.dossier", 2) == h0
    payload = b"\x00\x00\x00\x00\x05avro"
    expected_canonical = (
        struct.pack(">I", 1)
        + struct.pack(">q", 42)
        + struct.pack(">q", 1_772_000_000_000)
        + struct.pack(">i", 5)
        + b"u"
        + struct.pack(">H", 3)
        + struct.pack(">H", 5)
        + struct.pack(">i", 8)
        + struct.pack(">I", len(payload))
        + b"e-1"
        + b"26734"
        + b'{"id":1}'
        + payload
    )
    canonical = canonical_bytes(
        epoch=1,
        offset=42,
        ts_ms=1_772_000_000_000,
        schema_id=5,
        op="u",
        event_id="e-1",
        source_unit="26734",
        key='{"id":1}',
        payload=payload,
    )
    assert canonical == expected_canonical
    h1 = chain_hash(h0, 1, canonical)
    assert h1 == hashlib.sha256(h0 + struct.pack(">Q", 1) + canonical).digest()
    # the position and the predecessor are part of the hash
    assert chain_hash(h0, 2, canonical) != h1
    assert chain_hash(h1, 1, canonical) != h1


def test_null_key_differs_from_empty_key() -> None:
    common = dict(epoch=0, offset=0, ts_ms=0, schema_id=1, op="d", event_id="e", source_unit="")
    assert canonical_bytes(key=None, payload=b"", **common) != canonical_bytes(
        key="", payload=b"", **common
    )


def test_dataset_topics() -> None:
    parsed = parse_dataset_topic("lgsp.79.760.26734.tthc.dossier")
    assert (parsed.unit_path, parsed.dataset) == ("79.760.26734", "tthc.dossier")
    assert parse_dataset_topic("lgsp.79.dancu.resident").unit_path == "79"
    for bad in (
        "lgsp.79.760.26734.tthc.dossier.dlq",
        "lgsp.tthc.dossier",
        "other.79.tthc.dossier",
        "lgsp.79.x1.tthc.dossier",
        "__consumer_offsets",
        "lgsp.79.TTHC.dossier",
    ):
        assert not is_dataset_topic(bad), bad
    with pytest.raises(InvalidNameError):
        parse_dataset_topic("lgsp.79.760.26734.tthc.dossier.dlq")


def test_unit_within() -> None:
    assert unit_within("79.760.26734", "79.760")
    assert unit_within("79.760", "79.760")
    assert not unit_within("79.7601", "79.760")
    assert not unit_within("79", "79.760")


def test_times_need_a_zone() -> None:
    parse_time = parse_cli_time  # what lgsp replay uses: a time without zone is refused
    assert to_epoch_ms(parse_time("1970-01-01T07:00:00+07:00", "--as-of")) == 0
    assert to_epoch_ms(parse_time("1970-01-01T00:00:01Z", "--as-of")) == 1000
    with pytest.raises(ConfigurationError) as err:
        parse_time("2026-03-01T00:00:00", "--as-of")
    assert "--as-of" in str(err.value) and "2026-03-01T00:00:00+07:00" in str(err.value)
    with pytest.raises(ConfigurationError) as err:
        parse_time("2026-03-01", "--from")
    assert "--from" in str(err.value)
    with pytest.raises(ConfigurationError) as err:
        parse_time("yesterday", "--to")
    assert "--to" in str(err.value) and "ISO 8601" in str(err.value)


def test_table_names() -> None:
    assert table_name("tthc.dossier", None) == (None, "replay_tthc_dossier")
    assert table_name("tthc.dossier", "audit.snap_1") == ("audit", "snap_1")
    for bad in ("x; drop table y", "a.b.c", "1abc", "x" * 64):
        with pytest.raises(ConfigurationError):
            table_name("tthc.dossier", bad)


def test_content_hash_is_order_independent_and_defined() -> None:
    rows = [('{"id":2}', {"id": 2, "name": "Bình"}), ('{"id":1}', {"id": 1, "name": "An"})]
    expected = hashlib.sha256(
        b'["{\\"id\\":1}",{"id":1,"name":"An"}]\n'
        + '["{\\"id\\":2}",{"id":2,"name":"Bình"}]\n'.encode()
    ).hexdigest()
    assert content_hash(rows) == expected
    assert content_hash(list(reversed(rows))) == expected
    assert content_hash([]) == hashlib.sha256(b"").hexdigest()


def test_the_archive_has_one_canonical_json() -> None:
    """Everything the archive hashes or signs goes through ``chain.canonical_json``: no module
    of ``bus/archive`` spells its own (sort_keys, separators) rule."""
    import bus.archive

    root = Path(bus.archive.__file__).parent
    spelled = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "sort_keys" in path.read_text(encoding="utf-8")
    )
    assert spelled == ["chain.py"]
    assert canonical_json({"b": [1, "Tân Định"], "a": None}) == '{"a":null,"b":[1,"Tân Định"]}'
