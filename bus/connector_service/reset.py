"""``lgsp connector reset`` (and ``DELETE /connectors/{name}/offsets``): the next run of a
connector starts over, for all its tables or one.

What a run starts from is forgotten together, under the connector's run lock (a run going on
meanwhile would save its position again; the reset is refused while one holds the lock):

- the table's position and, for a source, its position marks (``lgsp broker restore`` would
  otherwise move the position forward again to an old mark);
- for a sink, the committed offsets of its consumer group on the table's topic, moved back to
  the topic's beginning: they, not the position row, are where a sink's next read starts.
  Tables of one sink that read the same topic share those offsets; the others read it again
  too (a sink's versioned upserts make that a no-op).
"""

from __future__ import annotations

from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.errors import BrokerUnavailableError, NotFoundError
from bus.kafka import clients
from bus.kafka.ends import partitions_of
from bus.run_lock import HeldLock
from bus.sync import sink_group

LOCK_TTL_S = 60.0


def reset_connector(settings: Settings, name: str, table: str | None = None) -> int:
    """Forget where connector ``name`` (every table, or ``table``) stands; returns how many
    table positions were forgotten. ``NotFoundError`` for a table the connector does not
    have; ``ConnectorBusyError`` while a run of it holds its lock."""
    store = ConnectorStore(settings)
    stored = store.get(name)
    if table is not None and table not in stored.topics:
        raise NotFoundError(
            f"--table: {table!r} is not a table of connector {name!r}; "
            f"its tables: {', '.join(stored.topics)}"
        )
    with HeldLock(store, name, LOCK_TTL_S):
        if stored.role == "sink":
            topics = [stored.topics[table]] if table is not None else list(stored.topics.values())
            _rewind_group(settings, sink_group(name), sorted(set(topics)))
        return store.reset(name, table)


def _rewind_group(settings: Settings, group: str, topics: list[str]) -> None:
    """Commit the beginning of every partition of ``topics`` as ``group``'s offsets."""
    consumer = clients.consumer(settings, group)
    try:
        tps = partitions_of(consumer, topics)
        if not tps:
            return
        begins = consumer.beginning_offsets(tps)
        consumer.assign(tps)
        consumer.commit({tp: OffsetAndMetadata(begins[tp], "", -1) for tp in tps})
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"cannot move the offsets of group {group} back ({type(exc).__name__}); nothing "
            "was forgotten: try the reset again"
        ) from exc
    finally:
        consumer.close(autocommit=False)
