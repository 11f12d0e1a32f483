"""An archiver meets records whose schema its registry does not hold (another bus's topic on a
shared cluster, a schema registered elsewhere): it stops with one line naming the topic,
partition, offset and schema id (exit 4), having archived a prefix of what came before; it neither
parks them in the DLQ (another bus's DLQ, and replay could never decode them) nor reports ok."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bus.archive.models import ArchiveEntry
from bus.config import Settings
from bus.db import session_scope
from bus.dlq import dlq_topic
from bus.kafka.ends import end_offsets
from bus.kafka.topics import ensure_topics
from bus.publish import Publisher
from bus.runs import list_runs
from tests.helpers import record_schema, register_topic
from tests.helpers import run_cli as lgsp
from tests.integration.archive._scenario import CHANGES, Source

pytestmark = pytest.mark.integration


@pytest.fixture
def other_bus(tmp_path: Path, settings: Settings) -> Settings:
    """A second bus (state folder and registry of its own) on the same broker."""
    home = tmp_path / "other-bus"
    home.mkdir()
    return Settings(home=home, kafka_bootstrap=settings.kafka_bootstrap)


def _archived(settings: Settings, topic: str) -> list[tuple[int, int]]:
    with session_scope(settings) as s:
        rows = s.execute(
            select(ArchiveEntry.kafka_partition, ArchiveEntry.kafka_offset)
            .where(ArchiveEntry.topic == topic)
            .order_by(ArchiveEntry.kafka_partition, ArchiveEntry.kafka_offset)
        ).all()
    return [(int(p), int(o)) for p, o in rows]


def _stopped_at(err: str, topic: str) -> tuple[int, int, int]:
    """(partition, offset, schema id) named by the one line of a stopped archive run."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    found = re.match(
        rf"error: archive: {re.escape(topic)}\[(\d+)\]@(\d+) has schema id (\d+), which this "
        r"bus's registry does not hold",
        lines[0],
    )
    assert found, err
    assert "lgsp schema register" in lines[0] and "--topics" in lines[0], err
    return int(found[1]), int(found[2]), int(found[3])


def test_a_topic_of_another_bus_stops_the_archive_run(
    settings: Settings, cli_env: dict[str, str], other_bus: Settings, unique: str
) -> None:
    """This bus's registry has no subject for the topic at all."""
    topic = f"lgsp.79.760.26734.u{unique}.dossier"
    theirs = register_topic(other_bus, topic)
    with Publisher(other_bus) as pub:
        pub.publish(topic, Source(CHANGES).events)
    code, _, err = lgsp("archive", "run", "--topics", topic)
    assert code == 4, err  # the old code: exit 0, every record parked in the other bus's DLQ
    partition, offset, schema_id = _stopped_at(err, topic)
    assert schema_id == theirs and offset == 0 and partition in (0, 1, 2)
    assert _archived(settings, topic) == []
    assert sum(end_offsets(settings, [dlq_topic(topic)]).values()) == 0
    assert [r for r in list_runs(settings, limit=50) if r.kind == "archive"] == []


def test_a_record_of_an_unknown_schema_id_stops_the_run_after_what_came_before(
    settings: Settings, cli_env: dict[str, str], other_bus: Settings, unique: str
) -> None:
    """This bus knows the topic's subject; one record in the middle carries a schema id of
    another registry: the archive holds a prefix of what came before it (whole batches: the
    batch holding it is not archived) and verifies; nothing of it or after it."""
    topic = f"lgsp.79.760.26734.m{unique}.dossier"
    single = settings.topics.model_copy(update={"partitions": 1})
    one = settings.model_copy(update={"topics": single})
    ensure_topics(one, {topic: None})
    ours = register_topic(settings, topic)
    register_topic(other_bus, f"lgsp.79.760.26734.m{unique}.first", record_schema("First"))
    theirs = register_topic(other_bus, topic)  # the same schema under another id
    assert theirs != ours
    events = Source(CHANGES).events
    assert len(events) >= 10
    with Publisher(settings) as pub:
        pub.publish(topic, events[:6])
    with Publisher(other_bus) as pub:
        pub.publish(topic, events[6:7])
    with Publisher(settings) as pub:
        pub.publish(topic, events[7:10])
    code, _, err = lgsp("archive", "run", "--topics", topic)
    assert code == 4, err  # the old code: exit 0, the record parked and skipped in the chain
    assert _stopped_at(err, topic) == (0, 6, theirs)
    archived = _archived(settings, topic)
    assert archived == [(0, o) for o in range(len(archived))] and len(archived) <= 6
    assert sum(end_offsets(settings, [dlq_topic(topic)]).values()) == 0
    code, out, err = lgsp("audit", "verify")
    assert code == 0, out + err
    again = lgsp("archive", "run", "--topics", topic)  # stops at the same record, adds nothing
    assert again[0] == 4 and _stopped_at(again[2], topic) == (0, 6, theirs)
    with session_scope(settings) as s:
        assert s.scalar(select(func.count()).select_from(ArchiveEntry)) == len(archived)
