"""The agency register: publishers and grant holders must be agencies of the catalogue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from bus.catalog._common import agency_name_problem
from bus.catalog.models import Agency
from bus.config import Settings
from bus.db import session_scope
from bus.errors import InvalidNameError
from bus.timeutil import utcnow


@dataclass(frozen=True)
class AgencyInfo:
    name: str
    display: str


def check_agency_name(name: str, what: str = "agency") -> str:
    problem = agency_name_problem(name)
    if problem:
        raise InvalidNameError(f"{what} {name!r}: {problem}")
    return name


def add_agency(settings: Settings, name: str, display: str) -> tuple[AgencyInfo, bool]:
    """Add an agency (or update its display name); returns (agency, created)."""
    check_agency_name(name)
    display = (display or "").strip()
    if not display:
        raise InvalidNameError("--display: expected the agency's full name, got nothing")
    with session_scope(settings) as s:
        row = s.get(Agency, name)
        created = row is None
        if row is None:
            s.add(Agency(name=name, display=display, created_at=utcnow()))
        else:
            row.display = display
    return AgencyInfo(name, display), created


def ensure_agency(session: Session, name: str, display: str | None = None) -> bool:
    """Register ``name`` inside ``session`` if missing; True if it was added."""
    if session.get(Agency, name) is not None:
        return False
    session.add(Agency(name=name, display=display or name, created_at=utcnow()))
    session.flush()
    return True


def list_agencies(settings: Settings) -> list[AgencyInfo]:
    with session_scope(settings) as s:
        rows = s.scalars(select(Agency).order_by(Agency.name)).all()
        return [AgencyInfo(r.name, r.display) for r in rows]
