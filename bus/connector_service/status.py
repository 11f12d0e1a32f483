"""A connector's status, for ``lgsp connector status`` and ``GET /connectors/{name}/status``
(one answer, two doors): running or not (the run lock's holder), its last runs, per-table
positions (a cursor and a key digest, never key values), and for a sink the records not yet
applied per topic."""

from __future__ import annotations

from typing import Any

from bus import broker_guard
from bus.connector_service import slots
from bus.context import Context
from bus.runs import list_runs
from bus.sync import RUN_KIND, sink_group
from connectors import positions as connector_positions


def connector_status(ctx: Context, name: str, runs: int = 5) -> dict[str, Any]:
    """The status of connector ``name`` (``ConnectorNotFoundError`` when it is not
    registered) with its ``runs`` last runs, newest first."""
    stored = ctx.connectors.get(name)
    lock = ctx.connectors.lock(name)
    lag = (
        broker_guard.consumer_lag(ctx.settings).get(sink_group(name), {})
        if stored.role == "sink"
        else {}
    )
    return {
        "name": name,
        "type": stored.role,
        "connector": {
            "state": "RUNNING" if lock else "IDLE",
            "worker_id": lock.owner if lock else None,
            "since": lock.acquired_at.isoformat() if lock else None,
            "lock_expires": lock.expires_at.isoformat() if lock else None,
        },
        "runs": [
            {
                "id": r.id,
                "status": r.status,
                "started_at": r.started_at.isoformat(),
                "seconds": r.seconds,
                "rows_in": r.rows_in,
                "rows_out": r.rows_out,
                "dlq": r.dlq,
            }
            for r in list_runs(ctx.settings, kind=RUN_KIND, name=name, limit=runs)
        ],
        "positions": {
            table: {
                "status": p.status,
                "error": p.error,
                "rows": p.rows_total,
                "position": connector_positions.display(p.position),
                "updated_at": p.updated_at.isoformat(),
            }
            for table, p in ctx.connectors.positions(name).items()
        },
        "lag": lag,
        # a mode: log source's replication slot: retained WAL in bytes, a lost slot
        "log": slots.log_status(ctx, name),
    }
