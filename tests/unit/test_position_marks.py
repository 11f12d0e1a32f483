"""Source position marks: small (no lookback digests), two statements a batch, and pruned
without losing what the pruned marks reached."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.connectors_db import store as store_module
from bus.db import open_engine

TOPIC = "lgsp.79.760.26734.tthc.dossier"


@pytest.fixture
def store(offline_settings: Settings) -> ConnectorStore:
    made = ConnectorStore(offline_settings)
    made.add(name="src", type="sqlite", role="source", agency="a", unit="79", config={}, topics={})
    return made


def test_a_mark_keeps_the_position_without_the_lookback_digests(store: ConnectorStore) -> None:
    position = {"mode": "incremental", "after": [1, "k"], "seen": {"1751356800": "A" * 40_000}}
    store.save_position("src", "t", position, rows=10, topic=TOPIC, ends={0: 10})
    assert store.positions("src")["t"].position == position  # the run's own position: whole
    (mark,) = store.marks("src", "t")
    assert mark.position == {"mode": "incremental", "after": [1, "k"]}
    assert mark.ends == {0: 10}


def test_a_batch_costs_two_statements(store: ConnectorStore, offline_settings: Settings) -> None:
    store.save_position("src", "t", {"after": [0]}, rows=1, topic=TOPIC, ends={0: 1})  # prunes
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0].upper())

    engine = open_engine(offline_settings)
    event.listen(engine, "before_cursor_execute", count)
    try:
        for i in range(1, 11):
            store.save_position("src", "t", {"after": [i]}, rows=1, topic=TOPIC, ends={0: i + 1})
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert seen == ["UPDATE", "INSERT"] * 10
    assert store.positions("src")["t"].rows_total == 11


def test_pruned_marks_leave_what_they_reached_to_the_oldest_kept(
    store: ConnectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MARKS_KEPT", 4)
    monkeypatch.setattr(store_module, "PRUNE_EVERY", 3)
    # the first batch alone reached partition 0; all later ones only partition 1
    store.save_position("src", "t", {"after": [0]}, topic=TOPIC, ends={0: 100})
    for i in range(1, 20):
        store.save_position("src", "t", {"after": [i]}, topic=TOPIC, ends={1: i})
    marks = store.marks("src", "t")
    assert 4 <= len(marks) < 4 + 3
    assert marks[0].position == {"after": [19]}
    assert marks[0].ends == {0: 100, 1: 19}
    assert marks[-1].ends[0] == 100  # the pruned first mark's partition is not forgotten
    assert all(m.ends[0] == 100 for m in marks)


def test_a_new_topic_starts_its_marks_over(store: ConnectorStore) -> None:
    store.save_position("src", "t", {"after": [0]}, topic=TOPIC, ends={0: 50})
    store.save_position("src", "t", {"after": [1]}, topic=TOPIC + "2", ends={1: 3})
    newest, oldest = store.marks("src", "t")
    assert (newest.topic, newest.ends) == (TOPIC + "2", {1: 3})
    assert (oldest.topic, oldest.ends) == (TOPIC, {0: 50})
