"""Shared helpers of the connector integration tests: configs and table cleanup."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa


def config(
    type_name: str,
    role: str,
    url: str,
    tables: list[dict[str, Any]],
    *,
    name: str = "test-connector",
    unit: str = "26734",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": type_name,
        "role": role,
        "agency": "ubnd-phuong-tan-dinh",
        "unit": unit,
        "connection": {"url": url, "connect_timeout_s": 3},
        "tables": tables,
        **extra,
    }


def drop_tables(url: str, names: Iterable[str]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            quote = engine.dialect.identifier_preparer.quote
            for name in names:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {quote(name)}"))
    finally:
        engine.dispose()
