"""Connectors in the shape of Kafka Connect's REST API where it fits: list, get (secrets
masked), validate, create, delete, status, one run, reset. Operator role; auditors may read.

Validation and registration are ``bus.connector_service.registration``'s ``register`` and
``unregister`` (what ``lgsp connector add`` and ``remove`` call); both refresh the Airflow
manifest.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from bus.api.auth import allow, context
from bus.api.errors import ApiError, field_errors
from bus.catalog.api_keys import KeyInfo
from bus.connector_service.locks import release_seen_lock
from bus.connector_service.registration import register, unregister
from bus.connector_service.reset import reset_connector
from bus.connector_service.status import connector_status
from bus.context import Context
from bus.sync import run as run_sync
from connectors import plugins as connector_types
from connectors.config import file_mapping
from connectors.config import parse_text as read_text
from connectors.errors import ConnectorConfigError, FieldError

router = APIRouter(prefix="/connectors", tags=["connectors"])
read = allow("connectors", "operator", "auditor")
write = allow("connectors", "operator")
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
FILE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The connector file (the YAML of 'lgsp connector add'), as a JSON object "
        "or as the YAML text itself (Content-Type: application/yaml).",
        "content": {
            "application/json": {
                "schema": {"type": "object"},
                "example": {"name": "src-ward", "type": "postgresql", "role": "source"},
            },
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}


async def connector_file(request: Request) -> dict[str, Any]:
    """The request's connector file: YAML text (by its Content-Type) or a JSON object, read by
    the same parser as ``lgsp connector add FILE``."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConnectorConfigError([FieldError("file", "expected UTF-8 text")]) from exc
    if media in YAML_TYPES:
        return read_text(text)
    if media in ("", "application/json"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConnectorConfigError([FieldError("file", "not valid JSON")]) from exc
        return file_mapping(data)
    raise ApiError(
        415, f"Content-Type: expected application/json or application/yaml, got {media or 'none'}"
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
    the records not yet applied per topic: ``connector_status``, as ``lgsp connector status``."""
    return connector_status(ctx, name, runs)


@router.post("/validate", openapi_extra=FILE_BODY)
async def validate(
    request: Request,
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, Any]:
    """What ``lgsp connector add --dry-run`` says: every field error, or the registration
    plan (connection, tables, topics, schemas); nothing is stored."""
    try:
        data = await connector_file(request)
        result = await run_in_threadpool(register, ctx.settings, data, dry_run=True)
    except ConnectorConfigError as exc:
        return {
            "name": exc.name,
            "error_count": len(exc.errors),
            "errors": field_errors(exc.errors),
        }
    return {"name": result.name, "error_count": 0, "errors": [], "plan": result.to_dict()}


@router.post("", status_code=201, openapi_extra=FILE_BODY)
def create(
    data: dict[str, Any] = Depends(connector_file),
    replace: bool = Query(False),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, Any]:
    """Register a connector (as ``lgsp connector add``); 422 with per-field errors."""
    return register(ctx, data, replace=replace).to_dict()


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
    return {"name": name, "forgotten": reset_connector(ctx.settings, name, table)}


@router.delete("/{name}/lock")
def unlock(
    name: str,
    owner: str = Query(
        ..., min_length=1, description="The holder shown by /status (connector.worker_id)."
    ),
    ctx: Context = Depends(context),
    _: KeyInfo = Depends(write),
) -> dict[str, Any]:
    """Release the run lock a crashed run left (as ``lgsp connector unlock``): only if
    ``owner`` still holds it (409 otherwise); a live run whose lock goes stops at a later batch."""
    held = release_seen_lock(ctx.connectors, name, owner)
    return {"name": name, "released": held.owner if held else None}
