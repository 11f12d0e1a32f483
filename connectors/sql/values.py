"""What a sink column can store: a value the target database would refuse, or worse, store
altered, is named before the write, so that the event goes to the DLQ with a reason naming the
column and the problem (never the value) and the rest of the batch goes on.

Per dialect (the table in README, "Values a target cannot store"):

- ``NaN`` and ``±Infinity`` (Avro ``double``/``float``): PostgreSQL stores all three; MariaDB
  and MySQL store none (``DOUBLE`` holds finite numbers only); SQLite stores ``±Infinity`` but
  turns ``NaN`` into ``NULL``, so a NaN is refused there too.
- A NUL character in text: PostgreSQL text cannot hold it; MariaDB, MySQL and SQLite can.
- Text longer than a ``VARCHAR(n)`` (characters) or a MariaDB/MySQL ``TEXT`` type (bytes), and
  a decimal with more integer digits than ``NUMERIC(p, s)`` allows: refused where the database
  enforces the limit (PostgreSQL, MariaDB, MySQL; SQLite stores any length and any number).
- A timestamp outside 1970-2038 for a MariaDB/MySQL ``TIMESTAMP`` column.

``certain`` problems (NaN, Infinity, NUL) come from the value whatever the table's definition;
the others depend on the target (a column too narrow for every row is a target to fix, and a
batch whose every row is refused for it stops the table instead of filling the DLQ).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# what a MariaDB/MySQL text type holds, in bytes
_MYSQL_TEXT_BYTES: tuple[tuple[type[Any], int], ...] = (
    (mysql.TINYTEXT, 255),
    (mysql.MEDIUMTEXT, 16_777_215),
    (mysql.LONGTEXT, 4_294_967_295),
    (sa.Text, 65_535),
)
_MYSQL_TIMESTAMP = (
    dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=dt.UTC),
    dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=dt.UTC),
)
_MYSQL = ("mysql", "mariadb")


@dataclass(frozen=True)
class Problem:
    """Why a value cannot go into its column (no value in the text)."""

    text: str
    certain: bool  # the value itself, whatever the target table's definition


Check = Callable[[Any], Problem | None]


def column_check(dialect: str, column: sa.Column[Any]) -> Check | None:
    """A check of the values bound to ``column`` on a ``dialect`` database (``postgresql``,
    ``mysql``, ``mariadb``, ``sqlite``), or None when the column takes every value."""
    checks = [
        c
        for c in (
            _float_check(dialect),
            _text_check(dialect, column.type),
            _decimal_check(dialect, column.type),
            _timestamp_check(dialect, column.type),
        )
        if c is not None
    ]
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]

    def check(value: Any) -> Problem | None:
        for c in checks:
            problem = c(value)
            if problem is not None:
                return problem
        return None

    return check


def _float_check(dialect: str) -> Check | None:
    if dialect in _MYSQL:
        where = "a MariaDB/MySQL column (DOUBLE holds finite numbers only)"
        refuse_inf = True
    elif dialect == "sqlite":
        where = "SQLite (it would store NULL)"
        refuse_inf = False
    else:
        return None

    def check(value: Any) -> Problem | None:
        if type(value) is float and not math.isfinite(value):
            if math.isnan(value):
                return Problem(f"NaN cannot be stored in {where}", True)
            if refuse_inf:
                return Problem(f"Infinity cannot be stored in {where}", True)
        return None

    return check


def _text_check(dialect: str, sql_type: Any) -> Check | None:
    if not isinstance(sql_type, sa.String):
        return None
    nul = dialect == "postgresql"
    chars = sql_type.length if dialect != "sqlite" and not isinstance(sql_type, sa.Text) else None
    max_bytes = None
    if dialect in _MYSQL and isinstance(sql_type, sa.Text):
        max_bytes = next(n for kind, n in _MYSQL_TEXT_BYTES if isinstance(sql_type, kind))
    if not (nul or chars or max_bytes):
        return None

    def check(value: Any) -> Problem | None:
        if not isinstance(value, str):
            return None
        if nul and "\x00" in value:
            return Problem(
                "text with a NUL character (0x00), which PostgreSQL text cannot hold", True
            )
        if chars and len(value) > chars:
            return Problem(
                f"text of {len(value)} characters is longer than the column's {chars}", False
            )
        if max_bytes and len(value) * 4 > max_bytes:
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > max_bytes:
                return Problem(
                    f"text of {size} bytes is longer than the column's type holds "
                    f"({max_bytes} bytes)",
                    False,
                )
        return None

    return check


def _decimal_check(dialect: str, sql_type: Any) -> Check | None:
    if dialect == "sqlite" or not isinstance(sql_type, sa.Numeric):
        return None
    if isinstance(sql_type, sa.Float) or sql_type.precision is None:
        return None
    precision, scale = int(sql_type.precision), int(sql_type.scale or 0)
    limit = decimal.Decimal(10) ** (precision - scale)

    def check(value: Any) -> Problem | None:
        if isinstance(value, decimal.Decimal) and value.is_finite() and abs(value) >= limit:
            return Problem(
                f"number out of range for NUMERIC({precision}, {scale}) "
                f"(at most {precision - scale} digits before the point)",
                False,
            )
        return None

    return check


def _timestamp_check(dialect: str, sql_type: Any) -> Check | None:
    if dialect not in _MYSQL or not isinstance(sql_type, mysql.TIMESTAMP):
        return None
    low, high = _MYSQL_TIMESTAMP

    def check(value: Any) -> Problem | None:
        if isinstance(value, dt.datetime):
            aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            if not low <= aware <= high:
                return Problem(
                    "timestamp outside the range of a MariaDB/MySQL TIMESTAMP column "
                    "(1970-01-01 to 2038-01-19 UTC)",
                    False,
                )
        return None

    return check
