"""Shared helpers of the log-capture tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bus.config import Settings
from bus.consume import Consumer, Message
from connectors.sql import pgoutput as pg


def execute(url: str, *statements: str, table: str = "") -> None:
    """``statements`` in one transaction, ``{t}`` in them standing for ``table``."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement.replace("{t}", table))
    finally:
        engine.dispose()


def read_topic(settings: Settings, topic: str) -> list[Message]:
    out: list[Message] = []
    with Consumer(settings, None) as consumer:  # type: ignore[arg-type]
        consumer.run_bounded([topic], out.extend, from_beginning=True, commit=False)
    return out


def events_of(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """The topic's events: snapshot reads first, then changes by position (commit LSN, index
    in the transaction); a topic's partitions are read one after another, and each keeps the
    order of its keys."""
    values = [m.value for m in read_topic(settings, topic)]
    snapshot = [e for e in values if e["op"] == "r"]
    changes = [e for e in values if e["op"] != "r"]
    return snapshot + sorted(changes, key=lambda e: position_key(e["source"]["position"]))


def position_key(position: str) -> tuple[int, int]:
    lsn, _, index = position.rpartition(":")
    return pg.parse_lsn(lsn), int(index)


def drop_log(url: str, connector: str, *tables: str) -> None:
    """Drop a connector's slot and publication, and ``tables``, whatever a test left."""
    slot = "lgsp_" + connector.replace("-", "_")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %(s)s",
                {"s": slot},
            )
            conn.exec_driver_sql(f'DROP PUBLICATION IF EXISTS "{slot}"')
            for table in tables:
                conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{table}"')
    finally:
        engine.dispose()
