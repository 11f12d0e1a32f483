"""Property-based tests (Hypothesis, small example counts): the JSON <-> Avro converter's
round trip, and the reconcile canonical form across the representations dialects return."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import unicodedata
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bus.envelope import to_jsonable
from bus.reconcile.canonical import canon, md5_60, row_string
from bus.serde.jsoncodec import JsonToAvro

EXAMPLES = settings(max_examples=150, deadline=None)
UTC_TIMES = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
)
DECIMALS = st.decimals(
    min_value=decimal.Decimal("-9999999999.99"),
    max_value=decimal.Decimal("9999999999.99"),
    places=2,
    allow_nan=False,
    allow_infinity=False,
)

SCHEMA = {
    "type": "record",
    "name": "Row",
    "namespace": "prop",
    "fields": [
        {"name": "n", "type": "long"},
        {"name": "x", "type": "double"},
        {"name": "ok", "type": "boolean"},
        {"name": "text", "type": ["null", "string"], "default": None},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
    ],
}

ROWS = st.fixed_dictionaries(
    {
        "n": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "x": st.floats(allow_nan=False, allow_infinity=False),
        "ok": st.booleans(),
        "text": st.none() | st.text(st.characters(blacklist_categories=("Cs",))),
        "amount": DECIMALS,
        "day": st.dates(min_value=dt.date(1, 1, 1)),
        "at": UTC_TIMES,
        "tags": st.lists(st.text(max_size=5), max_size=3),
    }
)


@EXAMPLES
@given(ROWS)
def test_json_round_trip_gives_the_record_back(row: dict[str, Any]) -> None:
    """A record rendered as JSON (as ``lgsp publish`` reads it) converts back to itself (its
    text NFC-normalised, as the converter does on purpose: U+F900 is U+8C48 after NFC)."""
    text = json.dumps(to_jsonable(row), ensure_ascii=False)
    assert JsonToAvro(SCHEMA)(json.loads(text)) == _nfc(row)


def _nfc(value: Any) -> Any:
    if isinstance(value, str):
        return unicodedata.normalize("NFC", value)
    if isinstance(value, list):
        return [_nfc(v) for v in value]
    if isinstance(value, dict):
        return {k: _nfc(v) for k, v in value.items()}
    return value


@EXAMPLES
@given(UTC_TIMES, st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=7))]))
def test_equal_instants_render_alike_in_every_representation(at: dt.datetime, zone: Any) -> None:
    """PostgreSQL gives aware values (any zone), MariaDB naive UTC, SQLite ISO text."""
    forms = [at.astimezone(zone), at.replace(tzinfo=None), at.replace(tzinfo=None).isoformat(" ")]
    assert len({canon(v, "datetime") for v in forms}) == 1


@EXAMPLES
@given(DECIMALS, st.integers(min_value=0, max_value=4))
def test_equal_decimals_render_alike(value: decimal.Decimal, zeros: int) -> None:
    padded = decimal.Decimal(
        format(value, "f") + ("0" * zeros if "." in format(value, "f") else "")
    )
    assert canon(value, "decimal") == canon(padded, "decimal") == canon(str(padded), "decimal")


@EXAMPLES
@given(st.integers(), st.booleans())
def test_integers_and_booleans_render_alike_from_text(value: int, flag: bool) -> None:
    assert canon(value, "int") == canon(str(value), "int")
    assert canon(flag, "bool") == canon(int(flag), "bool")


@EXAMPLES
@given(UTC_TIMES, UTC_TIMES, st.text(), st.text())
def test_different_rows_hash_differently(a: dt.datetime, b: dt.datetime, s: str, t: str) -> None:
    """Rows that differ in any column (down to a microsecond) have different canonical
    strings, and so (but for 60-bit collisions) different hashes."""
    kinds = ["datetime", "text"]
    one, two = row_string([a, s], kinds), row_string([b, t], kinds)
    same = a == b and unicodedata.normalize("NFC", s) == unicodedata.normalize("NFC", t)
    assert (one == two) == same
    assert (md5_60(one) == md5_60(two)) == same
    assert row_string([None, ""], kinds) != row_string([None, None], kinds)  # '' is not NULL


CONTROL_TEXT = st.text(st.sampled_from(["a", "b", "\x1d", "\x1e", "\x1f", "0", "1", "2"]))


@EXAMPLES
@given(
    st.lists(st.none() | CONTROL_TEXT, min_size=2, max_size=2),
    st.lists(st.none() | CONTROL_TEXT, min_size=2, max_size=2),
)
def test_text_with_the_forms_control_characters_never_makes_two_rows_one(
    one: list[str | None], two: list[str | None]
) -> None:
    """The canonical string is injective on text columns, whatever characters they hold:
    ``['a\\x1fb', 'c']`` and ``['a', 'b\\x1fc']`` (unescaped: one string) stay two."""
    for kinds in (["text", "text"], ["key_text", "other"]):
        assert (row_string(one, kinds) == row_string(two, kinds)) == (one == two)
    assert row_string(["a\x1fb", "c"], ["text", "text"]) != row_string(
        ["a", "b\x1fc"], ["text", "text"]
    )
