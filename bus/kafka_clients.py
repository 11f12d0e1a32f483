"""kafka-python clients built from the settings: one place for address, timeouts and security."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from bus import broker
from bus.config import Settings
from bus.errors import BrokerUnavailableError


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by producer, consumer and admin (SASL/TLS included)."""
    k = settings.kafka
    opts: dict[str, Any] = {
        "bootstrap_servers": broker.bootstrap(settings).split(","),
        "client_id": k.client_id,
        "request_timeout_ms": k.request_timeout_ms,
        "bootstrap_timeout_ms": k.api_timeout_ms,
        "security_protocol": k.security_protocol,
    }
    if k.sasl_mechanism:
        opts["sasl_mechanism"] = k.sasl_mechanism
        opts["sasl_plain_username"] = k.sasl_username
        opts["sasl_plain_password"] = (
            k.sasl_password.get_secret_value() if k.sasl_password else None
        )
    for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(k, name)
        if value is not None:
            opts[name] = str(value)
    return opts


def _unavailable(settings: Settings, exc: Exception) -> BrokerUnavailableError:
    where = settings.kafka_bootstrap or "the embedded broker"
    return BrokerUnavailableError(f"broker {where} does not answer ({type(exc).__name__})")


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    opts = client_options(settings)
    opts.update(
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.kafka.linger_ms,
        batch_size=settings.kafka.batch_size,
        max_block_ms=settings.kafka.request_timeout_ms,
    )
    opts.update(overrides)
    try:
        return KafkaProducer(**opts)
    except (KafkaError, OSError) as exc:
        raise _unavailable(settings, exc) from exc


def consumer(settings: Settings, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    opts = client_options(settings)
    opts.update(
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_interval_ms=30000,
        session_timeout_ms=10000,
        heartbeat_interval_ms=3000,
    )
    opts.update(overrides)
    try:
        return KafkaConsumer(**opts)
    except (KafkaError, OSError) as exc:
        raise _unavailable(settings, exc) from exc


def admin(settings: Settings) -> KafkaAdminClient:
    try:
        return KafkaAdminClient(**client_options(settings))
    except (KafkaError, OSError) as exc:
        raise _unavailable(settings, exc) from exc


def topic_config(settings: Settings, dataset: str | None) -> tuple[int, int, dict[str, str]]:
    """Partitions, replication factor and topic configs for a dataset's topic."""
    t = settings.topics
    partitions = t.per_dataset_partitions.get(dataset or "", t.partitions)
    configs: dict[str, str] = {"unclean.leader.election.enable": "false"}
    if t.min_insync_replicas:
        configs["min.insync.replicas"] = str(t.min_insync_replicas)
    retention = t.per_dataset_retention_ms.get(dataset or "", t.retention_ms)
    if retention is not None:
        configs["retention.ms"] = str(retention)
    return partitions, t.replication_factor, configs


def ensure_topics(settings: Settings, topics: dict[str, str | None]) -> list[str]:
    """Create the topics that do not exist yet (``{topic: dataset}``); return those created."""
    client = admin(settings)
    try:
        existing = set(client.list_topics())
        new = []
        for name, dataset in topics.items():
            if name in existing:
                continue
            partitions, rf, configs = topic_config(settings, dataset)
            new.append(NewTopic(name, partitions, rf, topic_configs=configs))
        if new:
            try:
                client.create_topics(new)
            except TopicAlreadyExistsError:
                pass
        return [t.name for t in new]
    except KafkaError as exc:
        raise _unavailable(settings, exc) from exc
    finally:
        client.close()
