"""API keys on requests: who is calling (401 without a live key), what its role allows (403,
written to the access log), how fast (429 with Retry-After past the key's rate)."""

from __future__ import annotations

import base64
import binascii
import math
import threading
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from fastapi import Depends, Request

from bus.api.errors import ApiError
from bus.api.request_log import mask_path
from bus.catalog import record_access
from bus.catalog.api_keys import KeyInfo, authenticate
from bus.context import Context


def key_of(request: Request) -> str | None:
    """The key sent as ``Authorization: Bearer KEY``, ``X-API-Key: KEY`` or HTTP Basic with
    the key as password (what Kafka tools' ``basic.auth.user.info`` sends)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return request.headers.get("x-api-key")


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests, refilled evenly."""

    def __init__(self, per_minute: int) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(per_minute)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def wait_s(self, key_id: str) -> float:
        """0 if the request may go now (and it is counted), else the seconds to wait."""
        now = time.monotonic()
        with self._lock:
            tokens, at = self._buckets.get(key_id, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - at) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate


def context(request: Request) -> Context:
    """The server's context, the hierarchy in force re-read now and then (``Context.current``)."""
    ctx = request.app.state.ctx = request.app.state.ctx.current()
    return ctx


def caller(request: Request, ctx: Context = Depends(context)) -> KeyInfo:
    """The live key of the request; 401 without one, 429 past its rate."""
    key = authenticate(ctx.settings, key_of(request) or "")
    if key is None:
        raise ApiError(
            401,
            "a live API key is required (Authorization: Bearer KEY); see lgsp agency key create",
            headers={"WWW-Authenticate": 'Bearer realm="lgsp", Basic realm="lgsp"'},
        )
    wait = request.app.state.limiter.wait_s(key.id)
    if wait > 0:
        raise ApiError(
            429,
            f"rate limit of {ctx.settings.api.rate_per_minute} requests per minute reached",
            headers={"Retry-After": str(math.ceil(wait))},
        )
    request.state.key = key
    return key


def principal(key: KeyInfo) -> str:
    """The access log's principal for a key: ``api-key:<id>``."""
    return f"api-key:{key.id}"


def header_text(value: str | None, errors: str = "strict") -> str:
    """A header's text: UTF-8 sent raw (``curl -H``) or percent-encoded (``Thanh%20tra``);
    ``errors`` as for ``urllib.parse.unquote`` (``strict``: ``UnicodeDecodeError``)."""
    if not value:
        return ""
    try:
        value = value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    return urllib.parse.unquote(value, errors=errors).strip()


def log_refusal(
    ctx: Context, request: Request, key: KeyInfo, area: str, why: str, purpose: str = ""
) -> None:
    """Write a refused call to the access log (action ``refused``, the path without keys)."""
    path = mask_path(request.url.path)
    detail = {"method": request.method, "path": path, "role": key.role, "why": why}
    log_call(ctx, key, area, "refused", detail, purpose=purpose)


def log_call(
    ctx: Context,
    key: KeyInfo,
    dataset: str,
    action: str,
    detail: dict[str, Any],
    *,
    purpose: str = "",
    records: int = 0,
) -> None:
    """One access-log entry for a call made with ``key``: its principal and agency."""
    record_access(
        ctx.settings,
        principal=principal(key),
        agency=key.agency,
        dataset=dataset,
        purpose=purpose,
        records=records,
        action=action,
        detail=detail,
    )


def refuse(ctx: Context, request: Request, key: KeyInfo, area: str, why: str) -> ApiError:
    """Write the refusal to the access log and return the 403 to raise."""
    log_refusal(ctx, request, key, area, why)
    return ApiError(403, f"{why} (key {key.id}, role {key.role})")


def allow(area: str, *roles: str) -> Callable[..., KeyInfo]:
    """A dependency: the caller's key, if its role is one of ``roles`` (else 403, logged)."""

    def check(
        request: Request, key: KeyInfo = Depends(caller), ctx: Context = Depends(context)
    ) -> KeyInfo:
        if key.role not in roles:
            raise refuse(ctx, request, key, area, f"{area}: needs role {' or '.join(roles)}")
        return key

    return check
