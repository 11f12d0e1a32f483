"""Small helpers shared by tests (importable as ``tests.helpers``)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bus.config import Settings
from bus.db.engine import dispose_engines
from bus.envelope import envelope_schema
from bus.registry import Registry, subject_for


def record_schema(name: str = "Person", namespace: str = "demo", extra: list | None = None) -> dict:
    fields: list[dict[str, Any]] = [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {"name": "born", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ]
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": fields + (extra or []),
    }


def register_topic(settings: Settings, topic: str, schema: dict | None = None) -> int:
    env = envelope_schema(schema or record_schema(), settings.schemas_dir)
    return Registry(settings).register(subject_for(topic), env).id


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Return as soon as ``predicate()`` is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def recreate_topic(settings: Settings, topic: str, dataset: str | None = None) -> None:
    """Delete ``topic`` on the broker, wait until it is gone, and create it again (empty): a
    new log under the same name."""
    from bus.kafka import clients
    from bus.kafka.topics import ensure_topics

    admin = clients.admin(settings)
    try:
        admin.delete_topics([topic])
        wait_until(lambda: topic not in admin.list_topics(), 10, "the topic deleted")
    finally:
        admin.close()
    ensure_topics(settings, {topic: dataset})


@contextlib.contextmanager
def postgres_control(settings: Settings, pg_url: str, name: str) -> Iterator[Settings]:
    """``settings`` on a fresh PostgreSQL control database ``name`` (created on ``pg_url``'s
    server), dropped afterwards."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_url.rsplit("/", 1)[0] + "/" + name
    try:
        yield Settings(
            home=settings.home, kafka_bootstrap=settings.kafka_bootstrap, database_url=url
        )
    finally:
        dispose_engines()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def drop_tables(url: str, names: Iterable[str]) -> None:
    """``DROP TABLE IF EXISTS`` each of ``names`` in the database of ``url``, then check that
    none is left (a test that drops a table as a fault knows the fault landed)."""
    names = list(names)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            quote = engine.dialect.identifier_preparer.quote
            for name in names:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {quote(name)}"))
        left = [name for name in names if sa.inspect(engine).has_table(name)]
        assert not left, f"tables still there after DROP TABLE: {left}"
    finally:
        engine.dispose()


def run_cli(*args: str) -> tuple[int, str, str]:
    """``lgsp ARGS`` in this process (click's runner): exit code, stdout, stderr. An exception
    the command line does not turn into an exit code is raised, not hidden in the result."""
    from click.testing import CliRunner

    from bus.cli.main import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@contextlib.contextmanager
def own_broker(home: Path) -> Iterator[Settings]:
    """Settings of state folder ``home`` (made if missing) with an embedded broker of its own,
    found by the state folder (``broker.json``), not by ``LGSP_KAFKA_BOOTSTRAP``: a test may
    stop or restart it without touching the session's broker."""
    from bus import broker

    home.mkdir(parents=True, exist_ok=True)
    settings = Settings(home=home, kafka_bootstrap=None)
    broker.start_embedded(settings)
    try:
        yield settings
    finally:
        broker.stop_embedded(settings)
        dispose_engines()


BROKER_LOST = "error: the broker lost data"


def assert_broker_lost_refusal(code: int, err: str, what: str = "") -> None:
    """A run on a broker that lost data: exit 4 and one line naming the recovery command
    (``what`` describes the run in a failure)."""
    lines = err.strip().splitlines()
    assert code == 4, (code, err, what)
    assert len(lines) == 1 and lines[0].startswith(BROKER_LOST), (err, what)
    assert "lgsp broker restore" in lines[0], (err, what)


def read_rows(url: str, table: str, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every row of ``table`` (its ``columns``, or all) in the database of ``url``, as dicts."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            t = sa.Table(table, sa.MetaData(), autoload_with=conn)
            chosen = [t.c[c] for c in columns] if columns is not None else list(t.c)
            return [dict(r) for r in conn.execute(sa.select(*chosen)).mappings()]
    finally:
        engine.dispose()
