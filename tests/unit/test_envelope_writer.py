"""The fast envelope writer must write exactly what fastavro's full-schema writer writes."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import random
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_writer

from bus.config import Settings
from bus.envelope import envelope_schema, make_event
from bus.errors import DataError
from bus.registry import Registry
from bus.serde import AvroCodec
from bus.serde.envelope_writer import EnvelopeWriter
from tests.helpers import record_schema

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def _random_event(rng: random.Random) -> dict:
    def rec() -> dict:
        return {
            "id": rng.randint(-(2**62), 2**62),
            "name": "".join(rng.choice("aăâbcdđeêghiklmnoôơpqrstuưvxyỹẫ ") for _ in range(20)),
            "amount": decimal.Decimal(rng.randint(-(10**9), 10**9)) / 100,
            "born": rng.choice([None, dt.date(1950, 1, 1) + dt.timedelta(days=rng.randint(0, 9))]),
            "seen": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
            + dt.timedelta(seconds=rng.randint(0, 10**7)),
        }

    op = rng.choice("cudr")
    # positions of every kind: none, short, Vietnamese, longer than one varint byte can count
    position = rng.choice([None, "p1", "", "2026-03-01T08:30:00.123+07:00", "Đ" * 70, "x" * 300])
    source = {"agency": "a", "unit": "26734", "system": "s", "position": position}
    if rng.random() < 0.3:
        source = {"agency": "a", "unit": "26734", "system": "s", "table": "t", "connector": "c"}
        if rng.random() < 0.5:  # the position first, as the SQL source's events have it
            source = {"position": position, **source}
    return make_event(
        op=op,
        key={"id": rng.randint(0, 10)},
        source=source,
        ts_ms=rng.randint(0, 2**45),
        before=rec() if op in "ud" else None,
        after=rec() if op != "d" else None,
    )


def test_byte_identical_to_fastavro() -> None:
    schema = envelope_schema(record_schema(), SCHEMAS)
    writer = EnvelopeWriter.for_schema(schema)
    assert writer is not None
    parsed = parse_schema(schema)
    rng = random.Random(7)
    for _ in range(500):
        event = _random_event(rng)
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, event)
        assert writer.write(event) == buf.getvalue()


def test_not_an_envelope_uses_general_writer() -> None:
    assert EnvelopeWriter.for_schema(record_schema()) is None


def test_bad_event_is_refused_with_field_names(offline_settings: Settings) -> None:
    schema = envelope_schema(record_schema(), SCHEMAS)
    registry = Registry(offline_settings)
    sid = registry.register("t-value", schema).id
    codec = AvroCodec(registry)
    event = _random_event(random.Random(1))
    event["op"] = "c"
    event["before"] = None
    event["after"] = (
        _random_event(random.Random(2))["before"] or _random_event(random.Random(3))["after"]
    )
    assert codec.decode(codec.encode(sid, event))[1]["op"] == "c"
    for field, value in [("ts_ms", "x"), ("op", "z"), ("key", 5)]:
        bad = {**event, field: value}
        with pytest.raises(DataError, match=field):
            codec.encode(sid, bad)
    with pytest.raises(DataError):
        codec.encode(sid, {**event, "extra": 1})
    with pytest.raises(DataError, match="amount"):
        codec.encode(sid, {**event, "after": {**event["after"], "amount": "12"}})
