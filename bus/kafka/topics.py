"""Topic creation and topic configs: topics are created with the partitions, replication factor
and configs of ``Settings.topics``; a refusal by the cluster names the setting to fix."""

from __future__ import annotations

from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import AuthorizationError, KafkaError

from bus.config import Settings
from bus.errors import BrokerUnavailableError, ConfigurationError
from bus.kafka.clients import admin
from bus.kafka.options import broker_label

#: Kafka error codes read by the topic creation.
_TOPIC_ALREADY_EXISTS = 36
_INVALID_PARTITIONS = 37
_INVALID_REPLICATION_FACTOR = 38
_INVALID_CONFIG = 40
_TOPIC_AUTHORIZATION_FAILED = 29
_CLUSTER_AUTHORIZATION_FAILED = 31
_POLICY_VIOLATION = 44


def topic_config(settings: Settings, dataset: str | None) -> tuple[int, int, dict[str, str]]:
    """Partitions, replication factor and topic configs for a dataset's topic.

    Unclean leader election is always off; ``min.insync.replicas`` and ``retention.ms`` come
    from ``topics`` (``per_dataset_*`` first; retention -1 keeps a topic forever).
    """
    t = settings.topics
    key = dataset or ""
    partitions = t.per_dataset_partitions.get(key, t.partitions)
    configs: dict[str, str] = {"unclean.leader.election.enable": "false"}
    if t.min_insync_replicas:
        if t.min_insync_replicas > t.replication_factor:
            raise ConfigurationError(
                f"topics.min_insync_replicas ({t.min_insync_replicas}) is larger than "
                f"topics.replication_factor ({t.replication_factor}): no write could succeed"
            )
        configs["min.insync.replicas"] = str(t.min_insync_replicas)
    retention = t.per_dataset_retention_ms.get(key, t.retention_ms)
    if retention is not None:
        if retention < -1:
            raise ConfigurationError(
                f"topics retention for dataset {key or '(default)'}: expected -1 (keep "
                f"forever) or a number of ms, got {retention}"
            )
        configs["retention.ms"] = str(retention)
    if partitions < 1:
        raise ConfigurationError(
            f"topics.per_dataset_partitions[{key!r}]: expected at least 1, got {partitions}"
        )
    return partitions, t.replication_factor, configs


def _topic_error(settings: Settings, name: str, code: int, message: str | None) -> Exception:
    t = settings.topics
    detail = f" ({message})" if message else ""
    if code == _INVALID_REPLICATION_FACTOR:
        return ConfigurationError(
            f"topic {name}: the cluster refused topics.replication_factor "
            f"{t.replication_factor}{detail}; it needs at least that many brokers"
        )
    if code == _INVALID_PARTITIONS:
        return ConfigurationError(f"topic {name}: the cluster refused the partitions{detail}")
    if code in (_INVALID_CONFIG, _POLICY_VIOLATION):
        return ConfigurationError(
            f"topic {name}: the cluster refused the topic configs (topics.min_insync_replicas, "
            f"retention){detail}"
        )
    if code in (_TOPIC_AUTHORIZATION_FAILED, _CLUSTER_AUTHORIZATION_FAILED):
        return ConfigurationError(
            f"topic {name}: kafka.sasl_username {settings.kafka.sasl_username!r} may not "
            "create topics; grant it CREATE on the topic or cluster"
        )
    return BrokerUnavailableError(f"topic {name}: the broker answered error code {code}{detail}")


def ensure_topics(settings: Settings, topics: dict[str, str | None]) -> list[str]:
    """Create the topics that do not exist yet (``{topic: dataset}``); return those created."""
    specs = {name: topic_config(settings, dataset) for name, dataset in topics.items()}
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        request = {
            name: {"num_partitions": p, "replication_factor": rf, "configs": configs}
            for name, (p, rf, configs) in specs.items()
            if name not in existing
        }
        if not request:
            return []
        response = client.create_topics(
            request, timeout_ms=settings.kafka.api_timeout_ms, raise_errors=False
        )
        created = []
        for result in response.get("topics", []):
            code = int(result.get("error_code") or 0)
            if code == 0:
                created.append(result["name"])
            elif code != _TOPIC_ALREADY_EXISTS:
                raise _topic_error(settings, result["name"], code, result.get("error_message"))
        return created
    except AuthorizationError as exc:
        raise ConfigurationError(
            f"kafka.sasl_username {settings.kafka.sasl_username!r} is not allowed to list or "
            "create topics"
        ) from exc
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"{broker_label(settings)} failed while creating topics ({type(exc).__name__})"
        ) from exc
    finally:
        client.close()


def describe_topic_configs(settings: Settings, topic: str) -> dict[str, str]:
    """The configs the broker reports for a topic (every key, defaults included)."""
    client = admin(settings)
    try:
        result = client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )
    except KafkaError as exc:
        raise BrokerUnavailableError(
            f"{broker_label(settings)} failed to describe topic {topic} ({type(exc).__name__})"
        ) from exc
    finally:
        client.close()
    entries = result.get("topic", {}).get(topic, {})
    return {key: str(value.get("value")) for key, value in entries.items()}
