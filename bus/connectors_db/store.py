"""Registered connectors and their positions in the control database.

``add`` stores a connector in one transaction (nothing half-registered); ``save_position``
is called only after the broker acknowledged the batch the position follows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from bus.config import Settings
from bus.connectors_db.models import ConnectorPosition, ConnectorRow
from bus.db import session_scope
from connectors.errors import ConnectorExistsError, ConnectorNotFoundError


@dataclass(frozen=True)
class StoredConnector:
    name: str
    type: str
    role: str
    agency: str
    unit: str
    config: dict[str, Any]
    topics: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class TablePosition:
    table: str
    position: dict[str, Any] | None
    status: str
    error: str | None
    rows_total: int
    updated_at: dt.datetime


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _stored(row: ConnectorRow) -> StoredConnector:
    return StoredConnector(
        row.name,
        row.type,
        row.role,
        row.agency,
        row.unit,
        dict(row.config),
        dict(row.topics),
        row.created_at,
        row.updated_at,
    )


class ConnectorStore:
    """Reads and writes the ``connector`` and ``connector_position`` tables."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # ---- connectors ----------------------------------------------------------------------
    def add(
        self,
        *,
        name: str,
        type: str,
        role: str,
        agency: str,
        unit: str,
        config: dict[str, Any],
        topics: dict[str, str],
        replace: bool = False,
    ) -> StoredConnector:
        """Store a connector; with ``replace`` an existing one is updated (positions kept)."""
        now = _now()
        with session_scope(self.settings) as s:
            row = s.get(ConnectorRow, name)
            if row is not None and not replace:
                raise ConnectorExistsError(
                    f"name: connector {name!r} is already registered; "
                    "use --replace to update it or 'lgsp connector remove' first"
                )
            if row is None:
                row = ConnectorRow(name=name, created_at=now)
                s.add(row)
            row.type, row.role, row.agency, row.unit = type, role, agency, unit
            row.config, row.topics, row.updated_at = config, topics, now
            if replace:  # tables no longer configured lose their positions
                s.execute(
                    delete(ConnectorPosition).where(
                        ConnectorPosition.connector == name,
                        ConnectorPosition.table_name.not_in(list(topics)),
                    )
                )
            s.flush()
            return _stored(row)

    def get(self, name: str) -> StoredConnector:
        with session_scope(self.settings) as s:
            row = s.get(ConnectorRow, name)
            if row is None:
                known = s.scalars(select(ConnectorRow.name).order_by(ConnectorRow.name)).all()
                hint = f"; registered: {', '.join(known)}" if known else "; none is registered"
                raise ConnectorNotFoundError(f"connector {name!r} is not registered{hint}")
            return _stored(row)

    def list(self) -> list[StoredConnector]:
        with session_scope(self.settings) as s:
            return [_stored(r) for r in s.scalars(select(ConnectorRow).order_by(ConnectorRow.name))]

    def remove(self, name: str) -> None:
        self.get(name)
        with session_scope(self.settings) as s:
            s.execute(delete(ConnectorPosition).where(ConnectorPosition.connector == name))
            s.execute(delete(ConnectorRow).where(ConnectorRow.name == name))

    def publishers_of(self, topics: list[str]) -> dict[str, str]:
        """``{topic: source connector}`` for the topics some source already publishes to."""
        wanted = set(topics)
        out: dict[str, str] = {}
        for item in self.list():
            if item.role != "source":
                continue
            for topic in item.topics.values():
                if topic in wanted:
                    out[topic] = item.name
        return out

    # ---- positions -----------------------------------------------------------------------
    def positions(self, name: str) -> dict[str, TablePosition]:
        with session_scope(self.settings) as s:
            rows = s.scalars(
                select(ConnectorPosition).where(ConnectorPosition.connector == name)
            ).all()
            return {
                r.table_name: TablePosition(
                    r.table_name,
                    dict(r.position) if r.position is not None else None,
                    r.status,
                    r.error,
                    int(r.rows_total or 0),
                    r.updated_at,
                )
                for r in rows
            }

    def save_position(
        self, name: str, table: str, position: dict[str, Any] | None, *, rows: int = 0
    ) -> None:
        """Commit a table's position (after the broker acknowledged what precedes it)."""
        with session_scope(self.settings) as s:
            row = s.get(ConnectorPosition, (name, table))
            if row is None:
                row = ConnectorPosition(connector=name, table_name=table, rows_total=0)
                s.add(row)
            row.position = position
            row.status = "ok"
            row.error = None
            row.rows_total = int(row.rows_total or 0) + rows
            row.updated_at = _now()

    def set_status(self, name: str, table: str, status: str, error: str | None = None) -> None:
        with session_scope(self.settings) as s:
            row = s.get(ConnectorPosition, (name, table))
            if row is None:
                row = ConnectorPosition(
                    connector=name, table_name=table, position=None, rows_total=0
                )
                s.add(row)
            row.status = status
            row.error = error
            row.updated_at = _now()

    def reset(self, name: str, table: str | None = None) -> int:
        """Forget positions (all tables, or one) so that the next run starts over."""
        self.get(name)
        with session_scope(self.settings) as s:
            stmt = delete(ConnectorPosition).where(ConnectorPosition.connector == name)
            if table is not None:
                stmt = stmt.where(ConnectorPosition.table_name == table)
            return int(s.execute(stmt).rowcount or 0)
