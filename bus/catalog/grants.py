"""Grants: an agency may receive some fields of a dataset, for a purpose, on a legal basis,
until an expiry date, optionally for some units only (``--unit``: codes of one hierarchy,
followed across reforms by each event's time, :mod:`bus.units.coverage`). At most one live
grant per agency and dataset; revocation and expiry take effect at the next delivery run."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from bus.catalog._common import fold, today_vn
from bus.catalog.errors import AccessDeniedError, InvalidFieldsError, MissingReferenceError
from bus.catalog.masking import GrantView, load_pii_key
from bus.catalog.models import Agency, Dataset, Grant
from bus.config import Settings
from bus.db import open_engine, session_scope
from bus.errors import ConfigurationError, NotFoundError
from bus.timeutil import as_utc, utcnow
from bus.units.coverage import UnitScope
from connectors.errors import FieldError

MAX_TEXT = 2000


@dataclass(frozen=True)
class GrantInfo:
    id: int
    dataset: str
    agency: str
    purpose: str
    legal_basis: str
    fields: list[str]
    allow_pii: bool
    expires: dt.date
    created_at: dt.datetime
    created_by: str
    revoked_at: dt.datetime | None
    revoked_by: str | None
    units: list[str] | None = None  # None: every unit of the dataset
    unit_hierarchy: str | None = None

    def status(self, today: dt.date | None = None) -> str:
        """``live``, ``revoked`` or ``expired`` (the grant holds through its expiry day)."""
        if self.revoked_at is not None:
            return "revoked"
        if (today or today_vn()) > self.expires:
            return "expired"
        return "live"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["expires"] = self.expires.isoformat()
        data["created_at"] = self.created_at.isoformat()
        data["revoked_at"] = self.revoked_at.isoformat() if self.revoked_at else None
        data["status"] = self.status()
        return data


def _info(row: Grant) -> GrantInfo:
    return GrantInfo(
        id=row.id,
        dataset=row.dataset,
        agency=row.agency,
        purpose=row.purpose,
        legal_basis=row.legal_basis,
        fields=list(row.fields),
        allow_pii=bool(row.allow_pii),
        expires=row.expires,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        revoked_by=row.revoked_by,
        units=list(row.units) if row.units else None,
        unit_hierarchy=row.unit_hierarchy,
    )


def parse_expiry(value: dt.date | str) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise ConfigurationError("--expires: expected a date YYYY-MM-DD") from None


def parse_fields(value: str | Iterable[str]) -> list[str]:
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if name and name not in out:
            out.append(name)
    return out


def add_grant(
    settings: Settings,
    *,
    dataset: str,
    agency: str,
    purpose: str,
    legal_basis: str,
    fields: str | Iterable[str],
    allow_pii: bool = False,
    expires: dt.date | str,
    principal: str | None = None,
    units: Iterable[str] | None = None,
    hierarchy: str | None = None,
) -> GrantInfo:
    """Store a grant; every problem is reported at once and nothing is stored on any.
    ``units``: only these units' events (codes of ``hierarchy``, by default the hierarchy in
    force today), followed across reforms; none: every unit of the dataset."""
    purpose = (purpose or "").strip()
    legal_basis = (legal_basis or "").strip()
    wanted = parse_fields(fields)
    problems: list[FieldError] = []
    missing = False
    if not purpose:
        problems.append(
            FieldError("--purpose", "expected the purpose of the processing, got nothing")
        )
    elif len(purpose) > MAX_TEXT:
        problems.append(FieldError("--purpose", f"longer than {MAX_TEXT} characters"))
    if not legal_basis:
        problems.append(
            FieldError("--legal-basis", "expected the legal basis (law, decree), got nothing")
        )
    elif len(legal_basis) > MAX_TEXT:
        problems.append(FieldError("--legal-basis", f"longer than {MAX_TEXT} characters"))
    try:
        expiry = parse_expiry(expires)
    except ConfigurationError as exc:
        problems.append(FieldError("--expires", str(exc).removeprefix("--expires: ")))
        expiry = None
    if expiry is not None and expiry < today_vn():
        problems.append(
            FieldError(
                "--expires", f"{expiry.isoformat()} is in the past; expected today or a later date"
            )
        )
    if not wanted:
        problems.append(
            FieldError("--fields", "expected a comma-separated list of the dataset's fields")
        )
    scope, unit_h = _check_units(settings, units, hierarchy, problems)
    with session_scope(settings) as s:
        ds = s.get(Dataset, dataset)
        if ds is None:
            missing = True
            problems.append(
                FieldError(
                    "--dataset",
                    f"dataset {dataset!r} is not in the catalogue (see 'lgsp dataset list')",
                )
            )
        else:
            unknown = [f for f in wanted if f not in ds.fields]
            if unknown:
                problems.append(
                    FieldError(
                        "--fields",
                        f"{', '.join(unknown)} not a field of {dataset} "
                        f"(fields: {', '.join(ds.fields)})",
                    )
                )
        if s.get(Agency, agency) is None:
            missing = True
            problems.append(
                FieldError(
                    "--to",
                    f"agency {agency!r} is not in the catalogue; add it with "
                    f"'lgsp agency add {agency} --display \"...\"'",
                )
            )
        if problems:
            raise (MissingReferenceError if missing else InvalidFieldsError)(problems)
        assert ds is not None and expiry is not None
        for row in s.scalars(
            select(Grant).where(Grant.agency == agency, Grant.dataset == dataset)
        ).all():
            if _info(row).status() == "live":  # the receiving agency's problem: named so
                raise InvalidFieldsError(
                    [
                        FieldError(
                            "--to",
                            f"agency {agency} already holds live grant {row.id} for {dataset}; "
                            f"revoke it first ('lgsp grant revoke {row.id}')",
                        )
                    ]
                )
        ordered = [f for f in ds.fields if f in wanted]
        row = Grant(
            dataset=dataset,
            agency=agency,
            purpose=purpose,
            legal_basis=legal_basis,
            fields=ordered,
            allow_pii=bool(allow_pii),
            expires=expiry,
            created_at=utcnow(),
            created_by=principal or settings.principal,
            revoked_at=None,
            revoked_by=None,
            units=scope,
            unit_hierarchy=unit_h,
        )
        s.add(row)
        s.flush()
        return _info(row)


def _check_units(
    settings: Settings,
    units: Iterable[str] | None,
    hierarchy: str | None,
    problems: list[FieldError],
) -> tuple[list[str] | None, str | None]:
    """The grant's unit codes (None: every unit) and their hierarchy; problems named."""
    codes = parse_fields(units) if units is not None else []
    if not codes:
        if hierarchy:
            problems.append(FieldError("--hierarchy", "given without --unit"))
        return None, None
    from bus.units.timeline import hierarchy_name_in_force, load_timeline

    timeline = load_timeline(settings)
    name = hierarchy or hierarchy_name_in_force(settings, today_vn())
    if name not in timeline.by_name:
        problems.append(
            FieldError("--hierarchy", f"{name!r} is unknown; expected one of {timeline.era_names}")
        )
        return None, None
    h = timeline.hierarchy(name)
    unknown = [c for c in codes if c not in h]
    if unknown:
        problems.append(
            FieldError(
                "--unit",
                f"{', '.join(unknown)} not a unit code of hierarchy {name!r} "
                "(see 'lgsp units list'; --hierarchy names another list)",
            )
        )
    return codes, name


def unit_scope(settings: Settings, grant: GrantInfo | GrantView) -> UnitScope | None:
    """The units a grant is written for, followed through the dated hierarchy (the packaged
    and the stored changes); None for a grant on every unit."""
    if not grant.units or not grant.unit_hierarchy:
        return None
    from bus.units.timeline import load_timeline

    return UnitScope(load_timeline(settings), grant.unit_hierarchy, tuple(grant.units))


def grant_coverage(settings: Settings, grant: GrantInfo) -> list[dict[str, Any]] | None:
    """Per hierarchy (era), the units ``grant`` covers while it is in force; None: all."""
    scope = unit_scope(settings, grant)
    return scope.eras() if scope is not None else None


def get_grant(settings: Settings, grant_id: int) -> GrantInfo:
    with session_scope(settings) as s:
        return _info(_grant_row(s, grant_id))


def _grant_row(s: Session, grant_id: int) -> Grant:
    row = s.get(Grant, grant_id)
    if row is None:
        raise NotFoundError(f"grant {grant_id} does not exist (see 'lgsp grant list')")
    return row


def list_grants(
    settings: Settings,
    *,
    agency: str | None = None,
    dataset: str | None = None,
    live_only: bool = False,
) -> list[GrantInfo]:
    query = select(Grant).order_by(Grant.id)
    if agency:
        query = query.where(Grant.agency == agency)
    if dataset:
        query = query.where(Grant.dataset == dataset)
    with session_scope(settings) as s:
        infos = [_info(r) for r in s.scalars(query).all()]
    return [g for g in infos if g.status() == "live"] if live_only else infos


def revoke_grant(
    settings: Settings, grant_id: int, principal: str | None = None
) -> tuple[GrantInfo, bool]:
    """Revoke a grant; returns (grant, changed). Revoking twice changes nothing."""
    with session_scope(settings) as s:
        row = _grant_row(s, grant_id)
        if row.revoked_at is not None:
            return _info(row), False
        row.revoked_at = utcnow()
        row.revoked_by = principal or settings.principal
        s.flush()
        return _info(row), True


def _refusal(grant: GrantInfo) -> str:
    where = f"grant {grant.id} (agency {grant.agency}, dataset {grant.dataset})"
    if grant.status() == "revoked":
        assert grant.revoked_at is not None
        return f"{where} was revoked on {grant.revoked_at.date().isoformat()}"
    return f"{where} expired on {grant.expires.isoformat()}"


def _same_purpose(a: str, b: str) -> bool:
    return " ".join(fold(a).split()) == " ".join(fold(b).split())


def grant_view(settings: Settings, grant: GrantInfo) -> GrantView:
    """The delivery view of a grant, with the dataset's current PII and key fields."""
    with session_scope(settings) as s:
        ds = s.get(Dataset, grant.dataset)
        if ds is None:  # pragma: no cover - a foreign key keeps it
            raise NotFoundError(f"dataset {grant.dataset!r} is not in the catalogue")
        return _view(settings, grant, ds.pii, ds.key_fields)


def _view(
    settings: Settings, grant: GrantInfo, pii_fields: Iterable[str], key_fields: Iterable[str]
) -> GrantView:
    pii = frozenset(pii_fields)
    keys = tuple(key_fields)
    return GrantView(
        id=grant.id,
        dataset=grant.dataset,
        agency=grant.agency,
        purpose=grant.purpose,
        legal_basis=grant.legal_basis,
        fields=tuple(grant.fields),
        allow_pii=grant.allow_pii,
        pii_fields=pii,
        key_fields=keys,
        expires=grant.expires,
        token_key=load_pii_key(settings),
        units=tuple(grant.units or ()),
        unit_hierarchy=grant.unit_hierarchy,
    )


def live_grant(
    settings: Settings,
    *,
    grant_id: int | None = None,
    agency: str | None = None,
    dataset: str | None = None,
    purpose: str | None = None,
) -> GrantView:
    """The live grant a delivery runs under, or ``AccessDeniedError`` saying why not."""
    if grant_id is not None:
        grant = get_grant(settings, grant_id)
        if agency and grant.agency != agency:
            raise AccessDeniedError(
                f"grant {grant_id} belongs to agency {grant.agency}, not {agency}"
            )
        if dataset and grant.dataset != dataset:
            raise AccessDeniedError(
                f"grant {grant_id} is for dataset {grant.dataset}, not {dataset}"
            )
        if grant.status() != "live":
            raise AccessDeniedError(_refusal(grant) + ": nothing delivered")
    else:
        if not agency or not dataset:
            raise ConfigurationError("a delivery needs a grant id, or an agency and a dataset")
        # one transaction (a lookup checks this on every request): the dataset, the agency,
        # its grants for the dataset and the view of the live one
        # (plain SELECTs: ORM loading costs four times the CPU)
        with open_engine(settings).connect() as conn:
            ds = conn.execute(_DATASET, {"name": dataset}).first()
            if ds is None:
                raise NotFoundError(f"dataset {dataset!r} is not in the catalogue")
            if conn.execute(_AGENCY, {"name": agency}).first() is None:
                raise AccessDeniedError(
                    f"agency {agency!r} is not in the catalogue and holds no grant: "
                    "nothing delivered"
                )
            rows = conn.execute(_GRANTS, {"agency": agency, "dataset": dataset}).all()
            grants = [_info(r) for r in rows]  # type: ignore[arg-type]
            live = [g for g in grants if g.status() == "live"]
            if not live:
                if grants:
                    raise AccessDeniedError(_refusal(grants[-1]) + ": nothing delivered")
                raise AccessDeniedError(
                    f"agency {agency} holds no grant for dataset {dataset}: nothing delivered; "
                    f"the publisher can grant access with 'lgsp grant add --dataset {dataset} "
                    f"--to {agency} --purpose ... --legal-basis ... --fields ... --expires ...'"
                )
            grant = live[-1]
            _check_purpose(grant, purpose)
            return _view(settings, grant, ds.pii, ds.key_fields)
    _check_purpose(grant, purpose)
    return grant_view(settings, grant)


_DATASET = select(Dataset.pii, Dataset.key_fields).where(Dataset.name == bindparam("name"))
_AGENCY = select(Agency.name).where(Agency.name == bindparam("name"))
_GRANTS = (
    select(Grant.__table__)
    .where(Grant.agency == bindparam("agency"), Grant.dataset == bindparam("dataset"))
    .order_by(Grant.id)
)


def _check_purpose(grant: GrantInfo, purpose: str | None) -> None:
    if purpose is not None and purpose.strip() and not _same_purpose(purpose, grant.purpose):
        raise AccessDeniedError(
            f"grant {grant.id} allows the purpose {grant.purpose!r} only, not {purpose!r}: "
            "nothing delivered"
        )


def auditor_view(settings: Settings, agency: str, dataset: str) -> GrantView:
    """What an auditor of ``agency`` sees of ``dataset``'s events (history, replay): every
    field, with the PII fields as tokens except those that a live grant of ``agency`` with
    PII allowed covers. ``allow_pii`` is true when nothing is left to hide, so that
    ``apply_grant`` keeps the source position then, as for such a grant. A grant written for
    some units does not count here (this view covers every unit's events alike): its PII
    stays tokenised for the auditor."""
    with session_scope(settings) as s:
        ds = s.get(Dataset, dataset)
        if ds is None:
            raise NotFoundError(f"dataset {dataset!r} is not in the catalogue")
        fields, pii, keys = tuple(ds.fields), frozenset(ds.pii), tuple(ds.key_fields)
    covered: set[str] = set()
    grant_id = 0
    for grant in list_grants(settings, agency=agency, dataset=dataset, live_only=True):
        if grant.allow_pii and not grant.units:
            covered |= set(grant.fields)
            grant_id = grant.id
    hidden = pii - covered
    return GrantView(
        id=grant_id,
        dataset=dataset,
        agency=agency,
        purpose="audit",
        legal_basis="",
        fields=fields,
        allow_pii=not hidden,
        pii_fields=frozenset(hidden),
        key_fields=keys,
        expires=dt.date.max,
        token_key=load_pii_key(settings),
    )
