"""``/me`` (who the key is: what the console shows after its login) and ``/overview`` (each
dataset's topic tree with its figures, from ``bus.connector_service.overview``). Any live key."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends

from bus.api.auth import caller, context
from bus.catalog.api_keys import KeyInfo
from bus.connector_service.overview import overview, overview_dict
from bus.context import Context

router = APIRouter(tags=["overview"])


@router.get("/me")
def me(key: KeyInfo = Depends(caller)) -> dict[str, Any]:
    """The calling key: id, agency, role, expiry (never the secret)."""
    return key.to_dict()


@router.get("/overview")
def get_overview(ctx: Context = Depends(context), _: KeyInfo = Depends(caller)) -> dict[str, Any]:
    """Per dataset, the ward → district → city topics with records published, events archived
    in the last 24 h, consumer lag per group, dead letters, the last run, and ``stuck``: the
    reasons a node needs attention (empty when none)."""
    now = dt.datetime.now(dt.UTC)
    return overview_dict(overview(ctx, now=now), now)
