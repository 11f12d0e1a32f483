"""Property-based tests (Hypothesis) of the wire format: any event valid for its envelope
schema is framed, encoded and decoded back to itself through the registry, and the fast
envelope writer writes exactly fastavro's bytes for it."""

from __future__ import annotations

import datetime as dt
import decimal
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bus.config import Settings
from bus.db.engine import dispose_engines
from bus.envelope import envelope_schema, make_event
from bus.registry import Registry
from bus.serde import AvroCodec
from bus.serde.envelope_writer import EnvelopeWriter
from bus.serde.framing import framed_schema_id
from tests.helpers import record_schema

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
MILLIS = st.integers(min_value=-(2**42), max_value=2**42).map(
    lambda ms: dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
)
RECORDS = st.fixed_dictionaries(
    {
        "id": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "name": TEXT,
        "amount": st.decimals(
            min_value=decimal.Decimal("-9999999999.99"),
            max_value=decimal.Decimal("9999999999.99"),
            places=2,
            allow_nan=False,
            allow_infinity=False,
        ),
        "born": st.none() | st.dates(min_value=dt.date(1, 1, 1)),
        "seen": MILLIS,
    }
)
SOURCES = st.fixed_dictionaries(
    {"agency": TEXT, "unit": st.from_regex(r"\A[0-9]{2,5}\Z"), "system": TEXT},
    optional={"table": TEXT, "connector": TEXT, "position": st.none() | TEXT},
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from("cudr"))
    return make_event(
        op=op,
        key={"id": draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))},
        source=draw(SOURCES),
        ts_ms=draw(st.integers(min_value=-(2**62), max_value=2**62)),
        before=draw(RECORDS) if op in "ud" else None,
        after=draw(RECORDS) if op != "d" else None,
    )


@pytest.fixture(scope="module")
def codec(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AvroCodec, int]]:
    registry = Registry(Settings(home=tmp_path_factory.mktemp("serde-home")))
    sid = registry.register("lgsp.79.test.prop-value", envelope_schema(record_schema(), SCHEMAS)).id
    yield AvroCodec(registry), sid
    dispose_engines()


@EXAMPLES
@given(event=events())
def test_an_event_decodes_to_itself(codec: tuple[AvroCodec, int], event: dict[str, Any]) -> None:
    avro, sid = codec
    data = avro.encode(sid, event)
    assert framed_schema_id(data) == sid
    assert avro.decode(data, allowed_ids={sid}) == (sid, event)


@EXAMPLES
@given(event=events())
def test_the_fast_writer_writes_fastavros_bytes(event: dict[str, Any]) -> None:
    schema = envelope_schema(record_schema(), SCHEMAS)
    writer = EnvelopeWriter.for_schema(schema)
    assert writer is not None
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema), event, strict=True)
    assert writer.write(event) == buf.getvalue()
