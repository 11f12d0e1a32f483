"""The cursor-polling hole: rows that become visible after a poll with a cursor value at or
below the last one read. Without a lookback they are lost (asserted, as documentation of the
limit); with one they are published, once, and the window's rows are not published again."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.consume import Consumer
from bus.errors import LgspError
from bus.sync import run
from conftest import MYSQL_URL, PG_URL
from connectors.registration import register
from tests.integration.connectors.helpers import config, drop_tables

pytestmark = pytest.mark.integration

URLS = {"postgresql": PG_URL, "mariadb": MYSQL_URL}


class Source:
    """A source table ``(id, note, changed)`` and a source connector on it."""

    def __init__(
        self, settings: Settings, url: str, unique: str, *, lookback: Any, changed: Any
    ) -> None:
        self.settings, self.url = settings, url
        kind = url.split(":")[0].split("+")[0]
        self.name, self.table_name = f"poll-{unique}", f"poll_{unique}"
        self.table = sa.Table(
            self.table_name,
            sa.MetaData(),
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("note", sa.String(20), nullable=False),
            sa.Column("changed", changed, nullable=False),
        )
        self.engine = sa.create_engine(self.url)
        self.table.create(self.engine)
        entry: dict[str, Any] = {
            "table": self.table_name,
            "dataset": f"poll.x{unique}",
            "cursor": "changed",
        }
        if lookback is not None:
            entry["lookback"] = lookback
        register(settings, config(kind, "source", self.url, [entry], name=self.name))
        self.topic = ConnectorStore(settings).get(self.name).topics[self.table_name]

    def insert(self, conn: sa.Connection, row_id: int, changed: Any) -> None:
        conn.execute(self.table.insert().values(id=row_id, note=f"n{row_id}", changed=changed))

    def run(self) -> int:
        return run(self.settings, self.name).rows

    def published_ids(self) -> list[int]:
        out: list[Any] = []
        with Consumer(self.settings, None) as consumer:  # type: ignore[arg-type]
            consumer.run_bounded([self.topic], out.extend, from_beginning=True, commit=False)
        return sorted(int(m.value["after"]["id"]) for m in out)

    def close(self) -> None:
        self.engine.dispose()
        drop_tables(self.url, [self.table_name])


@pytest.fixture
def source_factory(settings: Settings, unique: str, tmp_path: Path) -> Iterator[Any]:
    made: list[Source] = []

    def make(kind: str, lookback: Any, changed: Any) -> Source:
        url = f"sqlite:///{tmp_path}/poll.db" if kind == "sqlite" else URLS[kind]
        src = Source(settings, url, f"{unique}{len(made)}", lookback=lookback, changed=changed)
        made.append(src)
        return src

    yield make
    for src in made:
        src.close()


T0 = dt.datetime(2025, 7, 1, 8, 0, 0)


def _late_commit(src: Source) -> tuple[int, int]:
    """Row 1 read; row 2 stamped T0+1s in a transaction that stays open while row 3
    (T0+2s) commits and a poll reads it; then row 2 commits. The rows each later poll read."""
    with src.engine.begin() as conn:
        src.insert(conn, 1, T0)
    assert src.run() == 1
    late = src.engine.connect()
    try:
        late.begin()
        src.insert(late, 2, T0 + dt.timedelta(seconds=1))  # stamped, not yet committed
        with src.engine.begin() as conn:
            src.insert(conn, 3, T0 + dt.timedelta(seconds=2))
        assert src.run() == 1  # row 3; row 2 is not visible yet
        late.commit()
    finally:
        late.close()
    return src.run(), src.run()


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_late_commit_lost_without_lookback(source_factory: Any, kind: str) -> None:
    src = source_factory(kind, 0, sa.DateTime)
    assert _late_commit(src) == (0, 0)
    assert src.published_ids() == [1, 3]  # row 2 is never read: the hole a lookback closes


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_late_commit_captured_with_lookback(source_factory: Any, kind: str) -> None:
    src = source_factory(kind, None, sa.DateTime)  # the dialect's default lookback
    assert _late_commit(src) == (1, 0)
    assert src.published_ids() == [1, 2, 3]  # row 2 once, nothing else again


def test_late_commit_with_transaction_time_stamps_on_postgresql(source_factory: Any) -> None:
    """``now()`` is the transaction's start: the later-committing transaction, begun first,
    carries the earlier stamp (no stamp written by the test)."""
    src = source_factory("postgresql", "1m", sa.DateTime(timezone=True))
    late = src.engine.connect()
    try:
        late.begin()
        late.execute(src.table.insert().values(id=1, note="late", changed=sa.func.now()))
        with src.engine.begin() as conn:
            conn.execute(src.table.insert().values(id=2, note="early", changed=sa.func.now()))
        assert src.run() == 1
        late.commit()
    finally:
        late.close()
    assert src.run() == 1
    assert src.run() == 0
    assert src.published_ids() == [1, 2]


@pytest.mark.parametrize(
    ("kind", "lookback", "reads"),
    [("mariadb", 0, 0), ("mariadb", None, 1), ("sqlite", None, 1)],
    ids=["mariadb-none", "mariadb-default", "sqlite-default"],
)
def test_same_second_lower_key(source_factory: Any, kind: str, lookback: Any, reads: int) -> None:
    """MariaDB ``DATETIME`` keeps whole seconds: a row of the same second with a lower key,
    committed after the poll, sorts before the position (SQLite: the stored text)."""
    src = source_factory(kind, lookback, sa.DateTime)
    with src.engine.begin() as conn:
        src.insert(conn, 5, T0)
    assert src.run() == 1
    with src.engine.begin() as conn:
        src.insert(conn, 3, T0)
    assert src.run() == reads
    assert src.run() == 0
    assert src.published_ids() == ([3, 5] if reads else [5])


def test_numeric_cursor_refuses_a_lookback(settings: Settings, unique: str) -> None:
    name = f"seq_{unique}"
    engine = sa.create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, version bigint NOT NULL)"))
    engine.dispose()
    entry = {"table": name, "dataset": f"poll.s{unique}", "cursor": "version", "lookback": "5m"}
    try:
        with pytest.raises(LgspError, match="lookback: cursor column 'version' is a number"):
            register(settings, config("postgresql", "source", PG_URL, [entry], name=f"s-{unique}"))
        del entry["lookback"]  # accepted without, with a warning about the limit
        done = register(
            settings, config("postgresql", "source", PG_URL, [entry], name=f"s-{unique}")
        )
        assert any("is a number" in w for w in done.warnings)
    finally:
        drop_tables(PG_URL, [name])
