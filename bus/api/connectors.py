"""Connectors in the shape of Kafka Connect's REST API where it fits: list, get (secrets
masked), validate, create, delete, status, one run, reset. Operator role; auditors may read.

Validation and registration are ``bus.connector_service.registration``'s ``register`` and
``unregister`` (what ``lgsp connector add`` and ``remove`` call); both refresh the Airflow
manifest.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Response

from bus import broker_guard
from bus.api.auth import allow, context
from bus.api.errors import field_errors
from bus.catalog.api_keys import KeyInfo
from bus.connector_service import slots
from bus.connector_service.registration import register, unregister
from bus.context import Context
from bus.runs import list_runs
from bus.sync import run as run_sync
from bus.sync import sink_group
from connectors import plugins as connector_types
from connectors import positions as connector_positions
from connectors.errors import ConnectorConfigError

router = APIRouter(prefix="/connectors", tags=["connectors"])
read = allow("connectors", "operator", "auditor")
write = allow("connectors", "operator")
ConnectorFile = Body(
    ...,
    description="The connector file (the YAML of 'lgsp connector add') as a JSON object.",
    examples=[{"name": "src-ward", "type": "postgresql", "role": "source", "...": "..."}],
)


@router.get("")
def list_connectors(ctx: Context = Depends(context), _: KeyInfo = Depends(read)) -> list[str]:
    return [c.name for c in ctx.connectors.list()]


@router.get("/{name}")
def get_connector(
    name: str, ctx: Context = Depends(context), _: KeyInfo = Depends(read)
) -> dict[str, Any]:
    stored = ctx.connectors.get(name)
    config = connector_types.validate(stored.config)
    return {
        "name": stored.name,
        "type": stored.role,
        "plugin": stored.type,
        "agency": stored.agency,
        "unit": stored.unit,
        "config": config.masked(),
        "topics": stored.topics,
        "tasks": [],
    }


@router.get("/{name}/status")
def status(
    name: str,
    runs: int = Query(5, ge=1, le=100),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(read),
) -> dict[str, Any]:
    """Running or not (the run lock's holder), last runs, per-table positions, and for a sink
    the records not yet applied per topic."""
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
            for r in list_runs(ctx.settings, name=name, limit=runs)
        ],
        "positions": {
            table: {
                "status": p.status,
                "error": p.error,
                "rows": p.rows_total,
                "position": connector_positions.display(p.position),
            }
            for table, p in ctx.connectors.positions(name).items()
        },
        "lag": lag,
        # a mode: log source's replication slot: retained WAL in bytes, a lost slot
        "log": slots.log_status(ctx, name),
    }


@router.post("/validate")
def validate(
    data: dict[str, Any] = ConnectorFile,
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, Any]:
    """What ``lgsp connector add --dry-run`` says: every field error, or the registration
    plan (connection, tables, topics, schemas); nothing is stored."""
    try:
        result = register(ctx.settings, data, dry_run=True)
    except ConnectorConfigError as exc:
        return {
            "name": exc.name,
            "error_count": len(exc.errors),
            "errors": field_errors(exc.errors),
        }
    return {"name": result.name, "error_count": 0, "errors": [], "plan": result.to_dict()}


@router.post("", status_code=201)
def create(
    data: dict[str, Any] = ConnectorFile,
    replace: bool = Query(False),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, Any]:
    """Register a connector (as ``lgsp connector add``); 422 with per-field errors."""
    return register(ctx.settings, data, replace=replace).to_dict()


@router.delete("/{name}", status_code=204)
def delete(
    name: str,
    keep_slot: bool = Query(False),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> Response:
    """Remove a connector (as ``lgsp connector remove``; ``keep_slot`` as ``--keep-slot``)."""
    unregister(ctx.settings, name, keep_slot=keep_slot)
    return Response(status_code=204)


@router.post("/{name}/runs")
def run_once(
    name: str, ctx: Context = Depends(context), _: KeyInfo = Depends(write)
) -> dict[str, Any]:
    """One bounded sync run (as ``lgsp connector run``); 503 while another run holds the lock."""
    report = run_sync(ctx, name)
    report.raise_if_stopped()
    return report.to_dict()


@router.delete("/{name}/offsets")
def reset(
    name: str,
    table: str | None = Query(None),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, Any]:
    """Forget positions (all tables, or ``table``): the next run reads from the start."""
    ctx.connectors.get(name)
    return {"name": name, "forgotten": ctx.connectors.reset(name, table)}
