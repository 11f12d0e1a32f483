"""JSON lines to Avro-ready values and back."""

from __future__ import annotations

import datetime as dt
import decimal
import unicodedata

import pytest

from bus.errors import DataError
from bus.serde.jsoncodec import JsonToAvro, dumps
from tests.helpers import record_schema


def test_converts_logical_types_and_nfc() -> None:
    conv = JsonToAvro(record_schema())
    nfd = unicodedata.normalize("NFD", "Nguyễn Thị Ánh")
    out = conv(
        {
            "id": 1,
            "name": nfd,
            "amount": "12.5",
            "born": "1990-02-03",
            "seen": "2026-01-02T03:04:05+07:00",
        }
    )
    assert out["name"] == unicodedata.normalize("NFC", nfd)
    assert out["amount"] == decimal.Decimal("12.50")
    assert out["born"] == dt.date(1990, 2, 3)
    assert out["seen"].utcoffset() == dt.timedelta(hours=7)
    back = dumps(out)
    assert '"amount":"12.50"' in back and '"born":"1990-02-03"' in back


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"id": "x", "name": "a", "amount": 1, "seen": 0}, "id: expected an integer"),
        ({"id": 1, "name": "a", "amount": "1.234", "seen": 0}, "amount: expected a decimal"),
        ({"id": 1, "name": "a", "amount": 1, "seen": "2026-01-02T03:04:05"}, "seen: expected"),
        ({"id": 1, "name": "a", "amount": 1, "seen": 0, "zzz": 1}, "zzz: not a field"),
        ({"id": 1, "amount": 1, "seen": 0}, "name: expected a value"),
        ({"id": 1, "name": None, "amount": 1, "seen": 0}, "name: expected a value"),
        ({"id": 1, "name": "a", "amount": 1, "born": "03/02/1990", "seen": 0}, "born: expected"),
    ],
)
def test_errors_name_the_field(record: dict, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        JsonToAvro(record_schema())(record)
    assert "03/02/1990" not in str(info.value)
