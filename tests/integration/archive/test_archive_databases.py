"""Archive and verify with the control DB on PostgreSQL; replay into PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import update

from bus.archive.archiver import Archiver
from bus.archive.models import ArchiveEntry
from bus.archive.replay import content_hash, replay_as_of
from bus.archive.verify import verify
from bus.config import Settings
from bus.db import open_engine
from bus.publish import Publisher
from tests.helpers import drop_tables, postgres_control, register_topic
from tests.integration.archive._scenario import CHANGES, Source, at

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_settings(settings: Settings, pg_url: str, unique: str) -> Iterator[Settings]:
    """Settings whose control database is a fresh PostgreSQL database, dropped afterwards."""
    with postgres_control(settings, pg_url, f"lgsp_test_{unique}") as control:
        yield control


def test_archive_verify_replay_on_postgresql(
    pg_settings: Settings, pg_url: str, unique: str
) -> None:
    source = Source(CHANGES)
    dataset = f"p{unique}.dossier"
    topic = f"lgsp.79.760.26734.{dataset}"
    register_topic(pg_settings, topic)
    with Publisher(pg_settings) as pub:
        pub.publish(topic, source.events)
    assert Archiver(pg_settings).run_once(topic).appended == len(source.events)
    report = verify(pg_settings)
    assert report.ok and report.entries == len(source.events), report.problems

    table = f"replay_{unique}"
    target = pg_url.rsplit("/", 1)[0] + f"/lgsp_test_{unique}"
    replayed = replay_as_of(pg_settings, dataset, at(85), into=target, table=table, purpose="p")
    assert replayed.content_hash == content_hash(list(source.snapshot(at(85)).items()))
    engine = sa.create_engine(target)
    with engine.connect() as conn:
        types = {c["name"]: type(c["type"]).__name__ for c in sa.inspect(conn).get_columns(table)}
        row = conn.execute(sa.text(f"SELECT amount, seen FROM {table} WHERE id = 6")).one()  # noqa: S608
    engine.dispose()
    assert types["amount"] == "NUMERIC" and types["seen"] == "TIMESTAMP"
    assert row.seen.tzinfo is not None
    assert row.seen == source.snapshot(at(85))['{"id":6}']["seen"]

    entries = ArchiveEntry.__table__
    with open_engine(pg_settings).begin() as conn:
        partition = conn.scalar(
            sa.select(sa.func.min(entries.c.kafka_partition)).where(entries.c.seq == 3)
        )
        conn.execute(
            update(entries)
            .where(entries.c.kafka_partition == partition, entries.c.seq == 3)
            .values(ts_ms=entries.c.ts_ms + 1)
        )
    problems = verify(pg_settings).problems
    assert [(p.partition, p.seq, p.kind) for p in problems] == [(partition, 3, "broken link")]


def test_replay_into_mariadb(settings: Settings, mysql_url: str, unique: str) -> None:
    source = Source(CHANGES)
    dataset = f"m{unique}.dossier"
    topic = f"lgsp.79.760.26734.{dataset}"
    register_topic(settings, topic)
    with Publisher(settings) as pub:
        pub.publish(topic, source.events)
    Archiver(settings).run_once(topic)
    table = f"replay_{unique}"
    try:
        report = replay_as_of(settings, dataset, at(85), into=mysql_url, table=table, purpose="p")
        assert report.content_hash == content_hash(list(source.snapshot(at(85)).items()))
        engine = sa.create_engine(mysql_url)
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT id, amount, seen FROM {table}")).all()  # noqa: S608
        engine.dispose()
        expected = source.snapshot(at(85))
        assert len(rows) == len(expected)
        for r in rows:
            rec = expected[f'{{"id":{r.id}}}']
            assert r.amount == rec["amount"]
            assert r.seen == rec["seen"].astimezone(dt.UTC).replace(tzinfo=None)
    finally:
        drop_tables(mysql_url, [table])
