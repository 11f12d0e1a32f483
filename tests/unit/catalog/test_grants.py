"""Grants: bad input refused with nothing stored, one live grant, revocation, expiry, refusals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bus.catalog import (
    AccessDeniedError,
    add_agency,
    add_grant,
    list_grants,
    live_grant,
    revoke_grant,
)
from bus.catalog._common import today_vn
from bus.catalog.models import Grant
from bus.config import Settings
from bus.db import session_scope
from bus.errors import ConfigurationError, NotFoundError
from tests.unit.catalog.support import FAR_FUTURE, publish

GOOD = {
    "dataset": "dancu.citizen",
    "agency": "ubnd-q1",
    "purpose": "Xác minh nơi cư trú khi giải quyết thủ tục",
    "legal_basis": "Luật Cư trú 2020, Điều 5",
    "fields": "citizen_id,unit,household_id",
    "expires": FAR_FUTURE,
}


@pytest.fixture
def catalogue(offline_settings: Settings, tmp_path: Path) -> Settings:
    publish(offline_settings, tmp_path, "dancu.citizen")
    add_agency(offline_settings, "ubnd-q1", "Ủy ban nhân dân Quận 1")
    return offline_settings


def test_add_list_and_revoke(catalogue: Settings) -> None:
    grant = add_grant(catalogue, **GOOD)
    assert grant.status() == "live"
    assert grant.fields == ["citizen_id", "unit", "household_id"]
    assert grant.allow_pii is False and grant.created_by == "lgsp-operator"
    assert [g.id for g in list_grants(catalogue, live_only=True)] == [grant.id]
    revoked, changed = revoke_grant(catalogue, grant.id, principal="auditor")
    assert changed and revoked.status() == "revoked" and revoked.revoked_by == "auditor"
    assert revoke_grant(catalogue, grant.id)[1] is False
    assert list_grants(catalogue, live_only=True) == []
    assert [g.status() for g in list_grants(catalogue)] == ["revoked"]
    with pytest.raises(NotFoundError, match="grant 999 does not exist"):
        revoke_grant(catalogue, 999)


@pytest.mark.parametrize(
    ("change", "expected", "kind"),
    [
        ({"dataset": "dancu.nope"}, "--dataset: dataset 'dancu.nope' is not in", NotFoundError),
        ({"fields": "citizen_id,shoe_size"}, "--fields: shoe_size not a field", ConfigurationError),
        ({"fields": " , "}, "--fields: expected", ConfigurationError),
        ({"expires": "2001-01-01"}, "--expires: 2001-01-01 is in the past", ConfigurationError),
        ({"expires": "next year"}, "--expires: expected a date", ConfigurationError),
        ({"purpose": "   "}, "--purpose: expected the purpose", ConfigurationError),
        ({"legal_basis": ""}, "--legal-basis: expected the legal basis", ConfigurationError),
        ({"agency": "ubnd-q99"}, "--to: agency 'ubnd-q99' is not in the catalogue", NotFoundError),
    ],
)
def test_bad_grant_input_is_refused_and_nothing_stored(
    catalogue: Settings, change: dict, expected: str, kind: type[Exception]
) -> None:
    with pytest.raises(kind, match=expected):
        add_grant(catalogue, **(GOOD | change))
    assert list_grants(catalogue) == []


def test_all_problems_are_named_together(catalogue: Settings) -> None:
    with pytest.raises(NotFoundError) as err:
        add_grant(
            catalogue,
            **(GOOD | {"agency": "x-y", "purpose": "", "legal_basis": "", "expires": "2000-01-01"}),
        )
    for part in ("--purpose", "--legal-basis", "--expires", "--to"):
        assert part in str(err.value)
    assert list_grants(catalogue) == []


def test_expiry_today_is_still_live(catalogue: Settings) -> None:
    grant = add_grant(catalogue, **(GOOD | {"expires": today_vn().isoformat()}))
    assert grant.status() == "live"
    assert grant.status(today_vn() + dt.timedelta(days=1)) == "expired"


def test_one_live_grant_per_agency_and_dataset(catalogue: Settings) -> None:
    first = add_grant(catalogue, **GOOD)
    with pytest.raises(ConfigurationError, match=f"already holds live grant {first.id}"):
        add_grant(catalogue, **(GOOD | {"purpose": "another purpose"}))
    revoke_grant(catalogue, first.id)
    second = add_grant(catalogue, **(GOOD | {"purpose": "another purpose"}))
    assert second.id != first.id


def test_live_grant_refusals_say_why(catalogue: Settings) -> None:
    with pytest.raises(AccessDeniedError, match="ubnd-q1 holds no grant for dataset dancu"):
        live_grant(catalogue, agency="ubnd-q1", dataset="dancu.citizen")
    with pytest.raises(AccessDeniedError, match="not in the catalogue"):
        live_grant(catalogue, agency="ubnd-q77", dataset="dancu.citizen")
    grant = add_grant(catalogue, **GOOD)
    view = live_grant(catalogue, agency="ubnd-q1", dataset="dancu.citizen")
    assert view.id == grant.id and view.pii_fields == {"citizen_id", "full_name", "birth_date"}
    assert view.consumer_group == "lgsp.grant.ubnd-q1.dancu.citizen"
    assert len(view.token_key) >= 16 and "token_key" not in repr(view)
    # the purpose must be the grant's (case, accents and spacing aside)
    live_grant(catalogue, grant_id=grant.id, purpose="xac minh noi cu tru  khi giai quyet thu tuc")
    with pytest.raises(AccessDeniedError, match="allows the purpose"):
        live_grant(catalogue, grant_id=grant.id, purpose="marketing")
    with pytest.raises(AccessDeniedError, match="belongs to agency ubnd-q1"):
        live_grant(catalogue, grant_id=grant.id, agency="ubnd-q2")
    with session_scope(catalogue) as s:
        s.get(Grant, grant.id).expires = today_vn() - dt.timedelta(days=1)
    with pytest.raises(AccessDeniedError, match=f"grant {grant.id} .* expired on"):
        live_grant(catalogue, agency="ubnd-q1", dataset="dancu.citizen")
    with session_scope(catalogue) as s:
        s.get(Grant, grant.id).expires = dt.date(2099, 1, 1)
    revoke_grant(catalogue, grant.id)
    with pytest.raises(AccessDeniedError, match=f"grant {grant.id} .* was revoked on"):
        live_grant(catalogue, grant_id=grant.id)


def test_agency_names_are_checked(offline_settings: Settings) -> None:
    with pytest.raises(ConfigurationError, match="agency 'UBND Q1'"):
        add_agency(offline_settings, "UBND Q1", "x")
    with pytest.raises(ConfigurationError, match="--display"):
        add_agency(offline_settings, "ubnd-q1", "  ")
    assert add_agency(offline_settings, "ubnd-q1", "A")[1] is True
    info, created = add_agency(offline_settings, "ubnd-q1", "Ủy ban nhân dân Quận 1")
    assert not created and info.display == "Ủy ban nhân dân Quận 1"
