"""A run's hold on a lock of the control database (a connector's run lock, or a bus-wide
operation's such as ``broker-restore``), kept for as long as the run lasts.

A lock row lives ``ttl_s`` seconds unless its holder extends it, so that a crashed run's lock
frees itself. ``HeldLock`` takes the lock (taking over an expired one, or one whose holder
process is gone: ``ConnectorStore.acquire_lock``) and extends it in either of two ways:

- ``refresh()`` at the run's own steps (a sync run, after each batch): at most every third of
  the time to live, so a step that takes longer than ``ttl_s`` loses the lock;
- ``keep_alive()``: a thread that extends it every third of its time to live while the process
  lives, for a run whose steps have no fixed size (a broker restore sending a whole archive);
  the lock's time to live is then short, and a crashed run's lock frees itself soon.

Either way a run whose lock is gone (taken over once expired, or removed by ``lgsp connector
unlock``) learns it at its next ``refresh()`` (``ConnectorBusyError``) and stops before it
writes anything more: another run may hold the lock meanwhile.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bus.connectors_db import ConnectorStore
from bus.connectors_db.models import ConnectorLock
from bus.connectors_db.store import LockTable, lock_owner
from bus.errors import LgspError, safe_message
from connectors.errors import ConnectorBusyError

log = logging.getLogger(__name__)


class HeldLock:
    """This run's hold on the lock ``name`` of ``table`` (taken on construction)."""

    def __init__(
        self,
        store: ConnectorStore,
        name: str,
        ttl_s: float,
        table: LockTable = ConnectorLock,
    ) -> None:
        self.store = store
        self.name = name
        self.ttl_s = ttl_s
        self.table = table
        self.owner = lock_owner()
        self.what = f"connector {name!r}" if table is ConnectorLock else name
        taken = store.acquire_lock(name, self.owner, ttl_s, table)
        if taken.took_over is not None:
            log.warning(
                "%s: took over the run lock of a crashed run (%s, since %s UTC): its process "
                "is gone",
                self.what,
                taken.took_over.owner,
                f"{taken.took_over.acquired_at:%Y-%m-%d %H:%M:%S}",
            )
        self._refreshed = time.monotonic()
        self._lost = threading.Event()
        self._stop = threading.Event()

    def __enter__(self) -> HeldLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _extend(self) -> bool:
        """Extend the lock now; False (and remembered) when this run no longer holds it."""
        if not self.store.refresh_lock(self.name, self.owner, self.ttl_s, self.table):
            self._lost.set()
            return False
        self._refreshed = time.monotonic()
        return True

    def refresh(self) -> None:
        """Extend the lock (at most every third of its time to live); ``ConnectorBusyError``
        when this run lost it: the caller stops before it writes anything more."""
        lost = self._lost.is_set()
        if not lost and time.monotonic() - self._refreshed >= self.ttl_s / 3:
            lost = not self._extend()
        if lost:
            raise ConnectorBusyError(
                f"{self.what}: this run lost its lock (it expired after a step that took longer "
                f"than {self.ttl_s:g} s and was taken over, or it was unlocked); this run stops"
            )

    @contextmanager
    def keep_alive(self) -> Iterator[HeldLock]:
        """Extend the lock every third of its time to live from a thread, while the block
        runs (the block still calls ``refresh()`` before each write, to learn of a loss)."""
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self.ttl_s / 3):
                try:
                    if not self._extend():
                        return
                except Exception as exc:  # the next beat tries again; the TTL leaves time
                    log.warning("%s: cannot extend the lock: %s", self.what, safe_message(exc))

        thread = threading.Thread(target=beat, name=f"lock:{self.name}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()

    def release(self) -> None:
        """Give the lock up (nothing when another run took it over meanwhile)."""
        try:
            self.store.release_lock(self.name, self.owner, self.table)
        except LgspError as exc:  # the run's own outcome matters more; the lock expires
            log.warning("%s: cannot release the lock: %s", self.what, safe_message(exc))
