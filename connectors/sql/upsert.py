"""The sink's versioned statements: the version columns every target row carries, and the
upsert/delete conditions that let only a newer (or equal) version change a stored row. The
dialects' upserts (``SqlConnector.upsert_statement``, the PostgreSQL ``COPY`` path) and the
sink's writes all use these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

VERSION = "_lgsp_ts_ms"
EVENT_ID = "_lgsp_event_id"
DELETED = "_lgsp_deleted"
UNIT = "_lgsp_unit"  # the unit that published the row (source.unit): a city copy by ward
META = (VERSION, EVENT_ID, DELETED, UNIT)


def meta_columns(exact: Callable[[Any], Any] = lambda t: t) -> list[sa.Column[Any]]:
    """The version columns; ``exact`` makes their text types byte-exact (MariaDB/MySQL)."""
    return [
        sa.Column(VERSION, sa.BigInteger, nullable=True),
        sa.Column(EVENT_ID, exact(sa.String(64)), nullable=True),
        sa.Column(DELETED, sa.Boolean, nullable=True),
        sa.Column(UNIT, exact(sa.String(16)), nullable=True),
    ]


def delete_statement(table: sa.Table, key: list[str]) -> Any:
    conditions = [
        table.c[k] == sa.bindparam(f"_lgsp_k{i}", type_=table.c[k].type) for i, k in enumerate(key)
    ]
    version = table.c[VERSION]
    newer = sa.or_(version.is_(None), version <= sa.bindparam("_lgsp_v", type_=sa.BigInteger))
    return sa.delete(table).where(*conditions, newer)


def version_condition(table: sa.Table, incoming: Any) -> sa.ColumnElement[bool]:
    """The stored row is older than or as old as the incoming one (or has no version)."""
    stored = table.c[VERSION]
    return sa.or_(stored.is_(None), stored <= incoming)


def on_conflict_update(stmt: Any, table: sa.Table, columns: list[str], key: list[str]) -> Any:
    """``stmt`` (an ``INSERT`` with ``ON CONFLICT``: PostgreSQL, SQLite) upserting by ``key``:
    ``columns`` are updated only when the incoming version is not older."""
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in key],
        set_={c: excluded[c] for c in columns if c not in key},
        where=version_condition(table, excluded[VERSION]),
    )
