"""The lookup store's names and URL (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bus.config import LookupSettings, Settings
from bus.context import Context
from bus.errors import ConfigurationError
from bus.lookup.store import store_name, store_table, store_url


def test_names_of_a_dataset_store() -> None:
    assert store_name("dancu.resident") == "lookup-dancu-resident"
    assert store_name("tthc.ho_so_v2") == "lookup-tthc-ho-so-v2"
    assert store_table("tthc.ho_so_v2") == "lookup_tthc_ho_so_v2"


def test_the_store_url_defaults_to_the_control_database(home: Path) -> None:
    settings = Settings(home=home)
    assert store_url(Context.build(settings)) == settings.control_database_url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://lgsp:hunter22@db:5432/lookup", "password"),
        ("oracle://lgsp@db/lookup", "PostgreSQL, MariaDB/MySQL or SQLite"),
        ("not a url", "SQLAlchemy URL"),
    ],
)
def test_a_store_url_it_cannot_keep_is_refused_naming_lookup_url(
    home: Path, url: str, message: str
) -> None:
    settings = Settings(home=home, lookup=LookupSettings(url=SecretStr(url)))
    with pytest.raises(ConfigurationError, match=message) as caught:
        store_url(Context.build(settings))
    assert str(caught.value).startswith("lookup.url: ")
    assert "hunter22" not in str(caught.value)


def test_a_password_given_as_a_reference_is_kept_as_it_is(home: Path) -> None:
    url = "postgresql+psycopg://lgsp:${LOOKUP_DB_PASSWORD}@db:5432/lookup"
    settings = Settings(home=home, lookup=LookupSettings(url=SecretStr(url)))
    assert store_url(Context.build(settings)) == url
