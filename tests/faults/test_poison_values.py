"""Poison values per dialect pair: a value the target cannot store goes to the DLQ with a
reason naming the column (never the value), a value the record schema cannot represent is
parked from the source the same way, every other row arrives with every column intact, and a
rerun is not blocked. The mapping is README's table "Values a target cannot store"."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus import sync
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.dlq_ops import list_dead_letters
from conftest import MYSQL_URL, PG_URL
from connectors.plugins import build
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config

pytestmark = pytest.mark.integration

HUGE = "Nguyễn " * 20_000  # 140,000 characters: more than a MariaDB TEXT holds
INF = float("inf")


def _pg_source(table: str) -> dict[int, dict[str, Any]]:
    """A PostgreSQL table with doubles, numerics, dates and text, some poison; the rows."""
    rows: dict[int, dict[str, Any]] = {
        1: {"x": 1.5, "n": "12.30", "d": "2024-01-02", "t": "Hà Nội"},
        2: {"x": "NaN", "n": "1.00", "d": "2024-01-03", "t": "a"},
        3: {"x": "Infinity", "n": "2.00", "d": "2024-01-04", "t": "b"},
        4: {"x": "-Infinity", "n": "3.00", "d": "2024-01-05", "t": "c"},
        5: {"x": 2.5, "n": "NaN", "d": "2024-01-06", "t": "d"},  # refused at the source
        6: {"x": 3.5, "n": "4.00", "d": "infinity", "t": "e"},  # refused at the source
        7: {"x": 4.5, "n": "5.00", "d": "2024-01-08", "t": HUGE},
        8: {"x": -0.25, "n": "-6.10", "d": "0001-01-01", "t": "\U0001f600 ok"},
    }
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (id int PRIMARY KEY, x double precision, "
                "n numeric(10,2), d date, t text)"
            )
        )
        conn.execute(
            sa.text(
                f"INSERT INTO {table} VALUES (:id, CAST(:x AS double precision), "  # noqa: S608
                "CAST(:n AS numeric), CAST(:d AS date), :t)"
            ),
            [{"id": i, **{k: str(v) for k, v in r.items()}} for i, r in rows.items()],
        )
    engine.dispose()
    return rows


def _sink_rows(url: str, table: str) -> dict[int, dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            cols = [c for c in t.c if not c.name.startswith("_lgsp_")]
            return {r.id: r._asdict() for r in conn.execute(sa.select(*cols))}
    finally:
        engine.dispose()


def _same(stored: dict[str, Any], source: dict[str, Any]) -> None:
    x = float(source["x"])
    assert stored["x"] == x or (math.isnan(x) and math.isnan(stored["x"]))
    assert decimal.Decimal(str(stored["n"])) == decimal.Decimal(source["n"])
    d = stored["d"]
    assert (d if isinstance(d, dt.date) else dt.date.fromisoformat(d)).isoformat() == source["d"]
    assert stored["t"] == source["t"]


def _reasons(settings: Settings, topic: str, stage: str) -> list[str]:
    return sorted(e.error for e in list_dead_letters(settings, topic) if e.stage == stage)


@pytest.fixture
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    kind = request.param
    url = {"postgresql": PG_URL, "mariadb": MYSQL_URL}.get(kind, f"sqlite:///{tmp_path}/s.db")
    yield kind, url


# sink dialect -> (ids of rows it refuses, the words of its reason)
REFUSED = {
    "postgresql": ({}, ""),
    "mariadb": ({2: "NaN", 3: "Infinity", 4: "Infinity"}, "MariaDB/MySQL"),
    "sqlite": ({2: "NaN"}, "SQLite"),
}


@pytest.mark.parametrize("sink", list(REFUSED), indirect=True)
def test_postgresql_poison_values_park_alone_and_the_rest_arrives(
    settings: Settings, unique: str, sink: tuple[str, str]
) -> None:
    kind, sink_url = sink
    src, dst = f"poison_src_{unique}", f"poison_dst_{unique}"
    rows = _pg_source(src)
    dataset = f"kho.p{unique}"
    source, target = f"ps{unique}", f"pd{unique}"
    try:
        register(
            settings,
            config(
                "postgresql", "source", PG_URL, [{"table": src, "dataset": dataset}], name=source
            ),
        )
        register(
            settings,
            config(kind, "sink", sink_url, [{"table": dst, "dataset": dataset}], name=target),
        )
        first = sync.run(settings, source)
        assert (first.status, first.rows, first.dlq) == ("ok", 8, 2)
        topic = ConnectorStore(settings).get(source).topics[src]
        assert _reasons(settings, topic, "source") == [
            f"table {src!r}, column 'd': a date outside the years 1 to 9999 (infinity, BC), "
            "which Avro dates cannot hold",
            f"table {src!r}, column 'n': NaN or Infinity, which an Avro decimal cannot hold",
        ]

        refused, words = REFUSED[kind]
        report = sync.run(settings, target)
        assert (report.status, report.rows, report.dlq) == ("ok", 6 - len(refused), len(refused))
        reasons = _reasons(settings, topic, "sink")
        assert len(reasons) == len(refused)
        for reason, problem in zip(reasons, sorted(refused.values()), strict=True):
            assert f"column 'x': {problem} cannot be stored in" in reason and words in reason
        stored = _sink_rows(sink_url, dst)
        assert set(stored) == {1, 2, 3, 4, 7, 8} - set(refused)
        for i, row in stored.items():
            _same(row, rows[i])

        again = sync.run(settings, target)  # nothing blocks a rerun
        assert (again.status, again.dlq) == ("ok", 0)
        assert sync.run(settings, source).status == "ok"
    finally:
        drop_tables(PG_URL, [src] + ([dst] if kind == "postgresql" else []))
        if kind == "mariadb":
            drop_tables(MYSQL_URL, [dst])


def test_mariadb_zero_dates_and_nul_text_into_postgresql(settings: Settings, unique: str) -> None:
    """A MariaDB zero date is refused at the source; text with a NUL character, which MariaDB
    holds, is refused by the PostgreSQL sink; both name their column."""
    src, dst = f"zero_src_{unique}", f"zero_dst_{unique}"
    engine = sa.create_engine(MYSQL_URL)
    with engine.begin() as conn:
        conn.execute(sa.text("SET SESSION sql_mode = ''"))  # as a legacy server allows
        conn.execute(sa.text(f"CREATE TABLE {src} (id INT PRIMARY KEY, d DATE, t TEXT)"))
        conn.execute(
            sa.text(f"INSERT INTO {src} VALUES (:id, :d, :t)"),  # noqa: S608
            [
                {"id": 1, "d": "2024-01-02", "t": "một"},
                {"id": 2, "d": "0000-00-00", "t": "hai"},
                {"id": 3, "d": "2024-00-10", "t": "ba"},
                {"id": 4, "d": "2024-01-05", "t": "bốn\x00năm"},
                {"id": 5, "d": None, "t": "sáu"},
            ],
        )
    engine.dispose()
    dataset = f"kho.z{unique}"
    try:
        register(
            settings,
            config(
                "mariadb",
                "source",
                MYSQL_URL,
                [{"table": src, "dataset": dataset}],
                name=f"zs{unique}",
            ),
        )
        register(
            settings,
            config(
                "postgresql",
                "sink",
                PG_URL,
                [{"table": dst, "dataset": dataset}],
                name=f"zd{unique}",
            ),
        )
        first = sync.run(settings, f"zs{unique}")
        assert (first.status, first.rows, first.dlq) == ("ok", 5, 2)
        topic = ConnectorStore(settings).get(f"zs{unique}").topics[src]
        zero = f"table {src!r}, column 'd': a zero or invalid date"
        assert [r[: len(zero)] for r in _reasons(settings, topic, "source")] == [zero, zero]
        report = sync.run(settings, f"zd{unique}")
        assert (report.status, report.rows, report.dlq) == ("ok", 2, 1)
        [reason] = _reasons(settings, topic, "sink")
        assert "column 't': text with a NUL character" in reason and "bốn" not in reason
        stored = _sink_rows(PG_URL, dst)
        assert stored == {
            1: {"id": 1, "d": dt.date(2024, 1, 2), "t": "một"},
            5: {"id": 5, "d": None, "t": "sáu"},
        }
        assert sync.run(settings, f"zd{unique}").status == "ok"
    finally:
        drop_tables(MYSQL_URL, [src])
        drop_tables(PG_URL, [dst])


RECORD: dict[str, Any] = {
    "type": "record",
    "name": "Amount",
    "namespace": "kho",
    "primary_key": ["id"],
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "code", "type": ["null", "string"], "default": None},
        {
            "name": "amount",
            "type": [
                "null",
                {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            ],
            "default": None,
        },
    ],
}


def _event(i: int, code: str, amount: str) -> dict[str, Any]:
    return {
        "event_id": f"e{i}",
        "op": "u",
        "ts_ms": 1000,
        "source": {},
        "key": f'{{"id":{i}}}',
        "before": None,
        "after": {"id": i, "code": code, "amount": decimal.Decimal(amount)},
    }


@pytest.mark.parametrize("url", [PG_URL, MYSQL_URL], ids=["postgresql", "mariadb"])
def test_out_of_range_decimals_and_too_long_text_name_their_column(url: str, unique: str) -> None:
    from connectors.base import Batch

    target = f"narrow_{unique}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # an existing target narrower than the dataset
        sa.Table(
            target,
            sa.MetaData(),
            sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("code", sa.String(5)),
            sa.Column("amount", sa.Numeric(5, 2)),
        ).create(conn)
    engine.dispose()
    kind = "postgresql" if url == PG_URL else "mariadb"
    connector = build(config(kind, "sink", url, [{"table": target, "dataset": "kho.amount"}]))
    try:
        connector.prepare(target, RECORD)
        report = connector.write(
            Batch(
                target,
                [
                    _event(1, "ok", "999.99"),
                    _event(2, "ok", "1000.00"),
                    _event(3, "toolong", "1.00"),
                    _event(4, "ok", "-12.5"),
                ],
            )
        )
        assert (report.applied, [r.index for r in report.rejected]) == (2, [1, 2])
        first, second = (str(r.error) for r in report.rejected)
        assert "column 'amount': number out of range for NUMERIC(5, 2)" in first
        assert "column 'code': text of 7 characters is longer than the column's 5" in second
    finally:
        connector.close()
        drop_tables(url, [target])


def test_sqlite_text_that_is_not_utf8_parks_its_row_alone(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    """SQLite stores any bytes as TEXT, and Python's sqlite3 fails the whole read on bytes
    that are not UTF-8: such a value (a value or a key) parks its row with a reason naming
    the column, and the read goes on; the next run resumes exactly after a bad key."""
    src_url = f"sqlite:///{tmp_path / 'src.db'}"
    engine = sa.create_engine(src_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE legacy (ma TEXT PRIMARY KEY, n INT NOT NULL, t TEXT)"))
        conn.execute(
            sa.text(
                "INSERT INTO legacy VALUES ('a', 1, 'một'), ('b', 2, CAST(X'C3' AS TEXT)), "
                "('c', 3, 'ba'), (CAST(X'6180' AS TEXT), 4, 'bốn')"
            )
        )
    engine.dispose()
    sink_url = f"sqlite:///{tmp_path / 'sink.db'}"
    dataset = f"kho.u{unique}"
    source, target = f"us{unique}", f"ud{unique}"
    table = {"table": "legacy", "dataset": dataset, "cursor": "n"}
    register(settings, config("sqlite", "source", src_url, [table], name=source))
    register(
        settings,
        config("sqlite", "sink", sink_url, [{"table": "copy", "dataset": dataset}], name=target),
    )
    first = sync.run(settings, source)
    assert (first.status, first.rows, first.dlq) == ("ok", 4, 2)
    topic = ConnectorStore(settings).get(source).topics["legacy"]
    reasons = _reasons(settings, topic, "source")
    assert reasons == [
        f"table 'legacy', column {c!r}: text that is not valid UTF-8, which Avro text cannot hold"
        for c in ("ma", "t")
    ]
    report = sync.run(settings, target)
    assert (report.status, report.rows, report.dlq) == ("ok", 2, 0)

    # the position is the bad key 'a\x80' (cursor 4); 'aé' (a, C3 A9), committed later with
    # the same cursor, sorts after its bytes but before its U+FFFD rendering (a, EF BF BD)
    engine = sa.create_engine(src_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO legacy VALUES ('aé', 4, 'năm'), ('z', 5, 'sáu')"))
    engine.dispose()
    assert sync.run(settings, source).status == "ok"
    assert sync.run(settings, target).status == "ok"
    assert _sink_rows_by_key(sink_url, "copy") == {
        "a": (1, "một"),
        "c": (3, "ba"),
        "aé": (4, "năm"),
        "z": (5, "sáu"),
    }


def _sink_rows_by_key(url: str, table: str) -> dict[str, tuple[int, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT ma, n, t FROM {table}")).all()  # noqa: S608
    finally:
        engine.dispose()
    return {ma: (n, t) for ma, n, t in rows}
