"""The PostgreSQL sink's COPY path stores exactly what the row-at-a-time upsert stores, and
falls back to it where the database refuses a temporary table."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from conftest import PG_URL
from connectors.sql.bulk import CopyUpsert
from connectors.sql.upsert import VERSION, on_conflict_update

pytestmark = pytest.mark.integration

VN = dt.timezone(dt.timedelta(hours=7))
DDL = (
    'CREATE TABLE {t} (id BIGINT PRIMARY KEY, "Tên" TEXT, luc TIMESTAMP, luc_tz TIMESTAMPTZ, '
    "ho_so JSONB, so_tien NUMERIC(12,2), tep BYTEA, _lgsp_ts_ms BIGINT)"
)
COLUMNS = ["id", "Tên", "luc", "luc_tz", "ho_so", "so_tien", "tep", VERSION]


def _row(i: int, version: int, **changes: Any) -> dict[str, Any]:
    row = {
        "id": i,
        "Tên": f"Nguyễn Thị Ánh {i}",
        "luc": dt.datetime(2026, 3, 1, 8, 30, tzinfo=dt.UTC),
        "luc_tz": dt.datetime(2026, 3, 1, 8, 30, 0, 123000, tzinfo=VN),
        "ho_so": {"loai": "khai sinh", "so": i},
        "so_tien": decimal.Decimal("1234.50"),
        "tep": b"\x00\\\n\t" + bytes([i % 256]),
        VERSION: version,
    }
    row.update(changes)
    return row


ROWS = [
    _row(1, 100),
    _row(2, 100, ho_so=None, so_tien=None, tep=None, luc=None),
    _row(3, 200, **{"Tên": "mới hơn"}),
    _row(3, 150, **{"Tên": "cũ hơn, đến sau"}),  # an older version later in the batch
    _row(4, 100, luc=dt.datetime(2026, 3, 1, 8, 30)),  # naive
]


@pytest.fixture
def engine() -> Iterator[sa.Engine]:
    """Sessions in Vietnam's time zone: a ``timestamp`` column must not depend on the path."""
    engine = sa.create_engine(PG_URL, connect_args={"options": "-c TimeZone=Asia/Ho_Chi_Minh"})
    yield engine
    engine.dispose()


def _tables(engine: sa.Engine, *names: str) -> list[sa.Table]:
    with engine.begin() as conn:
        for name in names:
            conn.execute(sa.text(DDL.format(t=name)))
    return [sa.Table(n, sa.MetaData(), autoload_with=engine) for n in names]


def _contents(engine: sa.Engine, table: sa.Table) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        cast = [
            sa.func.jsonb_typeof(c).label("t") if c.name == "ho_so" else c for c in table.columns
        ]
        return [tuple(r) for r in conn.execute(sa.select(*cast).order_by(table.c.id))]


def _row_statement(table: sa.Table) -> Any:
    """The sink's row-at-a-time statement."""
    return on_conflict_update(postgresql.insert(table), table, COLUMNS, ["id"])


def test_copy_path_stores_what_the_row_statements_store(engine: sa.Engine) -> None:
    name = f"copy_a_{uuid.uuid4().hex[:8]}"
    bulk_table, row_table = _tables(engine, name, name.replace("_a_", "_b_"))
    try:
        with engine.begin() as conn:
            bulk = CopyUpsert(bulk_table, COLUMNS, ["id"], engine.dialect)
            assert bulk.write(conn, ROWS)
        statement = _row_statement(row_table)
        with engine.begin() as conn:
            for row in ROWS:  # one statement per row, in order
                conn.execute(statement, [row])
        copied, by_rows = _contents(engine, bulk_table), _contents(engine, row_table)
        assert copied == by_rows
        assert [r[1] for r in copied] == [
            "Nguyễn Thị Ánh 1",
            "Nguyễn Thị Ánh 2",
            "mới hơn",  # the newer version kept although the older one came later
            "Nguyễn Thị Ánh 4",
        ]
        assert copied[1][4] == "null"  # JSON null, as the bound parameter stores it
        assert copied[0][2] == dt.datetime(2026, 3, 1, 15, 30)  # in the session's time zone
    finally:
        with engine.begin() as conn:
            for table in (bulk_table, row_table):
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table.name}"))


@pytest.fixture
def no_temp_url() -> Iterator[str]:
    """A database where PUBLIC has no TEMPORARY privilege, and a role that may write a table."""
    db, role = "lgsp_no_temp", f"lgsp_nt_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": db}
        ).scalar()
        if not exists:
            conn.execute(sa.text(f"CREATE DATABASE {db}"))
        conn.execute(sa.text(f"REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC"))
        conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN'))
    url = sa.engine.make_url(PG_URL).set(database=db)
    owner = sa.create_engine(url)
    with owner.begin() as conn:
        conn.execute(sa.text("DROP TABLE IF EXISTS copy_nt"))
        conn.execute(sa.text(DDL.format(t="copy_nt")))
        conn.execute(sa.text(f'GRANT SELECT, INSERT, UPDATE ON copy_nt TO "{role}"'))
    try:
        yield url.set(username=role).render_as_string(hide_password=False)
    finally:
        with owner.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS copy_nt"))
        owner.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP ROLE "{role}"'))
        admin.dispose()


def test_without_the_temporary_privilege_rows_are_written_one_by_one(no_temp_url: str) -> None:
    engine = sa.create_engine(no_temp_url)
    try:
        table = sa.Table("copy_nt", sa.MetaData(), autoload_with=engine)
        bulk = CopyUpsert(table, COLUMNS, ["id"], engine.dialect)
        with engine.begin() as conn:
            assert not bulk.write(conn, ROWS)  # refused: nothing done, the caller goes on
            assert not bulk.usable
            conn.execute(_row_statement(table), ROWS[:3])  # the same transaction still works
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 3
    finally:
        engine.dispose()
