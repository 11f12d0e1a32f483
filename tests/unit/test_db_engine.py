"""Engines of the control database: a SQLite one keeps a connection per concurrent thread."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import event, text

from bus.config import Settings
from bus.db import open_engine


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
