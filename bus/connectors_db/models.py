"""Control-database tables of registered connectors, their per-table positions and run locks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bus.db.engine import Base


class ConnectorRow(Base):
    """A registered connector: its validated file (secrets kept as references) and topics."""

    __tablename__ = "connector"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    type: Mapped[str] = mapped_column(String(63))
    role: Mapped[str] = mapped_column(String(16))
    agency: Mapped[str] = mapped_column(String(255))
    unit: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict] = mapped_column(JSON)
    topics: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConnectorPosition(Base):
    """Where a source table stopped (committed after the broker's acknowledgement), or the
    state of a sink table; ``status`` is ``ok`` or ``stopped`` with the reason in ``error``."""

    __tablename__ = "connector_position"

    connector: Mapped[str] = mapped_column(
        String(63), ForeignKey("connector.name", ondelete="CASCADE"), primary_key=True
    )
    table_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    position: Mapped[dict | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    rows_total: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConnectorLock(Base):
    """The run lock of a connector: held by one sync run (``owner``) until it is released or
    ``expires_at`` passes (a crashed run); a running sync extends it as it goes."""

    __tablename__ = "connector_lock"

    connector: Mapped[str] = mapped_column(
        String(63), ForeignKey("connector.name", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OperationLock(Base):
    """The run lock of a bus-wide operation that must not run twice at once (``name``: e.g.
    ``broker-restore``), taken as a connector's run lock is (``ConnectorStore.acquire_lock``)."""

    __tablename__ = "operation_lock"

    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255))
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ConnectorPositionMark(Base):
    """A source table's position together with the offsets (per partition of its topic, the
    most the table's batches reached so far) the broker acknowledged for the rows before it.
    ``lgsp broker restore`` moves a position back to the newest mark the archive covers."""

    __tablename__ = "connector_position_mark"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector: Mapped[str] = mapped_column(
        String(63), ForeignKey("connector.name", ondelete="CASCADE")
    )
    table_name: Mapped[str] = mapped_column(String(255))
    topic: Mapped[str] = mapped_column(String(249))
    position: Mapped[dict | None] = mapped_column(JSON)
    ends: Mapped[dict] = mapped_column(JSON)
    saved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
