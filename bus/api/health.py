"""``/healthz`` (the process answers) and ``/readyz`` (the control DB and the broker answer)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from bus import broker
from bus.api.auth import context
from bus.context import Context
from bus.db import session_scope
from bus.errors import LgspError

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(ctx: Context = Depends(context)) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with session_scope(ctx.settings) as s:
            s.execute(text("SELECT 1"))
        checks["control_db"] = "ok"
    except (LgspError, OSError, Exception) as exc:
        checks["control_db"] = f"down ({type(exc).__name__})"
    state = broker.status(ctx.settings)
    checks["broker"] = "ok" if state.answering else f"down ({state.detail or 'no answer'})"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )
