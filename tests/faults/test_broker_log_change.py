"""A topic deleted and created again while a publisher runs: the publisher stops at the next
acknowledgement instead of recording (and marking source positions with) offsets of two logs
as one."""

from __future__ import annotations

import pytest

from bus.broker_guard import BrokerDataLostError, holder_ends
from bus.config import Settings
from bus.publish import Publisher
from tests.helpers import recreate_topic, register_topic
from tests.integration.test_bus_roundtrip import events, topic_for

pytestmark = pytest.mark.integration


def test_a_log_created_again_mid_run_stops_the_publisher(settings: Settings, unique: str) -> None:
    topic = topic_for(unique)
    register_topic(settings, topic)
    with Publisher(settings, origin="publish:cli") as pub:
        pub.publish(topic, events(20))
        before = dict(pub.acked)
        recreate_topic(settings, topic)
        with pytest.raises(BrokerDataLostError, match=r"the broker lost data .*created again"):
            pub.publish(topic, events(1, start=20))
    # nothing of the new log was recorded over the old one
    assert {k: e for k, e in holder_ends(settings)["publish:cli"].items() if k[0] == topic} == (
        before
    )
