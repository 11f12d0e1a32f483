"""SQLite's registered hash equals the Python one; the schema check; masking; segment plans."""

from __future__ import annotations

import decimal
from pathlib import Path

import sqlalchemy as sa

from bus.reconcile.canonical import md5_60, row_string
from bus.reconcile.core import Options, _HashPlan, _RangePlan
from bus.reconcile.dialects import SQLiteDialect, make_engine
from bus.reconcile.report import MASK, Masker
from bus.reconcile.schema import compare_schemas, reflect_table


def _engine(tmp_path: Path, ddl: list[str]) -> tuple[sa.Engine, SQLiteDialect]:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    dialect = SQLiteDialect(engine)
    with engine.connect() as conn:
        for stmt in ddl:
            conn.exec_driver_sql(stmt)
    return engine, dialect


def test_sqlite_row_hash_is_the_python_hash(tmp_path: Path) -> None:
    engine, dialect = _engine(
        tmp_path,
        [
            "CREATE TABLE t (id INTEGER PRIMARY KEY, ten TEXT, tien NUMERIC(10,2), "
            "ngay DATETIME, co BOOLEAN)",
            "INSERT INTO t VALUES (1, 'Tân Định', 1.5, '2024-06-01 08:30:00.000000', 1)",
            "INSERT INTO t VALUES (2, NULL, NULL, NULL, NULL)",
        ],
    )
    info = reflect_table(engine, "t", "source")
    cols = [info.columns[n] for n in sorted(info.columns)]
    expr = dialect.hash_expr(cols, native="", nfc=True)
    with engine.connect() as conn:
        got = dict(conn.execute(sa.text(f"SELECT id, {expr} FROM t")).all())  # noqa: S608
        total = conn.execute(sa.text(f"SELECT lgsp_hsum({expr}) FROM t")).scalar()  # noqa: S608
    kinds = [c.kind for c in cols]
    assert [c.name for c in cols] == ["co", "id", "ngay", "ten", "tien"]
    want1 = md5_60(
        row_string([True, 1, "2024-06-01 08:30:00", "Tân Định", decimal.Decimal("1.50")], kinds)
    )
    want2 = md5_60(row_string([None, 2, None, None, None], kinds))
    assert got == {1: want1, 2: want2}
    assert int(total) == want1 + want2  # exact, beyond 64 bits if need be
    engine.dispose()


def test_schema_check(tmp_path: Path) -> None:
    engine, _ = _engine(
        tmp_path,
        [
            "CREATE TABLE a (id INTEGER PRIMARY KEY, ten TEXT, tien NUMERIC(10,2), ghi VARCHAR(50),"
            " ngay DATE)",
            "CREATE TABLE b (id INTEGER PRIMARY KEY, ten TEXT, tien NUMERIC(10,1), ghi VARCHAR(20),"
            " ngay INTEGER, _lgsp_offset INTEGER, them TEXT)",
            "CREATE TABLE c (id INTEGER, ma TEXT PRIMARY KEY)",
        ],
    )
    a = reflect_table(engine, "a", "source")
    b = reflect_table(engine, "b", "target")
    check = compare_schemas(a, b)
    found = {(i.severity, i.kind, i.column) for i in check.issues}
    assert found == {
        ("error", "extra_column", "them"),
        ("error", "scale", "tien"),
        ("error", "type", "ngay"),
        ("warning", "length", "ghi"),
    }
    assert check.ignored_target == ["_lgsp_offset"]
    assert check.compared == ["ghi", "id", "ngay", "ten", "tien"]
    c = reflect_table(engine, "c", "target")
    assert not compare_schemas(a, c).comparable
    assert compare_schemas(a, reflect_table(engine, "c", "target", ["id"])).key == ["id"]
    engine.dispose()


def test_masker() -> None:
    masker = Masker(["CCCD", "ho_ten"], token=lambda v: "tok_" + str(len(str(v))))
    assert masker.value("ho_ten", "Lê Văn A") == MASK
    assert masker.value("ghi_chu", "x" * 500).endswith("...")
    assert masker.key("cccd", "079212345678") == "tok_12"
    assert masker.key("id", "5") == "5"
    assert Masker(["cccd"]).key("cccd", "079212345678") == MASK


def test_range_plan_is_aligned_powers_of_the_fanout() -> None:
    plan = _RangePlan(1, 1_000_000, Options())
    assert plan.widths == [256, 16, 1]
    assert plan.segments0 == 3907
    sparse = _RangePlan(-5, 10**12, Options())
    assert sparse.widths[0] >= 10**12 // (1 << 16)
    assert all(w == plan.fanout * n for w, n in zip(plan.widths, plan.widths[1:], strict=False))
    assert _HashPlan(1_000_000, Options()).moduli[:2] == [62500, 1_000_000]
