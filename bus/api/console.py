"""The web console's files at ``/console/``: static HTML, CSS and JavaScript modules shipped in
the package (``bus/console/static``), no CDN. The pages call the same JSON API with the key the
login form keeps in the browser's sessionStorage; no business rule lives here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

STATIC = Path(__file__).resolve().parent.parent / "console" / "static"
# the browser itself refuses anything from another host, inline scripts, frames and plugins
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """The console's files with the headers above."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(HEADERS)
        return response


def mount(app: FastAPI) -> None:
    """Serve the console under ``/console`` (``/console`` itself redirects to ``/console/``)."""
    app.mount("/console", ConsoleFiles(directory=STATIC, html=True), name="console")
