"""Catalogue tables: agencies, datasets (one publisher each), grants, and the access log."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bus.db.engine import Base


class Agency(Base):
    """A state agency: publisher of datasets, holder of grants, a principal on the broker."""

    __tablename__ = "catalog_agency"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    display: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Dataset(Base):
    """A dataset: topic family (one topic per publishing unit), record schema, one publisher."""

    __tablename__ = "catalog_dataset"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    publisher: Mapped[str] = mapped_column(ForeignKey("catalog_agency.name"))
    units: Mapped[list[str]] = mapped_column(JSON)
    schema_file: Mapped[str] = mapped_column(Text)
    record_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    fields: Mapped[list[str]] = mapped_column(JSON)
    pii: Mapped[list[str]] = mapped_column(JSON)
    key_fields: Mapped[list[str]] = mapped_column(JSON)
    description_vi: Mapped[str] = mapped_column(Text)
    description_en: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    frequency: Mapped[str] = mapped_column(String(32))
    findings: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Grant(Base):
    """An agency's right to receive a dataset's fields, for a purpose, on a legal basis."""

    __tablename__ = "catalog_grant"
    __table_args__ = (Index("ix_catalog_grant_agency_dataset", "agency", "dataset"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset: Mapped[str] = mapped_column(ForeignKey("catalog_dataset.name"))
    agency: Mapped[str] = mapped_column(ForeignKey("catalog_agency.name"))
    purpose: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(Text)
    fields: Mapped[list[str]] = mapped_column(JSON)
    allow_pii: Mapped[bool] = mapped_column(Boolean)
    expires: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(255))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(String(255))
    # the units the grant is written for (codes of ``unit_hierarchy``), followed across
    # reforms by the event's time (``bus.units.coverage``); NULL: every unit of the dataset
    units: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    unit_hierarchy: Mapped[str | None] = mapped_column(String(64), nullable=True)


class AccessEntry(Base):
    """One access to a dataset: a delivery under a grant, a replay, a refused attempt."""

    __tablename__ = "catalog_access_log"
    __table_args__ = (Index("ix_catalog_access_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    principal: Mapped[str] = mapped_column(String(255))
    agency: Mapped[str] = mapped_column(String(100))
    dataset: Mapped[str] = mapped_column(String(255))
    purpose: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(32))
    records: Mapped[int] = mapped_column(Integer)
    grant_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ApiKey(Base):
    """An agency's key to the HTTP API: only its SHA-256 is kept, the key is shown once."""

    __tablename__ = "catalog_api_key"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # public, part of the key
    agency: Mapped[str] = mapped_column(ForeignKey("catalog_agency.name"))
    role: Mapped[str] = mapped_column(String(16))
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
