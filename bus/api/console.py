"""The web console's files at ``/console/``: static HTML, CSS and JavaScript modules shipped in
the package (``bus/console/static``), no CDN. The pages call the same JSON API with the key the
login form keeps in the browser's sessionStorage; no business rule lives here."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent.parent / "console" / "static"


def mount(app: FastAPI) -> None:
    """Serve the console under ``/console`` (``/console`` itself redirects to ``/console/``)."""
    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")
