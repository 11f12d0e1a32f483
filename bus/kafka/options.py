"""Connection options of every Kafka client from ``Settings.kafka``: one place for address,
timeouts and security (SASL PLAIN, SCRAM-SHA-256/512; TLS)."""

from __future__ import annotations

import ssl
from typing import Any

from bus import broker
from bus.config import Settings
from bus.errors import ConfigurationError


def bootstrap_timeout_ms(settings: Settings) -> int:
    """How long a client may take to reach the cluster: ``kafka.api_timeout_ms``, at most
    ``kafka.request_timeout_ms``."""
    return min(settings.kafka.api_timeout_ms, settings.kafka.request_timeout_ms)


def bootstrap_servers(settings: Settings) -> list[str]:
    """The ``host:port`` addresses a client bootstraps from."""
    return [part.strip() for part in broker.bootstrap(settings).split(",") if part.strip()]


def broker_label(settings: Settings) -> str:
    """The broker as an error message names it."""
    if settings.kafka_bootstrap:
        return f"broker {settings.kafka_bootstrap} (LGSP_KAFKA_BOOTSTRAP)"
    return "the embedded broker"


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
        "bootstrap_servers": bootstrap_servers(settings),
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
