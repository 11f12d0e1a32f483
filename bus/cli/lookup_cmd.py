"""``lgsp lookup``: the current-state stores behind the once-only lookup API."""

from __future__ import annotations

import click

from bus.cli._common import context, follow_options, only_with_follow
from bus.cli.connector_cmd import run_reported


@click.group("lookup")
def lookup_group() -> None:
    """Current-state stores of datasets, read by GET /v1/datasets/NAME/records/KEY."""


@lookup_group.command("sync")
@click.argument("dataset")
@follow_options("Keep the store current: consume the city topic continuously", "record")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def sync_cmd(dataset: str, follow: bool, idle_exit: float | None, as_json: bool) -> None:
    """Bring DATASET's store up to its city topic (registering its sink connector
    lookup-<dataset> on first use): upserts by key, deletes what was deleted."""
    from bus.lookup.store import ensure_store, sync

    only_with_follow(follow, {"--idle-exit": idle_exit})
    ctx = context()
    made = ensure_store(ctx, dataset)
    if made is not None:
        click.echo(
            f"registered connector {made.name} (table {made.tables[0].table}, "
            f"topic {made.tables[0].topic})",
            err=True,
        )
    run_reported(
        lambda progress, follower: sync(ctx, dataset, progress=progress, follow=follower),
        follow=follow,
        idle_exit=idle_exit,
        as_json=as_json,
    )
