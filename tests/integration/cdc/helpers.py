"""Shared helpers of the log-capture tests."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.connector_service.registration import register
from bus.connectors_db import ConnectorStore
from bus.consume import Consumer, Message
from connectors.sql import pgoutput as pg
from tests.integration.connectors.helpers import config


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


Order = tuple[int, ...]


def pg_acked_key(state: dict[str, Any]) -> Order:
    """A PostgreSQL ``mode: log`` position (commit LSN, index) as ``position_key`` orders it."""
    return int(state["lsn"]), int(state["index"])


def gtid_key(position: str) -> Order:
    """A MariaDB change event's position (``domain-server-seq:index``): (domain, seq, index)."""
    gtid, _, index = position.rpartition(":")
    domain, _server, seq = gtid.split("-")
    return int(domain), int(seq), int(index)


def maria_acked_key(state: dict[str, Any]) -> Order:
    """A MariaDB ``mode: log`` position as ``gtid_key`` orders the events."""
    return gtid_key(f"{state['gtid']}:{state['index']}")


def acked(
    settings: Settings, name: str, key: Callable[[dict[str, Any]], Order] = pg_acked_key
) -> Order:
    """The last acknowledged (committed) stream position of a connector, as ``key`` orders
    it; ``()`` before any."""
    keys = [
        key(p.position)
        for p in ConnectorStore(settings).positions(name).values()
        if p.position and p.position.get("phase") == "stream" and p.position.get("gtid", 1)
    ]
    return max(keys, default=())


def phases(settings: Settings, name: str) -> set[str]:
    """The phases (``snapshot``, ``stream``) of a connector's stored table positions."""
    return {
        str(p.position.get("phase"))
        for p in ConnectorStore(settings).positions(name).values()
        if p.position
    }


def published(
    settings: Settings, topic: str, key: Callable[[str], Order] = position_key
) -> list[Order]:
    """The positions of the topic's change events (not snapshot reads), as ``key`` orders
    them, one per event (a position published twice comes twice)."""
    return [
        key(m.value["source"]["position"])
        for m in read_topic(settings, topic)
        if m.value["op"] != "r"
    ]


def assert_doubles_after_acked(
    counts: dict[Order, int], windows: list[tuple[Order, Order]]
) -> None:
    """Every position published more than once lies after the acknowledged position and at or
    before the last published one of some killed run (``windows``: (acked, published) at each
    kill)."""
    for position, count in counts.items():
        if count > 1:
            assert any(a < position <= p for a, p in windows), (
                f"position {position} published {count} times, not after an acknowledged "
                f"position of a killed run (acked, published at kills: {windows})"
            )


def confirmed_flush(url: str, slot: str) -> int:
    """The confirmed flush LSN of replication slot ``slot`` (which must exist)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            text = conn.exec_driver_sql(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots "
                "WHERE slot_name = %(s)s",
                {"s": slot},
            ).scalar_one()
            return pg.parse_lsn(text)
    finally:
        engine.dispose()


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


COLUMNS = "id, ten, so_tien, luc, du_lieu, ghi_chu"
UPDATE = "UPDATE {t} SET ghi_chu = :g, so_tien = so_tien + 1 WHERE id = :k"
UPSERT = {
    "postgresql": "INSERT INTO {t} VALUES (:k, :ten, :so, now(), :js, NULL) "
    "ON CONFLICT (id) DO UPDATE SET ten = excluded.ten, so_tien = excluded.so_tien",
    "mysql": "INSERT INTO {t} VALUES (:k, :ten, :so, now(6), :js, NULL) "
    "ON DUPLICATE KEY UPDATE ten = VALUES(ten), so_tien = VALUES(so_tien)",
}


class Writer(threading.Thread):
    """Random inserts, updates (some 3 times in one transaction) and deletes until stopped, on
    a PostgreSQL or MariaDB/MySQL table of the columns ``COLUMNS``."""

    def __init__(self, url: str, table: str, rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.engine = sa.create_engine(url)
        self.upsert = UPSERT["mysql" if url.startswith("mysql") else "postgresql"]
        self.table, self.rng = table, rng
        self.halt = threading.Event()
        self.transactions = 0

    def run(self) -> None:
        t = self.table
        while not self.halt.is_set():
            with self.engine.begin() as conn:
                for _ in range(self.rng.randint(1, 4)):
                    key = self.rng.randint(1, 400)
                    kind = self.rng.random()
                    if kind < 0.45:
                        conn.execute(
                            sa.text(self.upsert.replace("{t}", t)),
                            {
                                "k": key,
                                "ten": f"Nguyễn Thị Ánh {key}",
                                "so": key * 1.25,
                                "js": '{"v": 1}',
                            },
                        )
                    elif kind < 0.85:
                        for n in range(3):
                            conn.execute(
                                sa.text(UPDATE.replace("{t}", t)),
                                {"g": f"lần {n} ở phường Tân Định", "k": key},
                            )
                    else:
                        conn.execute(sa.text(f"DELETE FROM {t} WHERE id = :k"), {"k": key})  # noqa: S608
            self.transactions += 1
            time.sleep(self.rng.uniform(0, 0.02))
        self.engine.dispose()


WIDE_DDL = {
    "postgresql": "CREATE TABLE {t} (id int PRIMARY KEY, ten text NOT NULL, "
    "so_tien numeric(14, 2), luc timestamptz, du_lieu jsonb, ghi_chu text)",
    "mysql": "CREATE TABLE {t} (id int PRIMARY KEY, ten varchar(100) NOT NULL, "
    "so_tien decimal(14, 2), luc datetime(6), du_lieu json, ghi_chu text) CHARSET utf8mb4",
}
"""A table of the columns ``COLUMNS`` (the ones ``Writer`` changes), by engine."""


def wide_table(
    url: str, table: str, rows: int, name: str = "Trần Văn ", doc: str = '{"a": 1}'
) -> None:
    """Create a ``WIDE_DDL`` table of ``rows`` rows (id n, ten ``name`` n, so_tien n, du_lieu
    ``doc``); on PostgreSQL with REPLICA IDENTITY FULL, so that updates and deletes carry every
    column."""
    if url.startswith("mysql"):
        execute(
            url,
            WIDE_DDL["mysql"],
            f"INSERT INTO {{t}} SELECT seq, CONCAT('{name}', seq), seq, now(6), '{doc}', NULL "  # noqa: S608
            f"FROM seq_1_to_{rows}",
            table=table,
        )
        return
    execute(
        url,
        WIDE_DDL["postgresql"],
        "ALTER TABLE {t} REPLICA IDENTITY FULL",
        f"INSERT INTO {{t}} SELECT g, '{name}' || g, g, now(), '{doc}', NULL "  # noqa: S608
        f"FROM generate_series(1, {rows}) g",
        table=table,
    )


def log_source(
    settings: Settings,
    url: str,
    name: str,
    table: str,
    dataset: str,
    *,
    kind: str = "postgresql",
    batch_size: int | None = None,
    **table_extra: Any,
) -> str:
    """Register a ``mode: log`` source ``name`` of ``table`` into ``dataset`` (``table_extra``
    added to its table entry): the table's topic."""
    tables = [{"table": table, "dataset": dataset, "mode": "log", **table_extra}]
    more = {} if batch_size is None else {"batch_size": batch_size}
    return (
        register(settings, config(kind, "source", url, tables, name=name, **more)).tables[0].topic
    )


def log_pair(
    settings: Settings,
    kind: str,
    url: str,
    table: str,
    dataset: str,
    sink_url: str,
    dst: str,
    batch_size: int = 20,
) -> str:
    """Register a ``mode: log`` source ``s`` over ``table`` and a sink ``d`` of its dataset
    into ``dst``: the source's topic."""
    topic = log_source(settings, url, "s", table, dataset, kind=kind, batch_size=batch_size)
    sink = [{"table": dst, "dataset": dataset}]
    register(settings, config(kind, "sink", sink_url, sink, name="d"))
    return topic


def table_rows(url: str, table: str) -> dict[int, tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            result = conn.exec_driver_sql(f"SELECT {COLUMNS} FROM {table}")  # noqa: S608
            # JSONB is published as its JSON text: compared as the value it denotes
            return {
                r[0]: (*r[:4], json.loads(r[4]) if isinstance(r[4], str) else r[4], r[5])
                for r in result
            }
    finally:
        engine.dispose()


def lgsp(*args: str) -> tuple[int, str, str]:
    """``lgsp ARGS`` in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def connector_file(path: Path, name: str, url: str, table: str, dataset: str, **more: Any) -> Path:
    """A connector file: a PostgreSQL ``mode: log`` source of ``table`` into ``dataset``;
    ``more`` adds or replaces top-level keys (``log``, ``role``, ``tables``)."""
    data: dict[str, Any] = {
        "name": name,
        "type": "postgresql",
        "role": "source",
        "agency": "ubnd-phuong-tan-dinh",
        "unit": "26734",
        "connection": {"url": url},
        "tables": [{"table": table, "dataset": dataset, "mode": "log"}],
        **more,
    }
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def slots(url: str) -> list[str]:
    """The names of the server's replication slots."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return list(
                conn.exec_driver_sql("SELECT slot_name FROM pg_replication_slots").scalars()
            )
    finally:
        engine.dispose()


def emit_wal(url: str, megabytes: int) -> None:
    """About ``megabytes`` MB of WAL, in 1 MB messages nobody decodes."""
    execute(
        url,
        *[
            "SELECT pg_logical_emit_message(false, 'lgsp-test', repeat('x', 1048576))"
            for _ in range(megabytes)
        ],
    )
