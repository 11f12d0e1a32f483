"""Migration 0011: a control database holding the same cut-over twice (recorded by reruns of
the reform before the constraint) keeps the first, gets the unique constraint, and the
migration tree has one head."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from bus.db.engine import MIGRATIONS

PARENTS = (
    "0004_archive",
    "0005_reconcile",
    "0008_api_keys",
    "0008_unit_changes",
    "0009_registry_deletes",
    "0010_operation_lock",
)


def _config(conn: sa.Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def test_one_head() -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    heads = ScriptDirectory.from_config(cfg).get_heads()
    assert len(heads) == 1, f"the migration tree has {len(heads)} heads: {heads}"


def test_duplicates_removed_then_unique(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'control.db'}")
    with engine.begin() as conn:
        for parent in PARENTS:
            command.upgrade(_config(conn), parent)
        insert = sa.text(
            "INSERT INTO unit_cutover (from_hierarchy, to_hierarchy, effective, applied_at) "
            "VALUES (:f, 'hcmc-2025', :e, '2026-01-01 00:00:00')"
        )
        rows = [("hcmc-2024", "2025-07-01")] * 3 + [("hcmc-2024", "2025-08-01")]
        conn.execute(insert, [{"f": f, "e": e} for f, e in rows])
    with engine.begin() as conn:
        command.upgrade(_config(conn), "heads")
    with engine.begin() as conn:
        kept = conn.execute(sa.text("SELECT id, effective FROM unit_cutover ORDER BY id")).all()
        assert [(i, str(e)) for i, e in kept] == [(1, "2025-07-01"), (4, "2025-08-01")]
        with pytest.raises(sa.exc.IntegrityError):
            conn.execute(insert, {"f": "hcmc-2024", "e": "2025-07-01"})
    engine.dispose()
