"""Reconciliation errors never quote row values: no SQL parameters, no driver message text."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.reconcile.dialects import error_code, make_engine

SECRET = "079123456789"


def test_engine_errors_hide_parameters(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (cccd TEXT PRIMARY KEY)")
            conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": SECRET})
            with pytest.raises(sa.exc.IntegrityError) as caught:
                conn.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": SECRET})
    finally:
        engine.dispose()
    assert SECRET not in str(caught.value)
    assert "parameters hidden" in str(caught.value)


def test_error_code_names_class_and_code_only(tmp_path: Path) -> None:
    import pymysql

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (cccd TEXT PRIMARY KEY)")
            insert = sa.text("INSERT INTO t VALUES (:v)")
            conn.execute(insert, {"v": SECRET})
            with pytest.raises(sa.exc.IntegrityError) as caught:
                conn.execute(insert, {"v": SECRET})
    finally:
        engine.dispose()
    assert error_code(caught.value) == "IntegrityError, SQLITE_CONSTRAINT_PRIMARYKEY"
    mysql = pymysql.err.DataError(1366, f"Incorrect string value: '{SECRET}' for column 'cccd'")
    assert error_code(mysql) == "DataError, error 1366"
    assert error_code(ValueError(SECRET)) == "ValueError"
