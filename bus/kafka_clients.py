"""kafka-python clients built from the settings: one place for address, timeouts and security.

Every producer, consumer and admin client of the bus comes from here, so each one gets the
same SASL (PLAIN, SCRAM-SHA-256/512) and TLS options from ``Settings.kafka``. Failures to
connect become one clear line within ``bootstrap_timeout_ms()`` (``kafka.api_timeout_ms``, at
most ``kafka.request_timeout_ms``) plus a short diagnosis:

- nothing answers at the bootstrap address: ``BrokerUnavailableError``;
- the broker refuses the SASL mechanism, the credentials or the TLS certificate:
  ``ConfigurationError`` naming the setting to fix (never the password).

kafka-python 3.0 does not bound a TLS handshake by its bootstrap timeout (a TLS client on a
plaintext port waits forever), so with ``SSL``/``SASL_SSL`` a bounded TLS handshake runs first.
Topics are created with the partitions, replication factor and configs of ``Settings.topics``.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import (
    AuthorizationError,
    KafkaConfigurationError,
    KafkaError,
    SaslAuthenticationFailedError,
    UnsupportedSaslMechanismError,
)
from kafka.partitioner.default import DefaultPartitioner

from bus import broker
from bus.config import Settings
from bus.errors import BrokerUnavailableError, ConfigurationError

T = TypeVar("T")
LgspErrorLike = ConfigurationError | BrokerUnavailableError

#: Kafka error codes read by the SASL handshake probe and the topic creation.
_UNSUPPORTED_SASL_MECHANISM = 33
_ILLEGAL_SASL_STATE = 34
_TOPIC_ALREADY_EXISTS = 36
_INVALID_PARTITIONS = 37
_INVALID_REPLICATION_FACTOR = 38
_INVALID_CONFIG = 40
_TOPIC_AUTHORIZATION_FAILED = 29
_CLUSTER_AUTHORIZATION_FAILED = 31
_POLICY_VIOLATION = 44


def bootstrap_timeout_ms(settings: Settings) -> int:
    """How long a client may take to reach the cluster: ``kafka.api_timeout_ms``, at most
    ``kafka.request_timeout_ms``."""
    return min(settings.kafka.api_timeout_ms, settings.kafka.request_timeout_ms)


def _servers(settings: Settings) -> list[str]:
    return [part.strip() for part in broker.bootstrap(settings).split(",") if part.strip()]


def _where(settings: Settings) -> str:
    if settings.kafka_bootstrap:
        return f"broker {settings.kafka_bootstrap} (LGSP_KAFKA_BOOTSTRAP)"
    return "the embedded broker"


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


def _check_security(settings: Settings) -> None:
    """Settings that cannot work together, named by field (kafka-python would ignore them)."""
    k = settings.kafka
    sasl = k.security_protocol.startswith("SASL_")
    if sasl:
        missing = [
            name
            for name, value in (
                ("kafka.sasl_mechanism", k.sasl_mechanism),
                ("kafka.sasl_username", k.sasl_username),
                ("kafka.sasl_password", k.sasl_password),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"kafka.security_protocol is {k.security_protocol}: set {', '.join(missing)}"
            )
    elif k.sasl_mechanism or k.sasl_username or k.sasl_password:
        raise ConfigurationError(
            f"kafka.sasl_* is set but kafka.security_protocol is {k.security_protocol}: "
            "use SASL_PLAINTEXT or SASL_SSL (or unset the SASL settings)"
        )
    if not k.security_protocol.endswith("SSL"):
        given = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(k, n)]
        if given:
            raise ConfigurationError(
                f"kafka.{given[0]} is set but kafka.security_protocol is {k.security_protocol}: "
                "use SSL or SASL_SSL (or unset the TLS files)"
            )
    if k.ssl_keyfile and not k.ssl_certfile:
        raise ConfigurationError("kafka.ssl_keyfile is set without kafka.ssl_certfile")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of every client (None without TLS); bad files name their field."""
    k = settings.kafka
    if not k.security_protocol.endswith("SSL"):
        return None
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    try:
        if k.ssl_cafile:
            ctx.load_verify_locations(cafile=str(k.ssl_cafile))
        else:
            ctx.load_default_certs()
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(
            f"kafka.ssl_cafile: not a readable PEM CA bundle ({type(exc).__name__})"
        ) from exc
    if k.ssl_certfile:
        try:
            ctx.load_cert_chain(
                certfile=str(k.ssl_certfile),
                keyfile=str(k.ssl_keyfile) if k.ssl_keyfile else None,
            )
        except (ssl.SSLError, OSError) as exc:
            raise ConfigurationError(
                "kafka.ssl_certfile/kafka.ssl_keyfile: not a matching PEM certificate and "
                f"unencrypted key ({type(exc).__name__})"
            ) from exc
    return ctx


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by producer, consumer and admin (SASL/TLS included)."""
    _check_security(settings)
    k = settings.kafka
    opts: dict[str, Any] = {
        "bootstrap_servers": _servers(settings),
        "client_id": k.client_id,
        "request_timeout_ms": k.request_timeout_ms,
        "bootstrap_timeout_ms": bootstrap_timeout_ms(settings),
        "security_protocol": k.security_protocol,
    }
    if k.security_protocol.startswith("SASL_"):
        opts["sasl_mechanism"] = k.sasl_mechanism
        opts["sasl_plain_username"] = k.sasl_username
        opts["sasl_plain_password"] = k.sasl_password.get_secret_value()  # type: ignore[union-attr]
    ctx = ssl_context(settings)
    if ctx is not None:
        opts["ssl_context"] = ctx
    return opts


# --- diagnosis of a failed connection ------------------------------------------------------


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed by the broker")
        data += chunk
    return data


def _sasl_handshake(sock: socket.socket, mechanism: str, client_id: str) -> int:
    """Send a SaslHandshake v1 request; return the broker's error code (0: mechanism offered)."""
    cid, mech = client_id.encode(), mechanism.encode()
    body = struct.pack(">hhih", 17, 1, 1, len(cid)) + cid + struct.pack(">h", len(mech)) + mech
    sock.sendall(struct.pack(">i", len(body)) + body)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    if not 6 <= size <= 1 << 20:
        raise ConnectionError("not a Kafka SaslHandshake response")
    _, error_code = struct.unpack_from(">ih", _recv_exact(sock, size), 0)
    return int(error_code)


def _connect(server: str, deadline: float) -> socket.socket:
    host, port = _split(server)
    return socket.create_connection((host, port), timeout=max(0.05, deadline - time.monotonic()))


def _tls_wrap(
    sock: socket.socket, ctx: ssl.SSLContext, server: str, deadline: float
) -> ssl.SSLSocket:
    sock.settimeout(max(0.05, deadline - time.monotonic()))
    return ctx.wrap_socket(sock, server_hostname=_split(server)[0])


def _tls_error(settings: Settings, server: str, exc: Exception) -> ConfigurationError:
    proto = settings.kafka.security_protocol
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ConfigurationError(
            f"TLS certificate of broker {server} not accepted ({exc.verify_message}): "
            "check kafka.ssl_cafile and that the broker's name matches its certificate"
        )
    if isinstance(exc, TimeoutError | socket.timeout):
        return ConfigurationError(
            f"broker {server} accepted a connection but did not complete a TLS handshake in "
            f"time: is it a TLS listener? (kafka.security_protocol is {proto})"
        )
    reason = getattr(exc, "reason", None) or type(exc).__name__
    return ConfigurationError(
        f"TLS handshake with broker {server} failed ({reason}): check kafka.security_protocol "
        f"({proto}), kafka.ssl_cafile, kafka.ssl_certfile and kafka.ssl_keyfile"
    )


def _tls_preflight(settings: Settings, ctx: ssl.SSLContext) -> None:
    """One bounded TLS handshake before kafka-python (which would wait forever on a bad port)."""
    deadline = time.monotonic() + bootstrap_timeout_ms(settings) / 1000
    first_error: LgspErrorLike | None = None
    for server in _servers(settings):
        try:
            raw = _connect(server, deadline)
        except OSError:
            continue
        try:
            with _tls_wrap(raw, ctx, server, deadline):
                return
        except (ssl.SSLError, OSError) as exc:
            first_error = first_error or _tls_error(settings, server, exc)
        finally:
            raw.close()
    if first_error is not None:
        raise first_error
    raise BrokerUnavailableError(
        f"{_where(settings)} does not answer within {bootstrap_timeout_ms(settings)} ms"
    )


def _sasl_error(settings: Settings, server: str, code: int | None) -> ConfigurationError:
    k = settings.kafka
    if code == 0:
        return ConfigurationError(
            f"SASL authentication failed at broker {server} for kafka.sasl_username "
            f"{k.sasl_username!r} with kafka.sasl_mechanism {k.sasl_mechanism}: check "
            "kafka.sasl_username and kafka.sasl_password"
        )
    if code == _ILLEGAL_SASL_STATE:
        return ConfigurationError(
            f"broker {server} is not a SASL listener: check kafka.security_protocol "
            f"({k.security_protocol}) and the port in LGSP_KAFKA_BOOTSTRAP"
        )
    return ConfigurationError(
        f"broker {server} does not accept kafka.sasl_mechanism {k.sasl_mechanism} "
        f"(kafka.security_protocol {k.security_protocol}): check both against the "
        "broker's listener"
    )


def _diagnose(settings: Settings, exc: BaseException) -> LgspErrorLike:
    """Why a client could not bootstrap: nothing answers, or the broker refused our security."""
    k = settings.kafka
    waited_ms = bootstrap_timeout_ms(settings)
    budget = min(5.0, max(0.5, waited_ms / 2000))
    deadline = time.monotonic() + budget
    answering: list[str] = []
    for server in _servers(settings):
        if time.monotonic() >= deadline:
            break
        try:
            _connect(server, deadline).close()
            answering.append(server)
        except OSError:
            continue
    if not answering:
        return BrokerUnavailableError(
            f"{_where(settings)} does not answer within {waited_ms} ms ({type(exc).__name__})"
        )
    server = answering[0]
    if isinstance(exc, SaslAuthenticationFailedError):
        return _sasl_error(settings, server, 0)
    if isinstance(exc, UnsupportedSaslMechanismError):
        return _sasl_error(settings, server, _UNSUPPORTED_SASL_MECHANISM)
    if k.security_protocol.startswith("SASL_") and time.monotonic() < deadline:
        code: int | None = None
        try:
            sock: socket.socket = _connect(server, deadline)
            try:
                ctx = ssl_context(settings)
                if ctx is not None:
                    sock = _tls_wrap(sock, ctx, server, deadline)
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                code = _sasl_handshake(sock, k.sasl_mechanism or "", k.client_id)
            finally:
                sock.close()
        except (OSError, struct.error):
            code = None
        return _sasl_error(settings, server, code)
    return BrokerUnavailableError(
        f"{_where(settings)} accepts connections but did not answer Kafka requests within "
        f"{waited_ms} ms; if its listener needs SASL or TLS, set "
        f"kafka.security_protocol (now {k.security_protocol})"
    )


def _build(settings: Settings, factory: Callable[..., T], opts: dict[str, Any]) -> T:
    ctx = opts.get("ssl_context")
    if isinstance(ctx, ssl.SSLContext):
        _tls_preflight(settings, ctx)
    try:
        return factory(**opts)
    except (KafkaConfigurationError, ValueError) as exc:
        raise ConfigurationError(f"invalid Kafka client option: {exc}") from exc
    except (KafkaError, OSError) as exc:
        raise _diagnose(settings, exc) from exc


# --- clients -------------------------------------------------------------------------------


_MURMUR_M = 0x5BD1E995
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key, equal to ``kafka.partitioner.default.murmur2`` (and so to
    the Java client) but reading the 4-byte words with one ``struct`` call."""
    length = len(data)
    m = _MURMUR_M
    h = 0x9747B28C ^ length
    words = length >> 2
    if words:
        unpack = _WORDS.get(words)
        if unpack is None:
            unpack = _WORDS.setdefault(words, struct.Struct(f"<{words}I"))
        for k in unpack.unpack_from(data):
            k = (k * m) & 0xFFFFFFFF
            k ^= k >> 24
            h = ((h * m) & 0xFFFFFFFF) ^ ((k * m) & 0xFFFFFFFF)
    extra = length & 3
    if extra:
        tail = length & ~3
        if extra >= 3:
            h ^= data[tail + 2] << 16
        if extra >= 2:
            h ^= data[tail + 1] << 8
        h = ((h ^ data[tail]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


class KeyPartitioner(DefaultPartitioner):
    """kafka-python's default partitioner (same key, same partition) with the faster murmur2."""

    def partition(
        self,
        topic: str,
        key: Any,
        serialized_key: bytes | None,
        value: Any,
        serialized_value: Any,
        cluster: Any,
    ) -> int:
        if serialized_key is None:
            return int(
                super().partition(topic, key, serialized_key, value, serialized_value, cluster)
            )
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        ordered = sorted(partitions)
        return int(ordered[(murmur2(bytes(serialized_key)) & 0x7FFFFFFF) % len(ordered)])


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


# --- topics --------------------------------------------------------------------------------


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
            f"{_where(settings)} failed while creating topics ({type(exc).__name__})"
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
            f"{_where(settings)} failed to describe topic {topic} ({type(exc).__name__})"
        ) from exc
    finally:
        client.close()
    entries = result.get("topic", {}).get(topic, {})
    return {key: str(value.get("value")) for key, value in entries.items()}
