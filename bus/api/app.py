"""The app factory: one FastAPI app around one process ``Context``."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bus.api import (
    audit,
    catalog,
    connectors,
    console,
    dlq,
    health,
    lookup,
    metrics,
    overview,
    registry,
    reports,
)
from bus.api.auth import RateLimiter
from bus.api.errors import (
    ApiError,
    on_api_error,
    on_bus_error,
    on_validation_error,
    response,
)
from bus.context import Context
from bus.errors import LgspError


class BodyLimit:
    """Reads a request's body up to ``limit`` bytes; a larger one gets 413 before any route
    sees it (announced by Content-Length or not)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.limit
        chunks: list[bytes] = []
        size = 0
        while not too_big:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            too_big = size > self.limit
            if not message.get("more_body", False):
                break
        if too_big:
            err = ApiError(413, f"request body larger than {self.limit} bytes")
            await response(err)(scope, receive, send)
            return
        body, sent = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def create_app(ctx: Context) -> FastAPI:
    app = FastAPI(
        title="LGSP bus",
        version="1",
        description="Schema registry (Confluent-compatible), connectors (Kafka Connect shape), "
        "dead letters, the overview, the on-time report, health and metrics of the LGSP bus; "
        "the web console at /console/. Send an agency's key as "
        "'Authorization: Bearer KEY'.",
    )
    app.state.ctx = ctx
    app.state.limiter = RateLimiter(ctx.settings.api.rate_per_minute)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(LgspError, on_bus_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    routers = (health, registry, connectors, catalog, audit, lookup, metrics, overview, dlq)
    for module in (*routers, reports):
        app.include_router(module.router)
    console.mount(app)
    metrics.instrument(app)
    app.add_middleware(BodyLimit, limit=ctx.settings.api.max_body_bytes)
    return app
