"""The bus's partitioner must place every key where kafka-python's default one does."""

from __future__ import annotations

import random

from kafka.cluster import ClusterMetadata
from kafka.partitioner.default import DefaultPartitioner
from kafka.partitioner.default import murmur2 as reference

from bus.kafka.partitioner import KeyPartitioner, murmur2


def test_murmur2_equals_kafka_python() -> None:
    rng = random.Random(11)
    samples = [b"", b"a", b'{"id":5}', "Nguyễn".encode()]
    samples += [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 70))) for _ in range(3000)]
    for data in samples:
        assert murmur2(data) == reference(data), data


class _Cluster(ClusterMetadata):
    def __init__(self, partitions: set[int]) -> None:
        super().__init__()
        self._parts = partitions

    def topics(self, exclude_internal_topics: bool = True) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._parts if topic == "t" else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return self._parts if topic == "t" else None


def test_same_partition_as_default() -> None:
    rng = random.Random(3)
    for count in (1, 3, 7, 12):
        cluster = _Cluster(set(range(count)))
        ours, theirs = KeyPartitioner(), DefaultPartitioner()
        for i in range(500):
            key = f'{{"citizen_id":"0792{rng.randrange(10**8):08d}","n":{i}}}'.encode()
            assert ours.partition("t", None, key, None, None, cluster) == theirs.partition(
                "t", None, key, None, None, cluster
            )
        assert ours.partition("t", None, None, None, b"v", cluster) in range(count)
