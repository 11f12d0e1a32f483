"""``lgsp serve``: the HTTP API on uvicorn."""

from __future__ import annotations

import signal

import click

from bus.cli._common import context
from bus.context import Context


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on [default: api.host, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="[default: api.port, 8088]."
)
def serve(host: str | None, port: int | None) -> None:
    """Serve the HTTP API and the web console (/console/).

    The API: schema registry, connectors, catalogue and grants, auditor API, dead letters,
    overview, on-time report, health and metrics.

    Runs until SIGTERM or Ctrl-C; a stop lets the requests in hand finish (30 s at most)."""
    ctx = context()
    run_server(ctx, host or ctx.settings.api.host, port or ctx.settings.api.port)


def run_server(ctx: Context, host: str, port: int) -> None:
    """Serve the API (and the console) until SIGTERM or Ctrl-C."""
    import uvicorn

    from bus.api import request_log
    from bus.api.app import create_app

    config = uvicorn.Config(
        create_app(ctx),
        host=host,
        port=port,
        log_level="info",
        access_log=True,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    request_log.install()  # after uvicorn.Config, which sets up its loggers
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again to the handler
    # it found: with these, the process ends with exit 0 after a graceful stop
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    uvicorn.Server(config).run()
