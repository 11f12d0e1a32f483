"""A broker outage on demand: a TCP relay in front of an embedded broker of the test's own.

A Kafka client reconnects to the address the broker advertises in its metadata, not to the
bootstrap address, so a relay in front of the session's broker would be bypassed after the
first metadata answer. The test's broker (the same Tansu binary as ``lgsp broker start``, memory
storage) therefore listens on a port of its own and *advertises the relay's address*: every
connection of every client goes through the relay. ``Relay.cut`` closes all of them and stops
listening (new connections are refused) without touching the broker, which keeps its data;
``Relay.reopen`` listens again on the same port.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from bus import broker


class Relay:
    """Forwards every connection to ``127.0.0.1:<port>`` to ``target``, until cut."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None
        self.port = self._listen(0)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _listen(self, port: int) -> int:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen(64)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return int(server.getsockname()[1])

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:  # closed by cut
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._server is not server:  # cut meanwhile
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        """Close every connection and stop listening: the broker is unreachable."""
        with self._lock:
            server, self._server = self._server, None
            conns, self._conns = self._conns, []
        if server is not None:
            server.close()
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def reopen(self) -> None:
        """Listen again on the same port."""
        deadline = time.monotonic() + 10
        while True:
            try:
                self._listen(self.port)
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


@contextlib.contextmanager
def broker_behind_relay(logs: Path) -> Iterator[Relay]:
    """An embedded broker that advertises a relay's address; the relay, cut at the end."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    relay = Relay(("127.0.0.1", port))
    logs.mkdir(parents=True, exist_ok=True)
    with (logs / "broker.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                broker._binary(),  # the binary of ``lgsp broker start``
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{port}",
                "--advertised-listener-url",
                f"tcp://{relay.address}",
                "--storage-engine",
                "memory://tansu/",
                "--cluster-id",
                f"lgsp-{uuid.uuid4().hex}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 20
        while not broker.port_answers(f"127.0.0.1:{port}", timeout=0.5):
            assert proc.poll() is None, f"the test's broker exited ({proc.returncode})"
            assert time.monotonic() < deadline, "the test's broker did not answer in 20 s"
            time.sleep(0.1)
        yield relay
    finally:
        relay.cut()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
