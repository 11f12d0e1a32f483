"""The producer, consumer and admin client of the bus (kafka-python), built from the settings:
a client that cannot connect raises the one-line error of :mod:`bus.kafka.diagnose`."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConfigurationError, KafkaError

from bus.config import Settings
from bus.errors import ConfigurationError
from bus.kafka.diagnose import diagnose, tls_preflight
from bus.kafka.options import client_options
from bus.kafka.partitioner import KeyPartitioner

T = TypeVar("T")


def _build(settings: Settings, factory: Callable[..., T], opts: dict[str, Any]) -> T:
    ctx = opts.get("ssl_context")
    if isinstance(ctx, ssl.SSLContext):
        tls_preflight(settings, ctx)
    try:
        return factory(**opts)
    except (KafkaConfigurationError, ValueError) as exc:
        raise ConfigurationError(f"invalid Kafka client option: {exc}") from exc
    except (KafkaError, OSError) as exc:
        raise diagnose(settings, exc) from exc


def producer(settings: Settings, **overrides: Any) -> KafkaProducer:
    """An idempotent producer (acks=all) with the bus's batching and security settings."""
    opts = client_options(settings)
    opts.update(
        partitioner=KeyPartitioner(),
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.kafka.linger_ms,
        batch_size=settings.kafka.batch_size,
        max_block_ms=settings.kafka.request_timeout_ms,
    )
    opts.update(overrides)
    return _build(settings, KafkaProducer, opts)


def consumer(settings: Settings, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer without auto-commit; the caller commits after processing."""
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
    return _build(settings, KafkaConsumer, opts)


def admin(settings: Settings) -> KafkaAdminClient:
    """An admin client (topics, configs, groups)."""
    return _build(settings, KafkaAdminClient, client_options(settings))
