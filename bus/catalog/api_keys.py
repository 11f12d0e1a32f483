"""Agencies' keys to the HTTP API: created once (the key is shown then and never again), kept as
a SHA-256 digest with an expiry, listed, revoked.

A key reads ``lgsp_<id>_<secret>``: the id (public, what ``list`` and the access log show)
finds the row, the secret (32 random bytes) is compared by digest in constant time. A key has
one role: ``operator`` (connectors, routes, DLQ), ``publisher`` (its agency's datasets),
``consumer`` (what its agency's grants allow), ``auditor`` (archive, verify, replay, access log).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Any, Literal, get_args

from sqlalchemy import bindparam, select

from bus.catalog.agencies import check_agency_name
from bus.catalog.models import Agency, ApiKey
from bus.config import Settings
from bus.db import open_engine, session_scope
from bus.errors import ConfigurationError, NotFoundError
from bus.timeutil import as_utc, utcnow

Role = Literal["operator", "publisher", "consumer", "auditor"]
ROLES: tuple[str, ...] = get_args(Role)
_KEY = re.compile(r"lgsp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never its secret nor its digest."""

    id: str
    agency: str
    role: str
    created_at: dt.datetime
    created_by: str
    expires_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def live(self) -> bool:
        return self.revoked_at is None and self.expires_at > utcnow()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "agency": self.agency,
            "role": self.role,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "expires_at": self.expires_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "live": self.live,
        }


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        agency=row.agency,
        role=row.role,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        expires_at=as_utc(row.expires_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
    )


def create_key(
    settings: Settings, agency: str, role: str, *, days: int | None = None
) -> tuple[KeyInfo, str]:
    """A new key for ``agency`` with ``role``, valid ``days`` (default ``api.key_days``);
    returns (its info, the key itself: show it once, it is not stored)."""
    check_agency_name(agency)
    if role not in ROLES:
        raise ConfigurationError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    days = settings.api.key_days if days is None else days
    if not isinstance(days, int) or days < 1:
        raise ConfigurationError("days: expected a whole number of days, 1 or more")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    now = utcnow()
    with session_scope(settings) as s:
        if s.get(Agency, agency) is None:
            raise NotFoundError(f"agency {agency!r} is not in the catalogue (lgsp agency add)")
        row = ApiKey(
            id=key_id,
            agency=agency,
            role=role,
            secret_sha256=_digest(secret),
            created_at=now,
            created_by=settings.principal,
            expires_at=now + dt.timedelta(days=days),
            revoked_at=None,
        )
        s.add(row)
        s.flush()
        info = _info(row)
    return info, f"lgsp_{key_id}_{secret}"


def list_keys(settings: Settings, agency: str | None = None) -> list[KeyInfo]:
    query = select(ApiKey).order_by(ApiKey.agency, ApiKey.created_at)
    if agency is not None:
        query = query.where(ApiKey.agency == check_agency_name(agency))
    with session_scope(settings) as s:
        return [_info(r) for r in s.scalars(query)]


def revoke_key(settings: Settings, agency: str, key_id: str) -> KeyInfo:
    """Revoke ``agency``'s key ``key_id``: its next request gets 401."""
    check_agency_name(agency)
    with session_scope(settings) as s:
        row = s.get(ApiKey, key_id) if re.fullmatch(r"[0-9a-f]{12}", key_id) else None
        if row is None or row.agency != agency:
            raise NotFoundError(f"agency {agency!r} has no key {key_id!r} (lgsp agency key list)")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        s.flush()
        return _info(row)


def authenticate(settings: Settings, key: str) -> KeyInfo | None:
    """The live key ``key`` is, or None (malformed, unknown, wrong secret, revoked, expired)."""
    match = _KEY.fullmatch(key or "")
    if match is None:
        return None
    # a plain SELECT (every API request runs this; ORM loading costs four times the CPU)
    with open_engine(settings).connect() as conn:
        row = conn.execute(_BY_ID, {"id": match.group(1)}).first()
    if row is None or not hmac.compare_digest(row.secret_sha256, _digest(match.group(2))):
        return None
    info = _info(row)  # type: ignore[arg-type]
    return info if info.live else None


_BY_ID = select(ApiKey.__table__).where(ApiKey.__table__.c.id == bindparam("id"))
