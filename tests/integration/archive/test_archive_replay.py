"""Archive and replay against the real broker: replay as of T equals the source at T."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from bus import broker_guard
from bus.archive.access import list_access
from bus.archive.archiver import Archiver
from bus.archive.replay import content_hash, replay_as_of, replay_events
from bus.archive.verify import verify
from bus.catalog.access_log import query_access
from bus.config import Settings
from bus.errors import ConfigurationError, NotFoundError
from bus.kafka.ends import end_offsets
from bus.kafka.options import client_options
from bus.publish import Publisher
from bus.serde.jsoncodec import dumps
from tests.helpers import read_rows, register_topic
from tests.integration.archive._scenario import CHANGES, Source, at, publish_order

pytestmark = pytest.mark.integration

MOMENTS = [-1, 0, 11, 16, 47, 55, 76, 78, 85, 104, 200]


def dataset_topics(settings: Settings, unique: str) -> tuple[str, str, str]:
    dataset = f"a{unique}.dossier"
    ward = f"lgsp.79.760.26734.{dataset}"
    district = f"lgsp.79.760.{dataset}"  # the roll-up: same events, same event ids
    for topic in (ward, district):
        register_topic(settings, topic)
    return dataset, ward, district


def publish(settings: Settings, topics: tuple[str, ...], events: list[dict[str, Any]]) -> None:
    with Publisher(settings) as pub:
        for topic in topics:
            assert pub.publish(topic, events).sent == len(events)


def table_rows(url: str, table: str) -> dict[int, tuple]:
    rows = read_rows(url, table)
    return {r["id"]: (r["name"], r["amount"], r["born"], r["seen"], r["_lgsp_key"]) for r in rows}


def expected_rows(snapshot: dict[str, dict[str, Any]]) -> dict[int, tuple]:
    result = {}
    for key, rec in snapshot.items():
        born = rec["born"].isoformat() if rec["born"] else None
        seen = rec["seen"].astimezone(dt.UTC).replace(tzinfo=None)
        result[rec["id"]] = (rec["name"], format(rec["amount"], "f"), born, seen, key)
    return result


def normalise(rows: dict[int, tuple]) -> dict[int, tuple]:
    out = {}
    for i, (name, amount, born, seen, key) in rows.items():
        born = born.isoformat() if isinstance(born, dt.date) else born
        if isinstance(seen, str):
            seen = dt.datetime.fromisoformat(seen)
        out[i] = (name, amount, born, seen, key)
    return out


def test_replay_as_of_equals_the_source_at_that_moment(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    source = Source(CHANGES)
    dataset, ward, district = dataset_topics(settings, unique)
    order = publish_order(source.events)
    first, rest = order[:12], order[12:]
    publish(settings, (ward, district), first)

    archived = Archiver(settings).run_once(f"lgsp.*.{dataset}")
    assert archived.topics == sorted([ward, district])
    assert archived.appended == 2 * len(first) and archived.checkpoint is not None
    publish(settings, (ward, district), rest)  # not archived yet: replay reads the broker

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    hashes = {}
    for i, minute in enumerate(MOMENTS):
        moment = at(minute)
        report = replay_as_of(
            settings, dataset, moment, into=url, table=f"snap_{i}", purpose="audit test"
        )
        snapshot = source.snapshot(moment)
        assert report.keys == len(snapshot), minute
        assert report.content_hash == content_hash(list(snapshot.items())), minute
        assert normalise(table_rows(url, f"snap_{i}")) == expected_rows(snapshot), minute
        assert report.events_archive == 2 * len(first)
        assert report.events_broker == 2 * len(rest)
        assert report.duplicates == len(order)  # the district copy of every event, once
        assert {c.topic for c in report.chains} == {ward, district}
        hashes[minute] = report.content_hash
    assert source.snapshot(at(-1)) == {} and hashes[-1] == content_hash([])
    assert len(set(hashes.values())) >= 8  # the moments really differ

    # once everything is archived, the archive alone gives the same tables
    again = Archiver(settings).run_once(f"lgsp.*.{dataset}")
    assert again.appended == 2 * len(rest) and again.skipped == 0
    assert verify(settings, dataset=dataset).ok
    for minute in (47, 78, 200):
        report = replay_as_of(
            settings,
            dataset,
            at(minute),
            into=url,
            table="again",
            purpose="audit test",
            replace=True,
        )
        assert report.events_broker == 0
        assert report.content_hash == hashes[minute]

    # a unit filter: the ward itself, District 1 (both topics), another ward (nothing)
    for unit, keys in (("79.760.26734", len(source.snapshot(at(85)))), ("79.760.26737", 0)):
        report = replay_as_of(
            settings,
            dataset,
            at(85),
            into=url,
            table="unit_" + unit.replace(".", "_"),
            unit=unit,
            purpose="audit test",
        )
        assert report.keys == keys


def test_replay_events_in_a_range(settings: Settings, unique: str) -> None:
    source = Source(CHANGES)
    dataset, ward, district = dataset_topics(settings, unique)
    publish(settings, (ward, district), publish_order(source.events))
    Archiver(settings).run_once(f"lgsp.*.{dataset}")

    start, end = at(10), at(50)
    report, events = replay_events(
        settings, dataset, purpose="complaint 2026/117", start=start, end=end
    )
    got = list(events)
    expected = source.events_between(start, end)
    assert [e["event_id"] for e in got] == [e["event_id"] for e in expected]
    assert [e["ts_ms"] for e in got] == sorted(e["ts_ms"] for e in got)
    assert report.selected == len(expected)
    assert all(dumps(e) for e in got)
    _, none = replay_events(settings, dataset, purpose="x", start=at(500), end=at(600))
    assert list(none) == []


def test_every_replay_is_access_logged(settings: Settings, unique: str, tmp_path: Path) -> None:
    source = Source(CHANGES[:5])
    dataset, ward, _ = dataset_topics(settings, unique)
    publish(settings, (ward,), source.events)
    Archiver(settings).run_once(ward)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    settings = settings.model_copy(update={"principal": "kiem-toan-vien-01"})
    replay_as_of(settings, dataset, at(3), into=url, purpose="thanh tra 12/2026")
    _, events = replay_events(settings, dataset, purpose="đối soát", start=at(0), end=at(3))
    assert len(list(events)) == 3
    with pytest.raises(ConfigurationError, match="--into: table replay_"):
        replay_as_of(settings, dataset, at(3), into=url, purpose="again")

    log = list_access(settings, dataset)
    assert [(r.action, r.principal, r.purpose, r.records, r.outcome) for r in log] == [
        ("replay-events", "kiem-toan-vien-01", "đối soát", 3, "ok"),
        ("replay-as-of", "kiem-toan-vien-01", "thanh tra 12/2026", 3, "ok"),
    ]

    def utc(moment: dt.datetime) -> dt.datetime:  # SQLite gives back naive UTC
        return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

    assert log[1].as_of is not None and utc(log[1].as_of) == at(3)
    assert log[0].from_ts is not None and utc(log[0].from_ts) == at(0)
    shared = query_access(settings, dataset=dataset, action="replay")
    assert [(e.principal, e.purpose, e.records) for e in shared] == [
        ("kiem-toan-vien-01", "thanh tra 12/2026", 3),
        ("kiem-toan-vien-01", "đối soát", 3),
    ]


def test_replay_reads_a_log_the_guard_refuses_and_counts_undecodable_records(
    settings: Settings, unique: str, tmp_path: Path
) -> None:
    """Replay reads what is not archived even where the broker guard would stop a run, and
    counts a record it cannot decode without parking it (a replay writes nothing to the bus)."""
    source = Source(CHANGES[:6])
    dataset, ward, _ = dataset_topics(settings, unique)
    publish(settings, (ward,), source.events[:3])
    Archiver(settings).run_once(ward)
    publish(settings, (ward,), source.events[3:])
    raw = KafkaProducer(**client_options(settings))
    raw.send(ward, key=b'{"id":99}', value=b"\x00\x00\x00corrupt").get(10)
    raw.close()
    ends = end_offsets(settings, [ward])
    broker_guard.record_ends(settings, broker_guard.PUBLISH, {k: v + 5 for k, v in ends.items()})
    with pytest.raises(broker_guard.BrokerDataLostError):
        broker_guard.check(settings, [ward])

    url = f"sqlite:///{tmp_path / 'a.db'}"
    report = replay_as_of(settings, dataset, at(200), into=url, purpose="p")
    assert (report.events_archive, report.events_broker, report.undecodable) == (3, 3, 1)
    assert report.content_hash == content_hash(list(source.snapshot(at(200)).items()))
    assert sum(end_offsets(settings, [f"{ward}.dlq"]).values()) == 0


def test_unknown_dataset_and_replay_needs_purpose(settings: Settings, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with pytest.raises(NotFoundError, match="no archive entries and no topic"):
        replay_as_of(settings, "nothing.here", at(0), into=url, purpose="x")
    # a replay that failed is logged too, in both logs, with nothing read
    [failed] = list_access(settings, "nothing.here")
    assert (failed.action, failed.records, failed.outcome) == (
        "replay-as-of",
        0,
        "failed: NotFoundError",
    )
    [shared] = query_access(settings, dataset="nothing.here")
    assert shared.records == 0 and shared.detail is not None
    assert shared.detail["outcome"] == "failed: NotFoundError"
    with pytest.raises(ConfigurationError, match="--purpose"):
        replay_as_of(settings, "nothing.here", at(0), into=url, purpose=" ")
    with pytest.raises(ConfigurationError, match="dataset name"):
        replay_as_of(settings, "Nothing", at(0), into=url, purpose="x")
