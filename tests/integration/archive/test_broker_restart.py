"""The archive, not the broker, is the history: replay after the embedded broker restarted,
and ``restore`` puts the archived log back so that the chain goes on in the same epoch."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from bus import broker
from bus.archive.archiver import Archiver
from bus.archive.models import ArchiveEntry
from bus.archive.replay import content_hash, replay_as_of
from bus.archive.verify import verify
from bus.broker_guard import BrokerDataLostError
from bus.broker_restore import restore
from bus.config import Settings
from bus.db import open_engine
from bus.db.engine import dispose_engines
from bus.kafka import clients
from bus.publish import Publisher
from tests.helpers import register_topic
from tests.integration.archive._scenario import CHANGES, Source, at

pytestmark = pytest.mark.integration


def topics_on_broker(settings: Settings) -> list[str]:
    client = clients.admin(settings)
    try:
        return list(client.list_topics())
    finally:
        client.close()


def test_replay_after_the_broker_restarted(tmp_path: Path, unique: str) -> None:
    settings = Settings(home=tmp_path / "own-broker", kafka_bootstrap=None)
    dataset = f"r{unique}.dossier"
    topic = f"lgsp.79.760.26734.{dataset}"
    before = Source([c for c in CHANGES if c.minute < 50])
    everything = Source(CHANGES)
    after = [e for e in everything.events if e["ts_ms"] >= before.events[-1]["ts_ms"] + 1]
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    try:
        broker.start_embedded(settings)
        register_topic(settings, topic)
        with Publisher(settings) as pub:
            pub.publish(topic, before.events)
        assert Archiver(settings).run_once(topic).appended == len(before.events)
        broker.stop_embedded(settings)

        # the broker is gone: the archive alone answers
        report = replay_as_of(settings, dataset, at(200), into=url, table="t1", purpose="p")
        assert report.content_hash == content_hash(list(before.snapshot(at(200)).items()))
        assert report.events_archive == len(before.events) and report.events_broker == 0
        assert any("broker does not answer" in n for n in report.notes)

        # a new broker knows nothing: the bus refuses to publish into it until it is restored
        broker.start_embedded(settings)
        assert topic not in topics_on_broker(settings)
        with (
            pytest.raises(BrokerDataLostError, match="lgsp broker restore"),
            Publisher(settings) as pub,
        ):
            pub.publish(topic, after)
        restored = restore(settings)
        assert restored.events == len(before.events) and all(p.lined_up for p in restored.lost)
        with Publisher(settings) as pub:
            pub.publish(topic, after)
        # not archived yet: the archive plus the broker's log
        report = replay_as_of(settings, dataset, at(200), into=url, table="t2", purpose="p")
        assert report.content_hash == content_hash(list(everything.snapshot(at(200)).items()))
        assert report.events_broker == len(after)

        run = Archiver(settings).run_once(topic)  # the restored log continues the chain
        assert run.appended == len(after) and not run.new_epochs
        checked = verify(settings, dataset=dataset)
        assert checked.ok and checked.entries == len(everything.events)
        with open_engine(settings).connect() as conn:
            epochs = set(conn.scalars(select(ArchiveEntry.epoch).distinct()))
        assert epochs == {0}
        for minute in (30, 60, 200):
            report = replay_as_of(
                settings, dataset, at(minute), into=url, table=f"m{minute}", purpose="p"
            )
            assert report.events_broker == 0
            assert report.content_hash == content_hash(
                list(everything.snapshot(at(minute)).items())
            )
    finally:
        broker.stop_embedded(settings)
        dispose_engines()
