"""Engines of the control database: a SQLite one keeps a connection per concurrent thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, inspect, text

from bus.config import Settings
from bus.db import open_engine
from bus.db.engine import dispose_engines


def test_sqlite_connections_are_kept_between_bursts_not_reopened(
    offline_settings: Settings,
) -> None:
    """Bursts of 12 requests at once (what a server at 200/s sees after a pause): the second
    burst reuses the first one's connections (a pool of 5 closed 7 and opened them again)."""
    engine = open_engine(offline_settings)
    engine.dispose()  # count from none
    opened: list[int] = []
    event.listen(engine, "connect", lambda *_: opened.append(1))
    threads = 12
    together = threading.Barrier(threads)

    def burst(_: int) -> None:
        with engine.connect() as conn:
            together.wait(timeout=30)  # all 12 hold one at the same time
            conn.execute(text("SELECT 1")).scalar()

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(3):
            list(pool.map(burst, range(threads)))
    assert len(opened) == threads


def test_heads_read_from_the_scripts_are_alembics() -> None:
    """The fast check reads the scripts as text; it must find the heads Alembic finds."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from bus.db.engine import MIGRATIONS, script_heads

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    assert script_heads() == frozenset(ScriptDirectory.from_config(cfg).get_heads())


def test_a_database_behind_is_migrated_and_one_at_the_heads_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening runs Alembic only when the stamped revisions are not the scripts' heads: a
    database one revision behind gets the newest migration, an up-to-date one is left alone."""
    from alembic import command
    from alembic.config import Config

    from bus.db import engine as db_engine

    url = f"sqlite:///{tmp_path / 'control.db'}"
    raw = create_engine(url)
    with raw.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(db_engine.MIGRATIONS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0012_broker_anchor")  # one behind 0013_grant_units
    raw.dispose()
    runs: list[str] = []
    real = db_engine.migrate
    monkeypatch.setattr(db_engine, "migrate", lambda e: (runs.append(url), real(e)))
    settings = Settings(database_url=url)
    with open_engine(settings).connect() as conn:
        columns = {c["name"] for c in inspect(conn).get_columns("catalog_grant")}
        stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert "units" in columns and stamped == sorted(db_engine.script_heads())
    assert runs == [url]
    dispose_engines()
    open_engine(settings)
    assert runs == [url]  # at the heads: Alembic not run again
    dispose_engines()
