"""The canonical rendering that makes one row hash the same on every dialect."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import unicodedata
import uuid

import pytest

from bus.reconcile.canonical import (
    NULL_MARK,
    SEP,
    canon,
    fold,
    md5_60,
    render,
    row_string,
)

D = decimal.Decimal


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("1.50"), "1.5"),
        (D("2.00"), "2"),
        (D("100"), "100"),
        (D("1E+2"), "100"),
        (D("-0.00"), "0"),
        (D("0.000100"), "0.0001"),
        (D("-12.340"), "-12.34"),
        (1.5, "1.5"),
        (0.1, "0.1"),
        (3, "3"),
        ("7.250", "7.25"),
    ],
)
def test_decimal_is_the_plain_value_without_trailing_zeros(value: object, expected: str) -> None:
    assert canon(value, "decimal") == expected


def test_decimal_value_change_is_visible() -> None:
    assert canon(D("51.25"), "decimal") != canon(D("51.3"), "decimal")


def test_boolean_and_tinyint_render_alike() -> None:
    assert canon(True, "bool") == canon(1, "int") == "1"
    assert canon(False, "bool") == canon(0, "int") == "0"
    assert canon(D("5"), "int") == "5"


def test_timestamps_are_utc_with_trimmed_fraction() -> None:
    hcm = dt.timezone(dt.timedelta(hours=7))
    aware = dt.datetime(2024, 6, 1, 15, 30, 0, 123400, tzinfo=hcm)
    naive_utc = dt.datetime(2024, 6, 1, 8, 30, 0, 123400)
    assert canon(aware, "datetime") == canon(naive_utc, "datetime") == "2024-06-01 08:30:00.1234"
    assert canon(dt.datetime(2024, 6, 1, 8, 30), "datetime") == "2024-06-01 08:30:00"
    # SQLite keeps text; both separators and an offset are understood
    assert canon("2024-06-01 08:30:00.123400", "datetime") == "2024-06-01 08:30:00.1234"
    assert canon("2024-06-01T15:30:00+07:00", "datetime") == "2024-06-01 08:30:00"
    assert canon(dt.datetime(2024, 6, 1, 8, 30, 0, 1), "datetime").endswith(".000001")


def test_dates_and_times() -> None:
    assert canon(dt.date(2025, 7, 1), "date") == "2025-07-01"
    assert canon("2025-07-01", "date") == "2025-07-01"
    assert canon(dt.time(8, 5, 3, 500000), "time") == "08:05:03.5"
    # MariaDB TIME arrives as a timedelta
    assert canon(dt.timedelta(hours=8, minutes=5, seconds=3, microseconds=500000), "time") == (
        "08:05:03.5"
    )


def test_text_is_nfc_so_nfd_is_the_same_string() -> None:
    nfc = "Phường Tân Định, Quận 1"
    nfd = unicodedata.normalize("NFD", nfc)
    assert nfc != nfd
    assert canon(nfd, "text") == canon(nfc, "text") == nfc
    assert canon("ab  ", "char") == "ab"
    assert canon("ab  ", "text") == "ab  "


def test_null_is_not_empty_text() -> None:
    assert render(None, "text") == NULL_MARK
    assert render("", "text") == ""
    assert render(None, "int") == ""
    assert render(None, "decimal") == ""
    assert row_string([None, ""], ["text", "text"]) != row_string(["", None], ["text", "text"])


def test_other_kinds() -> None:
    assert canon(b"\x01\xff", "binary") == "01ff"
    assert canon('{"b": 1, "a": [1, 2]}', "json") == '{"a":[1,2],"b":1}'
    assert canon({"b": 1, "a": "ờ"}, "json") == '{"a":"ờ","b":1}'
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert canon(u, "uuid") == canon(str(u).upper(), "uuid") == str(u)
    assert canon(1.0, "float") == "1"
    assert canon(1e16, "float") == "1e+16"


def test_row_string_and_hash() -> None:
    text = row_string([1, "Lê Thị Ánh", D("1.50"), None], ["int", "text", "decimal", "date"])
    assert text == SEP.join(["1", "Lê Thị Ánh", "1.5", ""])
    assert md5_60(text) == int(hashlib.md5(text.encode()).hexdigest()[:15], 16)
    assert md5_60("") == int("d41d8cd98f00b20", 16)
    assert 0 <= md5_60(text) < 2**60


def test_fold_reduces_every_dialect_sum_alike() -> None:
    assert fold(D("576782294677832652733708")) == 576782294677832652733708 % 2**64
    assert fold("576782294677832652733708") == fold(576782294677832652733708)
    assert fold(-5) == 2**64 - 5
    assert fold(None) == 0
