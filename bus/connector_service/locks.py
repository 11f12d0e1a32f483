"""Releasing a connector's run lock left by a crashed run (``lgsp connector unlock`` and the
API's ``DELETE /connectors/{name}/lock``): only the holder the person saw, never one that
took the lock since."""

from __future__ import annotations

from bus.connectors_db import ConnectorStore
from bus.connectors_db.store import RunLock
from bus.errors import FatalError


def release_seen_lock(store: ConnectorStore, name: str, seen_owner: str | None) -> RunLock | None:
    """Release ``name``'s run lock if ``seen_owner`` (or, when None, whoever holds it now)
    holds it; None when no lock is held. Another holder than the one seen: ``FatalError``."""
    store.get(name)
    held = store.lock(name)
    if held is None:
        return None
    if seen_owner is not None and held.owner != seen_owner:
        raise FatalError(
            f"owner: the run lock of connector {name} is now held by another run "
            "(look at its status again)"
        )
    store.release_lock(name, held.owner)
    return held
