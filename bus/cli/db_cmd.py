"""``lgsp db upgrade``: bring the control database to the newest schema."""

from __future__ import annotations

import click

from bus.cli._common import settings
from bus.config import mask_url


@click.group("db")
def db_group() -> None:
    """The control database (registry, connectors, catalogue, archive, runs)."""


@db_group.command("upgrade")
def upgrade() -> None:
    """Run every Alembic migration not applied yet (idempotent)."""
    from bus.db.engine import open_engine

    s = settings()
    open_engine(s)
    click.echo(f"control database {mask_url(s.control_database_url)} is up to date")
