"""``lgsp serve``: the HTTP API on uvicorn."""

from __future__ import annotations

import signal

import click

from bus.cli._common import context


@click.command("serve")
@click.option("--host", default=None, help="Address to listen on [default: api.host, 127.0.0.1].")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="[default: api.port, 8088]."
)
def serve(host: str | None, port: int | None) -> None:
    """Serve the HTTP API: schema registry, connectors, health and metrics.

    Runs until SIGTERM or Ctrl-C; a stop lets the requests in hand finish (30 s at most)."""
    import uvicorn

    from bus.api.app import create_app
    from bus.api.request_log import mask_access_log

    ctx = context()
    config = uvicorn.Config(
        create_app(ctx),
        host=host or ctx.settings.api.host,
        port=port or ctx.settings.api.port,
        log_level="info",
        access_log=True,
        timeout_graceful_shutdown=30,
        server_header=False,
    )
    mask_access_log()  # after uvicorn configured its loggers: record keys never logged
    # uvicorn stops gracefully on SIGTERM/SIGINT, then raises the signal again to the handler
    # it found: with these, the process ends with exit 0 after a graceful stop
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda *_: None)
    uvicorn.Server(config).run()
