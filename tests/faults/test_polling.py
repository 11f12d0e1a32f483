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
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.consume import Consumer
from bus.errors import LgspError
from bus.sync import run
from conftest import MYSQL_URL, PG_URL
from tests.helpers import drop_tables
from tests.integration.connectors.helpers import config

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


def test_hard_deletes_noted_at_add_and_closed_by_a_repairing_reconcile_dag(
    settings: Settings, cli_env: dict[str, str], unique: str, tmp_path: Path
) -> None:
    """Polling never sees a DELETE: ``connector add`` says so for a table without a
    soft-delete flag, and the reconcile DAG of a table with ``reconcile: repair`` publishes
    the delete, which the sink's next run applies."""
    import yaml
    from click.testing import CliRunner

    from bus.cli.main import cli
    from bus.orchestration import tasks
    from bus.orchestration.manifest import build_manifest
    from bus.orchestration.specs import dag_specs

    src_table, dst_table, dataset = f"hd_src_{unique}", f"hd_dst_{unique}", f"poll.h{unique}"
    engine = sa.create_engine(PG_URL)
    table = sa.Table(
        src_table,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("changed", sa.DateTime, nullable=False),
    )
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"id": i, "changed": T0} for i in (1, 2, 3)])
        entry = {"table": src_table, "dataset": dataset, "cursor": "changed"}
        source = config("postgresql", "source", PG_URL, [{**entry, "reconcile": "repair"}])
        source["name"] = f"hd-src-{unique}"
        sink = config("postgresql", "sink", PG_URL, [{"table": dst_table, "dataset": dataset}])
        sink["name"] = f"hd-dst-{unique}"
        for data in (source, sink):
            path = tmp_path / f"{data['name']}.yaml"
            path.write_text(yaml.safe_dump(data), encoding="utf-8")
            out = CliRunner().invoke(cli, ["connector", "add", str(path)])
            assert out.exit_code == 0, out.output
            noted = f"note: {src_table}: rows deleted from the table (DELETE) are invisible"
            assert (noted in out.output) == (data is source)
        assert run(settings, source["name"]).rows == 3
        run(settings, sink["name"])
        with engine.begin() as conn:
            conn.execute(table.delete().where(table.c.id == 2))
        assert run(settings, source["name"]).rows == 0  # the delete is not seen

        [spec] = [
            s
            for s in dag_specs(build_manifest(settings))
            if s.kind == "reconcile" and s.params["source"] == source["name"]
        ]
        assert spec.params["repair"] is True and "repair" in spec.tags
        result = tasks.reconcile(**spec.params)
        assert result["agree"] is False and result["repair"]["ops"] == {"c": 0, "u": 0, "d": 1}
        run(settings, sink["name"])
        with engine.connect() as conn:
            ids = conn.execute(sa.text(f"SELECT id FROM {dst_table} ORDER BY id")).scalars()  # noqa: S608
            assert list(ids) == [1, 3]
    finally:
        engine.dispose()
        drop_tables(PG_URL, [src_table, dst_table])


@pytest.mark.parametrize("lookback", [0, None])
def test_equal_rows_of_a_table_without_a_key_are_each_published(
    settings: Settings, unique: str, lookback: Any
) -> None:
    """A table without a key is an append-only log whose equal rows are each a record: the
    lookback window (on by default) must not take the second for the first, on the first
    read nor on a re-read of the window (found by review: 2 rows, 1 event, run ok)."""
    name, table_name = f"kl-{unique}", f"poll_kl_{unique}"
    table = sa.Table(
        table_name,
        sa.MetaData(),
        sa.Column("note", sa.String(20), nullable=False),
        sa.Column("changed", sa.DateTime, nullable=False),
    )
    engine = sa.create_engine(PG_URL)
    table.create(engine)
    t0 = dt.datetime(2025, 7, 1, 8)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [{"note": "same", "changed": t0}] * 2)
        entry: dict[str, Any] = {"table": table_name, "dataset": f"kl.x{unique}"}
        entry["cursor"] = "changed"
        if lookback is not None:
            entry["lookback"] = lookback
        register(settings, config("postgresql", "source", PG_URL, [entry], name=name))
        topic = ConnectorStore(settings).get(name).topics[table_name]
        assert run(settings, name).rows == 2
        with engine.begin() as conn:  # a third equal row, then a re-read of the window
            conn.execute(table.insert(), [{"note": "same", "changed": t0}])
        assert run(settings, name).rows == (1 if lookback is None else 0)
        out: list[Any] = []
        with Consumer(settings, None) as consumer:  # type: ignore[arg-type]
            consumer.run_bounded([topic], out.extend, from_beginning=True, commit=False)
        assert len(out) == (3 if lookback is None else 2)  # lookback 0: the hole, as documented
    finally:
        engine.dispose()
        drop_tables(PG_URL, [table_name])
