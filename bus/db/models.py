"""Core tables: the schema registry and the run history."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bus.db.engine import Base


class Subject(Base):
    __tablename__ = "registry_subject"

    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    compatibility: Mapped[str | None] = mapped_column(String(32))


class SchemaRow(Base):
    __tablename__ = "registry_schema"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    schema_json: Mapped[str] = mapped_column(Text)


class SubjectVersion(Base):
    __tablename__ = "registry_version"
    __table_args__ = (UniqueConstraint("subject", "schema_id"),)

    subject: Mapped[str] = mapped_column(
        String(255), ForeignKey("registry_subject.name"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_id: Mapped[int] = mapped_column(ForeignKey("registry_schema.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # soft-deleted (Schema Registry API): hidden from reads and checks, its id still resolves
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Run(Base):
    """One run of a job (sync, route, reconcile, archive, ...) with its figures."""

    __tablename__ = "run"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16))
    rows_in: Mapped[int] = mapped_column(Integer, default=0)
    rows_out: Mapped[int] = mapped_column(Integer, default=0)
    dlq: Mapped[int] = mapped_column(Integer, default=0)
    detail: Mapped[dict | None] = mapped_column(JSON)
