"""Keys that differ only by letter case, Vietnamese tone marks, a trailing space, full-width
digits or Unicode normalisation (NFC and NFD spellings of one name) stay distinct through every
SQL sink dialect: N distinct source keys give N sink rows with the same bytes, and
``reconcile`` agrees, then reports removed rows. A MariaDB target whose key column merges such
keys is refused at registration, naming the column.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus import sync
from bus.config import Settings
from bus.connector_service.registration import register
from bus.envelope import make_event
from bus.errors import DataError
from bus.publish import event_key
from bus.reconcile.core import Endpoint, Options, reconcile
from bus.reconcile.service import run_reconcile
from bus.serde.jsoncodec import JsonToAvro
from conftest import MYSQL_URL, PG_URL
from connectors.errors import ConnectorConfigError
from tests.helpers import drop_tables, read_rows
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

KEYS = [
    "Hà Nội",
    "Ha Noi",
    "Hả Nội",  # another tone mark on the same letters
    "HS-001",
    "hs-001",
    "x",
    "x ",
    "１２３",  # full-width digits
    "123",
    unicodedata.normalize("NFC", "Quận 1"),
    unicodedata.normalize("NFD", "Quận 1"),  # the same name decomposed: another key
]
NFD = len(KEYS) - 1

SINKS = [("postgresql", PG_URL), ("mariadb", MYSQL_URL), ("sqlite", None)]


def _source(path: Path) -> str:
    url = f"sqlite:///{path}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE places (ma TEXT PRIMARY KEY, n INTEGER NOT NULL)"))
        conn.execute(
            sa.text("INSERT INTO places (ma, n) VALUES (:ma, :n)"),
            [{"ma": k, "n": i} for i, k in enumerate(KEYS)],
        )
    engine.dispose()
    return url


def _rows(url: str, table: str) -> dict[bytes, int]:
    rows = [(r["ma"], r["n"]) for r in read_rows(url, table, ["ma", "n"])]
    return {(ma if isinstance(ma, bytes) else ma.encode("utf-8")): n for ma, n in rows}


@pytest.fixture
def sink_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield request.param or f"sqlite:///{tmp_path / 'sink.db'}"


@pytest.mark.parametrize(
    ("kind", "sink_url"), SINKS, ids=[k for k, _ in SINKS], indirect=["sink_url"]
)
def test_distinct_keys_stay_distinct_and_reconcile_agrees(
    settings: Settings, tmp_path: Path, unique: str, kind: str, sink_url: str
) -> None:
    src_url = _source(tmp_path / "src.db")
    target = f"keys_dst_{unique}"
    dataset = f"kho.k{unique}"
    source, sink = f"ks{unique}", f"kd{unique}"
    try:
        register(
            settings,
            config(
                "sqlite", "source", src_url, [{"table": "places", "dataset": dataset}], name=source
            ),
        )
        register(
            settings,
            config(kind, "sink", sink_url, [{"table": target, "dataset": dataset}], name=sink),
        )
        assert sync.run(settings, source).rows == len(KEYS)
        report = sync.run(settings, sink)
        assert (report.status, report.rows, report.dlq) == ("ok", len(KEYS), 0)
        stored = _rows(sink_url, target)
        by_key = {k.encode("utf-8"): i for i, k in enumerate(KEYS)}
        assert stored == by_key  # every key's bytes, every row its own value

        first = run_reconcile(settings, source, "places", sink)
        assert first.agree, first.to_dict()
        assert first.source.rows == first.target.rows == len(KEYS)

        engine = sa.create_engine(sink_url)
        with engine.begin() as conn:  # one of two colliding pairs removed behind the bus's back
            t = sa.Table(target, sa.MetaData(), autoload_with=conn)
            gone = conn.execute(sa.delete(t).where(t.c.n.in_([KEYS.index("hs-001"), NFD])))
            assert gone.rowcount == 2
        engine.dispose()
        second = run_reconcile(settings, source, "places", sink)
        assert not second.agree
        assert second.target.rows == len(KEYS) - 2
        assert second.to_dict()["counts"]["missing"] == 2, second.to_dict()
    finally:
        if kind != "sqlite":
            drop_tables(sink_url, [target])


@pytest.mark.parametrize(
    ("collation", "merged"),
    [("utf8mb4_general_ci", "letter case"), ("utf8mb4_bin", "trailing spaces")],
)
def test_a_mariadb_key_column_that_merges_keys_is_refused_at_registration(
    settings: Settings, unique: str, collation: str, merged: str
) -> None:
    target = f"ci_dst_{unique}"
    engine = sa.create_engine(MYSQL_URL)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {target} (ma VARCHAR(40) CHARACTER SET utf8mb4 "
                f"COLLATE {collation} PRIMARY KEY, n INT)"
            )
        )
    engine.dispose()
    try:
        tables: list[dict[str, Any]] = [{"table": target, "dataset": f"kho.c{unique}"}]
        with pytest.raises(ConnectorConfigError) as caught:
            register(settings, config("mariadb", "sink", MYSQL_URL, tables, name=f"c{unique}"))
        text = str(caught.value)
        assert "key column 'ma'" in text and collation in text and merged in text
    finally:
        drop_tables(MYSQL_URL, [target])


def test_a_created_mariadb_table_is_byte_exact_even_with_a_mariadb_url(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    """A ``mariadb://`` URL drops SQLAlchemy's ``mysql_*`` table options: the collation is
    set per column and read back from ``information_schema``."""
    src_url = _source(tmp_path / "src.db")
    target = f"mdb_dst_{unique}"
    dataset = f"kho.m{unique}"
    url = MYSQL_URL.replace("mysql+pymysql", "mariadb+pymysql")
    try:
        register(
            settings,
            config(
                "sqlite",
                "source",
                src_url,
                [{"table": "places", "dataset": dataset}],
                name=f"ms{unique}",
            ),
        )
        register(
            settings,
            config(
                "mariadb", "sink", url, [{"table": target, "dataset": dataset}], name=f"md{unique}"
            ),
        )
        sync.run(settings, f"ms{unique}")
        assert sync.run(settings, f"md{unique}").rows == len(KEYS)
        assert len(_rows(MYSQL_URL, target)) == len(KEYS)
        engine = sa.create_engine(MYSQL_URL)
        with engine.connect() as conn:
            found = dict(
                conn.execute(
                    sa.text(
                        "SELECT column_name, collation_name FROM information_schema.columns "
                        "WHERE table_schema = DATABASE() AND table_name = :t "
                        "AND collation_name IS NOT NULL"
                    ),
                    {"t": target},
                ).all()
            )
        engine.dispose()
        assert found["ma"] == "utf8mb4_nopad_bin"
        assert set(found.values()) == {"utf8mb4_nopad_bin"}
    finally:
        drop_tables(MYSQL_URL, [target])


# ---- reconcile compares keys byte-exactly, whatever the tables' collations --------------

QUAN = unicodedata.normalize("NFC", "Quận 1")
QUAN_NFD = unicodedata.normalize("NFD", "Quận 1")


def _table(
    url: str, name: str, rows: list[tuple[str, str]], key: str = "VARCHAR(40)", value: str = "TEXT"
) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (ma {key} PRIMARY KEY, v {value})"))
        conn.execute(
            sa.text(f"INSERT INTO {name} (ma, v) VALUES (:ma, :v)"),  # noqa: S608
            [{"ma": ma, "v": v} for ma, v in rows],
        )
    engine.dispose()


@pytest.mark.parametrize("nfc_in_db", [False, True], ids=["plain", "nfc-in-db"])
@pytest.mark.parametrize("target", ["postgresql", "sqlite"])
def test_a_key_in_nfd_on_one_side_and_nfc_on_the_other_is_a_difference(
    tmp_path: Path, unique: str, target: str, nfc_in_db: bool
) -> None:
    """The same name, NFD in the source and NFC in the copy, is two keys: reconcile reports
    one missing and one extra, also when it normalises text in SQL (``nfc_in_db``), where
    the key's hash and the row's hash would otherwise be equal on both sides."""
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    tgt_url = PG_URL if target == "postgresql" else f"sqlite:///{tmp_path / 'tgt.db'}"
    name = f"nfd_{unique}"
    _table(src_url, name, [("a", "một"), (QUAN_NFD, "hai"), ("b", QUAN_NFD)])
    _table(tgt_url, name, [("a", "một"), (QUAN, "hai"), ("b", QUAN)])  # values: NFC is equal
    try:
        report = reconcile(
            Endpoint(src_url, name),
            Endpoint(tgt_url, name),
            Options(nfc_in_db=nfc_in_db, recheck=False),
        )
        assert not report.agree
        assert report.to_dict()["counts"] == {"missing": 1, "extra": 1, "different": 0}
    finally:
        if target == "postgresql":
            drop_tables(PG_URL, [name])


@pytest.fixture
def ci_target(request: pytest.FixtureRequest, unique: str) -> Iterator[tuple[str, str]]:
    """A target whose key and text columns ignore letter case: a MariaDB table with
    ``utf8mb4_general_ci`` (as tables made before the sink's check were), or a PostgreSQL
    table with a nondeterministic ICU collation; (url, text type)."""
    if request.param == "mariadb":
        yield MYSQL_URL, "VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        return
    collation = f"ci_{unique}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE COLLATION {collation} (provider = icu, "
                "locale = 'und-u-ks-level2', deterministic = false)"
            )
        )
    try:
        yield PG_URL, f'TEXT COLLATE "{collation}"'
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP COLLATION IF EXISTS {collation}"))
        engine.dispose()


@pytest.mark.parametrize("ci_target", ["mariadb", "postgresql"], indirect=True)
def test_reconcile_sees_what_a_case_insensitive_target_merged(
    unique: str, ci_target: tuple[str, str]
) -> None:
    """The copy merged ``HS-001``/``hs-001`` (its key ignores case): reconcile reports the
    lost key and the overwritten row; keys are matched byte-exactly in Python, never by the
    target's collation."""
    tgt_url, text_type = ci_target
    name = f"ci_{unique}"
    _table(PG_URL, f"src_{name}", [("HS-001", "Hà Nội"), ("hs-001", "b"), ("x", "c")])
    _table(tgt_url, name, [("HS-001", "b"), ("x", "c")], text_type, text_type)
    try:
        report = reconcile(
            Endpoint(PG_URL, f"src_{name}"), Endpoint(tgt_url, name), Options(recheck=False)
        )
        assert not report.agree
        # HS-001 holds hs-001's value, hs-001 is gone
        assert report.to_dict()["counts"] == {"missing": 1, "extra": 0, "different": 1}
    finally:
        drop_tables(tgt_url, [name])
        drop_tables(PG_URL, [f"src_{name}"])


@pytest.mark.parametrize("ci_target", ["postgresql"], indirect=True)
def test_case_blind_collations_on_both_sides_hide_no_case_difference(
    unique: str, ci_target: tuple[str, str]
) -> None:
    """Both PostgreSQL tables keep text under a nondeterministic (case-blind) collation;
    PostgreSQL's native hashes hash text by its collation, so ``Quận``/``quận`` and
    ``HS-001``/``hs-001`` hashed alike: text is hashed under ``"C"``, and the differences
    are reported."""
    _, text_type = ci_target
    name = f"cb_{unique}"
    _table(PG_URL, f"src_{name}", [("HS-001", "Quận"), ("k", "a")], text_type, text_type)
    _table(PG_URL, name, [("hs-001", "Quận"), ("k", "A")], text_type, text_type)
    try:
        report = reconcile(
            Endpoint(PG_URL, f"src_{name}"), Endpoint(PG_URL, name), Options(recheck=False)
        )
        assert report.stats.hash == "native-record"
        assert not report.agree
        assert report.to_dict()["counts"] == {"missing": 1, "extra": 1, "different": 1}
    finally:
        drop_tables(PG_URL, [name, f"src_{name}"])


def test_published_records_keep_key_text_exact_and_refuse_text_that_is_not_utf8() -> None:
    """``lgsp publish``, the HTTP source and a catalogued SQL source convert through
    ``JsonToAvro``: key fields keep their bytes (NFD stays NFD: its own key, partition and
    event id), other text becomes NFC, and a lone surrogate (JSON ``"\\udc80"``) is refused
    naming the field."""
    schema = {
        "type": "record",
        "name": "Place",
        "namespace": "kho",
        "primary_key": ["ma"],
        "fields": [{"name": "ma", "type": "string"}, {"name": "ten", "type": "string"}],
    }
    convert = JsonToAvro(schema)
    record = convert({"ma": QUAN_NFD, "ten": QUAN_NFD})
    assert record == {"ma": QUAN_NFD, "ten": QUAN}
    nfd = make_event(op="c", key={"ma": record["ma"]}, source={}, ts_ms=1, after=record)
    nfc = make_event(op="c", key={"ma": QUAN}, source={}, ts_ms=1, after=record)
    assert event_key(nfd) == b'{"ma":"%s"}' % QUAN_NFD.encode() != event_key(nfc)
    assert nfd["event_id"] != nfc["event_id"]
    assert (
        make_event(op="c", key={"ma": QUAN_NFD}, source={}, ts_ms=1)["event_id"]
        == (nfd["event_id"])
    )
    with pytest.raises(DataError, match=r"^ten: text that is not valid UTF-8"):
        convert({"ma": "a", "ten": "x\udc80"})


@pytest.mark.parametrize("ci_target", ["postgresql"], indirect=True)
@pytest.mark.parametrize("text_type", ["collation", "citext"])
def test_a_postgresql_key_column_that_merges_keys_is_refused_at_registration(
    settings: Settings, unique: str, ci_target: tuple[str, str], text_type: str
) -> None:
    """An existing PostgreSQL target whose key is under a case-blind (nondeterministic)
    collation, or is ``citext``, merges ``HS-001`` into ``hs-001``: refused like a MariaDB
    one (found by review: both sink runs said ok and one row was left)."""
    _, ci_type = ci_target
    target = f"ci_pg_{unique}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        if text_type == "citext":
            conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS citext"))
        column = "CITEXT" if text_type == "citext" else ci_type
        conn.execute(sa.text(f"CREATE TABLE {target} (ma {column} PRIMARY KEY, n INT)"))
    engine.dispose()
    try:
        tables: list[dict[str, Any]] = [{"table": target, "dataset": f"kho.p{unique}"}]
        with pytest.raises(ConnectorConfigError) as caught:
            register(settings, config("postgresql", "sink", PG_URL, tables, name=f"p{unique}"))
        text = str(caught.value)
        assert "key column 'ma'" in text and "letter case" in text, text
    finally:
        drop_tables(PG_URL, [target])
