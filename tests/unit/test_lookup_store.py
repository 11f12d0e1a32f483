"""The lookup store's names and URL (no services)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from bus.config import LookupSettings, Settings
from bus.context import Context
from bus.errors import ConfigurationError
from bus.lookup.reader import Readers, StoreReader
from bus.lookup.store import StoreClashError, ensure_store, store_name, store_table, store_url
from tests.unit.catalog.support import publish


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


def test_a_dataset_whose_store_name_is_another_datasets_store_is_refused(
    home: Path, tmp_path: Path
) -> None:
    settings = Settings(home=home)
    publish(settings, tmp_path, "dancu.ho_khau", units=["79"])
    publish(settings, tmp_path, "dancu_ho.khau", units=["79"])
    assert store_name("dancu.ho_khau") == store_name("dancu_ho.khau")
    ctx = Context.build(settings)
    made = ensure_store(ctx, "dancu.ho_khau")
    assert made is not None and made.tables[0].dataset == "dancu.ho_khau"
    assert ensure_store(ctx, "dancu.ho_khau") is None
    with pytest.raises(StoreClashError, match="keeps the lookup store of dancu.ho_khau"):
        ensure_store(ctx, "dancu_ho.khau")  # it reused dancu.ho_khau's store
    with pytest.raises(StoreClashError):
        StoreReader(ctx, "dancu_ho.khau")  # it read dancu.ho_khau's records


def test_readers_build_one_reader_for_requests_arriving_together(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[str] = []

    class Slow:
        def __init__(self, ctx: Context, dataset: str) -> None:
            time.sleep(0.2)  # reflecting a table, reading the registry
            built.append(dataset)

        def close(self) -> None:
            pass

    monkeypatch.setattr("bus.lookup.reader.StoreReader", Slow)
    readers = Readers(Context.build(Settings(home=home)), ttl_s=60)
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda _: readers.get("dancu.resident"), range(8)))
    assert built == ["dancu.resident"] and len({id(r) for r in got}) == 1
    readers.ttl_s = 0  # stale: the next request builds a new one
    assert readers.get("dancu.resident") is not got[0] and len(built) == 2
