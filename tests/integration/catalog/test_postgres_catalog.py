"""The catalogue's tables and queries on a PostgreSQL control database (own schema per test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from bus.catalog import (
    add_agency,
    add_grant,
    check_attribute_ownership,
    get_dataset,
    list_grants,
    live_grant,
    query_access,
    record_access,
    revoke_grant,
)
from bus.catalog.datasets import PublishResult
from bus.config import Settings
from bus.db.engine import dispose_engines
from bus.errors import ConfigurationError
from tests.unit.catalog.support import FAR_FUTURE, publish
from tests.unit.catalog.test_publish_failures import race

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_settings(pg_url: str, home: Path, unique: str) -> Iterator[Settings]:
    schema = f"lgsp_catalog_{unique}"
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    url = f"{pg_url}{sep}options=-csearch_path%3D{schema}"
    try:
        yield Settings(home=home, database_url=SecretStr(url))
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_catalogue_on_postgresql(pg_settings: Settings, tmp_path: Path) -> None:
    publish(pg_settings, tmp_path, "dancu.citizen")
    info = get_dataset(pg_settings, "dancu.citizen")
    assert info.pii == ["citizen_id", "full_name", "birth_date"]
    assert info.created_at.tzinfo is not None
    assert [f.field for f in check_attribute_ownership(pg_settings, "x.y", ["ngay_sinh"])] == [
        "ngay_sinh"
    ]
    add_agency(pg_settings, "ubnd-q1", "Ủy ban nhân dân Quận 1")
    grant = add_grant(
        pg_settings,
        dataset="dancu.citizen",
        agency="ubnd-q1",
        purpose="xác minh",
        legal_basis="Luật Cư trú 2020",
        fields="citizen_id,unit",
        expires=FAR_FUTURE,
    )
    assert live_grant(pg_settings, agency="ubnd-q1", dataset="dancu.citizen").id == grant.id
    revoke_grant(pg_settings, grant.id)
    assert [g.status() for g in list_grants(pg_settings)] == ["revoked"]
    record_access(
        pg_settings,
        principal="auditor",
        agency="thanh-tra-tp",
        dataset="dancu.citizen",
        purpose="thanh tra",
        records=3,
        action="replay",
        detail={"topics": ["lgsp.79.dancu.citizen"]},
    )
    entries = query_access(pg_settings, since="2000-01-01")
    assert [(e.action, e.records, e.detail) for e in entries] == [
        ("replay", 3, {"topics": ["lgsp.79.dancu.citizen"]})
    ]


def test_racing_publishes_on_postgresql(pg_settings: Settings, tmp_path: Path) -> None:
    """Concurrent inserts of one dataset (and its agency) meet on PostgreSQL's unique keys:
    the loser publishes again as an update, or is refused when another agency won."""
    for n in range(3):
        name = f"dancu.race{n}"
        results = race(pg_settings, tmp_path, ["cong-an-tp", "cong-an-tp", "ubnd-q1"], name)
        owner = get_dataset(pg_settings, name).publisher
        for result in results:
            if isinstance(result, PublishResult):
                assert result.publisher == owner
            else:
                assert isinstance(result, ConfigurationError), repr(result)
                assert f"already published by {owner}" in str(result)
        assert sum(isinstance(r, PublishResult) for r in results) == (
            2 if owner == "cong-an-tp" else 1
        )
