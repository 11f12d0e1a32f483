"""Control-database tables of the dated hierarchy: operators' unit changes and cut-overs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, Date, DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bus.db.engine import Base


class UnitChangeRow(Base):
    """One change of an operator's mapping file (``lgsp units mapping add``)."""

    __tablename__ = "unit_change"
    __table_args__ = (UniqueConstraint("from_hierarchy", "old_code", "effective"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    mapping: Mapped[str] = mapped_column(String(255))
    from_hierarchy: Mapped[str] = mapped_column(String(64))
    to_hierarchy: Mapped[str] = mapped_column(String(64))
    old_code: Mapped[str] = mapped_column(String(16))
    new_codes: Mapped[list] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(16))
    effective: Mapped[date] = mapped_column(Date)
    rule: Mapped[dict | None] = mapped_column(JSON)
    new_name: Mapped[str | None] = mapped_column(String(255))
    new_parent: Mapped[str | None] = mapped_column(String(16))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class UnitCutover(Base):
    """A cut-over applied by ``lgsp route reform``: from ``effective`` on, ``to_hierarchy``."""

    __tablename__ = "unit_cutover"
    __table_args__ = (
        UniqueConstraint("from_hierarchy", "to_hierarchy", "effective", name="uq_unit_cutover"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    from_hierarchy: Mapped[str] = mapped_column(String(64))
    to_hierarchy: Mapped[str] = mapped_column(String(64))
    effective: Mapped[date] = mapped_column(Date)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detail: Mapped[dict | None] = mapped_column(JSON)
