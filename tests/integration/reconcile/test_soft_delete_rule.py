"""One soft-delete rule (``connectors.soft_delete``): reconciliation's SQL rendering on
PostgreSQL, MariaDB and SQLite keeps exactly the rows the Python rule keeps, and the report
leaves out the rows the connectors publish as deletes (``'deleted'`` included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bus.generate import load_table
from bus.reconcile.dialects import dialect_for
from bus.reconcile.schema import ColumnInfo
from bus.report.service import read_table
from connectors.soft_delete import is_deleted
from tests.helpers import drop_tables

pytestmark = pytest.mark.integration

TEXTS = [None, "", " ", "0", "N", " no ", "False", "f", "Y", "1", "true", "deleted", "x", "0.0"]
TEXTS += ["\tn", "n\n"]
NUMBERS = [None, 0, 1, 2, -1]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path: Path, pg_url: str, mysql_url: str) -> str:
    return {
        "sqlite": f"sqlite:///{tmp_path / 'flags.db'}",
        "postgresql": pg_url,
        "mariadb": mysql_url,
    }[request.param]


def _kept(engine: sa.Engine, table: sa.Table, column: ColumnInfo) -> list[int]:
    where = dialect_for(engine).not_deleted(column)
    query = f"SELECT id FROM {table.name} WHERE {where} ORDER BY id"  # noqa: S608
    with engine.connect() as conn:
        return list(conn.execute(sa.text(query)).scalars())


def test_sql_renderings_keep_what_the_python_rule_keeps(url: str, unique: str) -> None:
    name = f"flags_{unique}"
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("flag_text", sa.String(20)),
        sa.Column("flag_int", sa.Integer),
    )
    engine = sa.create_engine(url)
    try:
        table.create(engine)
        rows: list[dict[str, Any]] = [
            {"id": i, "flag_text": t, "flag_int": None} for i, t in enumerate(TEXTS)
        ] + [{"id": 100 + i, "flag_text": None, "flag_int": n} for i, n in enumerate(NUMBERS)]
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
        for column, kind in (("flag_text", "text"), ("flag_int", "int")):
            expected = [r["id"] for r in rows if not is_deleted(r[column])]
            assert _kept(engine, table, ColumnInfo(column, kind, kind)) == expected, column
    finally:
        engine.dispose()
        drop_tables(url, [name])


def test_sqlite_values_of_any_type_in_one_column(tmp_path: Path) -> None:
    """A SQLite column holds a value of any type: REAL 0.0 is not set, TEXT '0.0' is."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'any.db'}")
    values: list[Any] = [0.0, "0.0", 0, 1.5, "no", b"", b"\x00", True, False]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, flag)")
        for i, v in enumerate(values):
            conn.exec_driver_sql("INSERT INTO t (id, flag) VALUES (?, ?)", (i, v))
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer))
    kept = _kept(engine, table, ColumnInfo("flag", "other", ""))
    engine.dispose()
    assert kept == [i for i, v in enumerate(values) if not is_deleted(v)]


def test_the_report_leaves_out_a_row_flagged_deleted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'report.db'}"
    assert load_table(url, "dossiers", "tthc.dossier", 4, 1, ["26734"]) == 4
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE dossiers ADD COLUMN deleted TEXT")
        ids = list(conn.exec_driver_sql("SELECT dossier_id FROM dossiers").scalars())
        for flag, dossier in zip(("deleted", "N", "y", None), ids, strict=True):
            conn.exec_driver_sql(
                "UPDATE dossiers SET deleted = ? WHERE dossier_id = ?", (flag, dossier)
            )
    engine.dispose()
    assert sorted(r["dossier_id"] for r in read_table(url, "dossiers")) == sorted([ids[1], ids[3]])
