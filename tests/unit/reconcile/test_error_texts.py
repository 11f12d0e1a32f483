"""Reconciliation errors never quote row values: no SQL parameters, no driver message text."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.reconcile.dialects import make_engine

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
