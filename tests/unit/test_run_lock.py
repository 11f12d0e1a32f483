"""``HeldLock``: a lock extended while its run lives, and a run that lost it stops."""

from __future__ import annotations

import time

import pytest

from bus.broker_restore import LOCK, LOCK_TTL_S
from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.connectors_db.models import OperationLock
from bus.run_lock import HeldLock
from connectors.errors import ConnectorBusyError


def test_a_kept_alive_lock_outlives_its_time_to_live(offline_settings: Settings) -> None:
    store = ConnectorStore(offline_settings)
    lock = HeldLock(store, "long-op", 0.6, OperationLock)
    with lock, lock.keep_alive():
        time.sleep(1.5)  # more than twice its time to live
        with pytest.raises(ConnectorBusyError, match="long-op is already running"):
            store.acquire_lock("long-op", "another", 60, OperationLock)
        lock.refresh()  # still held: no error
    assert store.lock("long-op", OperationLock) is None  # released at the end


def test_a_lock_not_kept_alive_expires_and_its_run_learns_it(offline_settings: Settings) -> None:
    store = ConnectorStore(offline_settings)
    lock = HeldLock(store, "short-op", 0.3, OperationLock)
    time.sleep(0.5)  # expired: another run takes it over
    store.acquire_lock("short-op", "another", 60, OperationLock)
    with pytest.raises(ConnectorBusyError, match="short-op: this run lost its lock"):
        lock.refresh()
    lock.release()  # releases nothing of the other run's
    held = store.lock("short-op", OperationLock)
    assert held is not None and held.owner == "another"


def test_a_kept_alive_lock_that_was_removed_stops_its_run(offline_settings: Settings) -> None:
    store = ConnectorStore(offline_settings)
    lock = HeldLock(store, "gone-op", 0.3, OperationLock)
    with lock, lock.keep_alive():
        store.release_lock("gone-op", lock.owner, OperationLock)  # e.g. unlocked by hand
        time.sleep(0.4)  # a beat finds it gone
        with pytest.raises(ConnectorBusyError, match="lost its lock"):
            lock.refresh()


def test_the_restore_lock_is_short_lived() -> None:
    """A crashed restore elsewhere blocks the next one for minutes, not hours."""
    assert LOCK == "broker-restore"
    assert LOCK_TTL_S <= 300
