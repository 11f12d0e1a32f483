"""The replay's target table: --replace swaps a fully written table in; a failed write keeps
the old one, on SQLite, PostgreSQL and MariaDB (whose DDL commits at once)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.archive.replay.selection import Candidate
from bus.archive.replay.table import write_table
from bus.errors import DataError, FatalError

pytestmark = pytest.mark.integration

SCHEMA = {
    "type": "record",
    "name": "Person",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "citizen_id", "type": ["null", "string"], "default": None},
    ],
}
CITIZEN_ID = "079123456789"


def _rows(*ids: int | None) -> tuple[list[Candidate], list[dict[str, Any]]]:
    candidates = [
        Candidate(1000 + n, n, "c", f'{{"n":{n}}}', "26734", f"e{n}", 1, b"", "archive")
        for n in range(len(ids))
    ]
    return candidates, [{"id": i, "citizen_id": CITIZEN_ID} for i in ids]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def target(
    request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, mysql_url: str, unique: str
) -> Iterator[tuple[str, str]]:
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'target.db'}",
        "postgresql": pg_url,
        "mariadb": mysql_url,
    }[request.param]
    table = f"replay_t_{unique}"
    yield url, table
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for name in sa.inspect(conn).get_table_names():
            if name.startswith(table):
                conn.execute(sa.text(f"DROP TABLE {name}"))
    engine.dispose()


def _state(url: str, table: str) -> tuple[list[int], list[str]]:
    """(ids in the table, every table whose name starts with the table's name)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        names = sorted(n for n in sa.inspect(conn).get_table_names() if n.startswith(table))
        ids = (
            sorted(conn.scalars(sa.text(f"SELECT id FROM {table}")))  # noqa: S608
            if table in names
            else []
        )
    engine.dispose()
    return ids, names


def test_replace_swaps_and_a_failed_write_keeps_the_old_table(target: tuple[str, str]) -> None:
    url, table = target
    write_table(url, None, table, SCHEMA, *_rows(1), replace=False)
    assert _state(url, table) == ([1], [table])

    write_table(url, None, table, SCHEMA, *_rows(2, 3), replace=True)
    assert _state(url, table) == ([2, 3], [table])

    # the second row breaks NOT NULL: the write fails after the new table was created
    with pytest.raises(FatalError) as err:
        write_table(url, None, table, SCHEMA, *_rows(4, None), replace=True)
    assert not isinstance(err.value, DataError)
    text = str(err.value)
    assert table in text and "unchanged" in text and CITIZEN_ID not in text
    assert _state(url, table) == ([2, 3], [table])


def test_a_failed_first_write_leaves_no_table(target: tuple[str, str]) -> None:
    url, table = target
    with pytest.raises(FatalError, match="nothing was kept"):
        write_table(url, None, table, SCHEMA, *_rows(None), replace=False)
    assert _state(url, table) == ([], [])


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "mariadb+pymysql"])
def test_a_schema_qualified_table_on_mariadb_stays_in_its_schema(
    mysql_url: str, unique: str, scheme: str
) -> None:
    """Either URL spelling of MariaDB swaps with ``RENAME TABLE``; ``ALTER TABLE .. RENAME TO``
    would move the table into the URL's database and drop the old one before the rename."""
    url = sa.engine.make_url(mysql_url).set(drivername=scheme)
    database, table = f"replay_db_{unique}", f"replay_t_{unique}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {database}")
    try:
        target = url.render_as_string(hide_password=False)
        write_table(target, database, table, SCHEMA, *_rows(1), replace=False)
        write_table(target, database, table, SCHEMA, *_rows(2, 3), replace=True)
        with admin.connect() as conn:
            assert sa.inspect(conn).get_table_names(schema=database) == [table]
            assert not sa.inspect(conn).has_table(table)  # not in the URL's database
            rows = conn.scalars(sa.text(f"SELECT id FROM {database}.{table}"))  # noqa: S608
            assert sorted(rows) == [2, 3]
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {database}")
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table}")
        admin.dispose()
