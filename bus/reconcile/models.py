"""Control-database table of reconciliation reports (migration ``0005_reconcile``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bus.db.engine import Base


class ReconcileReport(Base):
    """One reconciliation: figures for listing, the whole (masked) report as JSON."""

    __tablename__ = "reconcile_report"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    connector: Mapped[str | None] = mapped_column(String(255))
    source_table: Mapped[str] = mapped_column(String(255))
    target_connector: Mapped[str | None] = mapped_column(String(255))
    target_table: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    agree: Mapped[bool] = mapped_column(Boolean)
    source_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    target_rows: Mapped[int] = mapped_column(BigInteger, default=0)
    missing: Mapped[int] = mapped_column(Integer, default=0)
    extra: Mapped[int] = mapped_column(Integer, default=0)
    different: Mapped[int] = mapped_column(Integer, default=0)
    schema_errors: Mapped[int] = mapped_column(Integer, default=0)
    transient: Mapped[int] = mapped_column(Integer, default=0)
    repaired: Mapped[int | None] = mapped_column(Integer)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    summary: Mapped[str] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
