"""Shared helpers of the connector integration tests: configs and SQLite tables (dropping
tables is ``tests.helpers.drop_tables``)."""

from __future__ import annotations

from pathlib import Path
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


def sqlite_codes(path: Path, tables: dict[str, list[str]]) -> str:
    """A SQLite file whose tables are ``(id INTEGER PRIMARY KEY, code TEXT NOT NULL)``, with
    ``codes`` in order under ids from 1; its URL."""
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name, codes in tables.items():
            conn.execute(
                sa.text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, code TEXT NOT NULL)")
            )
            conn.execute(
                sa.text(f"INSERT INTO {name} (id, code) VALUES (:id, :code)"),  # noqa: S608
                [{"id": i, "code": c} for i, c in enumerate(codes, start=1)],
            )
    engine.dispose()
    return url
