"""Why a Kafka client cannot connect, told as one line naming the setting to fix.

Failures to connect become one clear error within ``bootstrap_timeout_ms()``
(``kafka.api_timeout_ms``, at most ``kafka.request_timeout_ms``):

- nothing answers at the bootstrap address: ``BrokerUnavailableError``;
- the broker refuses the SASL mechanism, the credentials or the TLS certificate:
  ``ConfigurationError`` naming the setting to fix (never the password).

kafka-python 3.0 does not bound a TLS handshake by its bootstrap timeout (a TLS client on a
plaintext port waits forever), so with ``SSL``/``SASL_SSL`` :func:`tls_preflight` runs one
bounded TLS handshake first; after a failed bootstrap :func:`diagnose` probes the broker.
"""

from __future__ import annotations

import socket
import ssl
import struct
import time

from kafka.errors import SaslAuthenticationFailedError, UnsupportedSaslMechanismError

from bus.config import Settings
from bus.errors import BrokerUnavailableError, ConfigurationError
from bus.kafka.options import bootstrap_servers, bootstrap_timeout_ms, broker_label, ssl_context

LgspErrorLike = ConfigurationError | BrokerUnavailableError

#: Kafka error codes read by the SASL handshake probe.
_UNSUPPORTED_SASL_MECHANISM = 33
_ILLEGAL_SASL_STATE = 34


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host.strip("[]"), int(port)


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


def tls_preflight(settings: Settings, ctx: ssl.SSLContext) -> None:
    """One bounded TLS handshake before kafka-python (which would wait forever on a bad port)."""
    deadline = time.monotonic() + bootstrap_timeout_ms(settings) / 1000
    first_error: LgspErrorLike | None = None
    for server in bootstrap_servers(settings):
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
        f"{broker_label(settings)} does not answer within {bootstrap_timeout_ms(settings)} ms"
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


def diagnose(settings: Settings, exc: BaseException) -> LgspErrorLike:
    """Why a client could not bootstrap: nothing answers, or the broker refused our security."""
    k = settings.kafka
    waited_ms = bootstrap_timeout_ms(settings)
    budget = min(5.0, max(0.5, waited_ms / 2000))
    deadline = time.monotonic() + budget
    answering: list[str] = []
    for server in bootstrap_servers(settings):
        if time.monotonic() >= deadline:
            break
        try:
            _connect(server, deadline).close()
            answering.append(server)
        except OSError:
            continue
    if not answering:
        return BrokerUnavailableError(
            f"{broker_label(settings)} does not answer within {waited_ms} ms ({type(exc).__name__})"
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
        f"{broker_label(settings)} accepts connections but did not answer Kafka requests within "
        f"{waited_ms} ms; if its listener needs SASL or TLS, set "
        f"kafka.security_protocol (now {k.security_protocol})"
    )
