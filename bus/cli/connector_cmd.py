"""``lgsp connector add|list|show|status|check|remove|run|reset|snapshot|unlock|types``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bus.cli._common import (
    confirm,
    context,
    echo_json,
    echo_table,
    follow_options,
    only_with_follow,
    settings,
)
from bus.errors import FatalError
from bus.longrun import Follow, stop_signals

if TYPE_CHECKING:
    from bus.connector_service.registration import Registration
    from bus.sync import SyncReport, TableReport

# Each command imports what it uses: `lgsp connector list` need not load the sync engine,
# the Kafka client or every connector type (start-up, issue 14).


@click.group("connector")
def connector_group() -> None:
    """Connectors: attach a departmental database or API to the bus from one YAML file."""


HARD_DELETES = (
    "rows deleted from the table (DELETE) are invisible to polling: their copies stay in "
    "every sink; give it a soft-delete column (deleted_flag), or set 'reconcile: repair' on "
    "the table so that its scheduled reconciliation publishes the deletes"
)

_json = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


def _print_registration(result: Registration) -> None:
    click.echo(
        f"connector {result.name}: {result.type} {result.role}, agency {result.agency}, "
        f"unit {result.unit}"
    )
    click.echo(f"connection {result.connection}: ok ({result.connect_seconds:.2f} s)")
    if result.role == "source":
        rows = [
            (
                t.table,
                t.mode or "",
                t.cursor or "",
                ",".join(t.key) or "(none)",
                len(t.columns),
                t.topic,
                t.schema,
            )
            for t in result.tables
        ]
        echo_table(["TABLE", "MODE", "CURSOR", "KEY", "COLUMNS", "PUBLISHES TO", "SCHEMA"], rows)
        for t in result.tables:
            if not t.deleted_flag and t.mode != "log":  # the log sees hard deletes
                click.echo(f"note: {t.table}: {HARD_DELETES}", err=True)
    else:
        rows = [
            (t.table, ",".join(t.key) or "", t.topic, t.schema, "; ".join(t.actions) or "-")
            for t in result.tables
        ]
        echo_table(["TABLE", "KEY", "READS", "SCHEMA", "FIRST RUN WILL"], rows)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


@connector_group.command("add")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Check everything, store nothing.")
@click.option("--replace", is_flag=True, help="Update a connector of the same name.")
@_json
def add(file: Path, dry_run: bool, replace: bool, as_json: bool) -> None:
    """Validate FILE, connect, discover tables, check schemas, show topics, and store it."""
    from bus.connector_service.registration import register
    from connectors.config import read_file

    result = register(
        settings(),
        read_file(file),
        dry_run=dry_run,
        replace=replace,
        base_dir=file.resolve().parent,
    )
    if as_json:
        echo_json(result.to_dict())
        return
    _print_registration(result)
    if dry_run:
        click.echo("dry run: nothing stored")
    else:
        verb = "updated" if result.replaced else "registered"
        click.echo(f"{verb} connector {result.name}")


@connector_group.command("list")
@_json
def list_cmd(as_json: bool) -> None:
    """Registered connectors."""
    items = context().connectors.list()
    if as_json:
        echo_json(
            [
                {
                    "name": c.name,
                    "type": c.type,
                    "role": c.role,
                    "agency": c.agency,
                    "unit": c.unit,
                    "topics": c.topics,
                }
                for c in items
            ]
        )
        return
    echo_table(
        ["NAME", "TYPE", "ROLE", "AGENCY", "UNIT", "TABLES", "UPDATED"],
        [
            (
                c.name,
                c.type,
                c.role,
                c.agency,
                c.unit,
                len(c.topics),
                c.updated_at.strftime("%Y-%m-%d %H:%M"),
            )
            for c in items
        ],
    )


@connector_group.command("show")
@click.argument("name")
@_json
def show(name: str, as_json: bool) -> None:
    """A connector's file (secrets masked), topics and per-table positions.

    A position shows its cursor value and a short digest of the last row's key
    (``key sha256:1a2b3c4d``), never the key values themselves: they may be personal data
    such as a citizen ID. The control database keeps the full position (table
    ``connector_position``); ``lgsp connector reset`` forgets it.
    """
    import yaml

    from bus.connector_service import slots
    from bus.connector_service.status import connector_status
    from connectors import plugins as connector_types
    from connectors import positions as connector_positions

    ctx = context()
    store = ctx.connectors
    stored = store.get(name)
    config = connector_types.validate(stored.config)
    if as_json:
        status = connector_status(ctx, name)  # its replication slot's status included
        running = status["connector"]
        echo_json(
            {
                "config": config.masked(),
                "log": status["log"],
                "topics": stored.topics,
                "running": None
                if running["state"] == "IDLE"
                else {
                    "owner": running["worker_id"],
                    "since": running["since"],
                    "lock_expires": running["lock_expires"],
                },
                "positions": status["positions"],
            }
        )
        return
    positions = store.positions(name)
    lock = store.lock(name)
    click.echo(yaml.safe_dump(config.masked(), allow_unicode=True, sort_keys=False).rstrip())
    click.echo("")
    rows = []
    for table, topic in stored.topics.items():
        p = positions.get(table)
        rows.append(
            (
                table,
                topic,
                p.status if p else "never run",
                p.rows_total if p else 0,
                connector_positions.describe(p.position) if p else "",
                p.updated_at.strftime("%Y-%m-%d %H:%M:%S") if p else "",
                (p.error or "") if p else "",
            )
        )
    echo_table(["TABLE", "TOPIC", "STATUS", "ROWS", "POSITION", "UPDATED", "ERROR"], rows)
    log_status = slots.log_status(ctx, name)
    if log_status is not None:
        _print_log_status(log_status)
    if lock is not None:
        click.echo(
            f"running since {lock.acquired_at:%Y-%m-%d %H:%M:%S} UTC ({lock.owner}); "
            f"lock expires {lock.expires_at:%Y-%m-%d %H:%M:%S} UTC unless extended"
        )


@connector_group.command("status")
@click.argument("name")
@click.option(
    "--runs",
    type=click.IntRange(1, 100),
    default=5,
    show_default=True,
    help="How many of the last runs to show.",
)
@_json
def status(name: str, runs: int, as_json: bool) -> None:
    """Running or not (the run lock's holder), the last runs, per-table positions and, for a
    sink, the records not yet applied per topic (as GET /connectors/NAME/status)."""
    from bus.connector_service.status import connector_status
    from connectors import positions as connector_positions

    answer = connector_status(context(), name, runs)
    if as_json:
        echo_json(answer)
        return
    state = answer["connector"]
    held = f" by {state['worker_id']} since {state['since']}" if state["worker_id"] else ""
    click.echo(f"connector {name} ({answer['type']}): {state['state']}{held}")
    echo_table(
        ["TABLE", "STATUS", "ROWS", "POSITION", "ERROR"],
        [
            (
                table,
                p["status"],
                p["rows"],
                connector_positions.summarize(p["position"]),
                p["error"] or "",
            )
            for table, p in answer["positions"].items()
        ],
    )
    echo_table(
        ["RUN", "STATUS", "STARTED", "SECONDS", "ROWS IN", "ROWS OUT", "DLQ"],
        [
            (
                r["id"],
                r["status"],
                r["started_at"],
                "" if r["seconds"] is None else f"{r['seconds']:.2f}",
                r["rows_in"],
                r["rows_out"],
                r["dlq"],
            )
            for r in answer["runs"]
        ],
    )
    for topic, behind in answer["lag"].items():
        click.echo(f"lag {topic}: {behind} record(s) not yet applied")
    if answer["log"] is not None:
        _print_log_status(answer["log"])


def _print_log_status(status: dict[str, Any]) -> None:
    if "error" in status:
        click.echo(f"replication slot: cannot be read ({status['error']})")
        return
    if status.get("kind") == "binlog":  # MariaDB/MySQL: the server's binlog
        click.echo(
            f"binlog: server at {status['file']}:{status['position']}"
            + (f" (GTID {status['gtid']})" if status.get("gtid") else "")
            + f", keeps {status['files']} file(s) from {status['oldest_file']}, "
            f"{status['bytes']} bytes; each table's position is shown above"
        )
        _print_log_limits(status)
        return
    retained = status.get("retained_wal_bytes")
    click.echo(
        f"replication slot {status['slot']} (publication {status['publication']}): "
        + (
            f"{status['wal_status']}, {'active' if status['active'] else 'idle'}, "
            f"confirmed up to {status['confirmed_flush_lsn']}, retains {retained} bytes of WAL"
            if status["exists"]
            else "not created yet"
        )
    )
    _print_log_limits(status)


def _print_log_limits(status: dict[str, Any]) -> None:
    """How far the log source is behind, its ``log:`` limits and their warnings
    (``connectors.sql.loglimit``), and a problem with the command that fixes it."""
    from connectors.sql.loglimit import format_bytes, format_seconds

    behind, seconds = status.get("behind_bytes"), status.get("behind_seconds")
    if status.get("kind") == "binlog" and behind is not None:
        click.echo(
            f"behind: {format_bytes(behind)} ({behind} bytes) of binlog not yet read, from "
            f"{status['read_file']}:{status['read_position']}"
            + (f"; last change read {format_seconds(seconds)} ago" if seconds else "")
        )
    limits = status.get("limits")
    if limits:
        shown = [
            f"{what} {text}"
            for what, value, text in (
                ("warn at", limits["warn_bytes"], format_bytes(limits["warn_bytes"] or 0)),
                ("warn at", limits["warn_time_s"], format_seconds(limits["warn_time_s"] or 0)),
                ("stop at", limits["max_bytes"], format_bytes(limits["max_bytes"] or 0)),
            )
            if value is not None
        ]
        click.echo("limits (log:): " + ", ".join(shown))
    if status.get("over_limit"):
        click.echo(
            f"warning: {status['over_limit']}: the next run or check drops the slot", err=True
        )
    for warning in status.get("warnings") or []:
        click.echo(f"warning: {warning}", err=True)
    if status.get("problem"):
        click.echo(f"warning: {status['problem']}", err=True)


@connector_group.command("unlock")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def unlock(name: str, yes: bool) -> None:
    """Release the run lock a crashed run left behind (it also expires by itself).

    Only for a run that is gone: a live run whose lock is removed stops at a later batch.
    """
    from bus.connector_service.locks import release_seen_lock

    store = context().connectors
    store.get(name)
    held = store.lock(name)
    if held is None:
        click.echo(f"connector {name}: no run lock held")
        return
    confirm(
        f"release the lock of connector {name} held by {held.owner} since "
        f"{held.acquired_at:%Y-%m-%d %H:%M:%S} UTC?",
        yes=yes,
    )
    release_seen_lock(store, name, held.owner)  # the holder shown, not one that came since
    click.echo(f"connector {name}: run lock of {held.owner} released")


@connector_group.command("check")
@click.argument("name")
def check(name: str) -> None:
    """Connect and discover the tables of a registered connector (changes nothing), and judge a
    log-based source against its ``log:`` limits: past the hard limit (PostgreSQL
    ``log.max_bytes``) the slot is dropped, the tables stop and the command exits non-zero."""
    from bus.connector_service.log_guard import guard
    from bus.sync import connector_for

    ctx = context()
    connector = connector_for(ctx, name)
    with connector:
        connector.check()
        streams = connector.discover()
        guarded = guard(ctx.connectors, connector)
    click.echo(f"connector {name}: connection ok, {len(streams)} table(s) found")
    for stream in streams:
        for warning in stream.warnings:
            click.echo(f"warning: {warning}", err=True)
    # a stop kept in a position (mode: log: a TRUNCATE, an incompatible schema change)
    for table, pos in sorted(ctx.connectors.positions(name).items()):
        halt = (pos.position or {}).get("halt")
        if halt:
            click.echo(f"table {table} stopped: {halt}")
    if guarded.stopped is not None:
        raise FatalError(f"connector {name}: log tables stopped: {guarded.stopped}")
    if guarded.status is not None:
        _print_log_status(guarded.status)


@connector_group.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--keep-slot",
    is_flag=True,
    help="mode: log: keep the replication slot and publication on the database server.",
)
def remove(name: str, yes: bool, keep_slot: bool) -> None:
    """Forget a connector and its positions (its topics and schemas stay). A log-based
    source's replication slot and publication are dropped too, unless --keep-slot (a slot
    nobody reads keeps the server's WAL without bound)."""
    from bus.connector_service.registration import unregister

    ctx = context()
    ctx.connectors.get(name)
    confirm(f"remove connector {name} and its positions?", yes=yes)
    dropped = unregister(ctx.settings, name, keep_slot=keep_slot)
    if dropped is not None:
        kept = dropped.get("publication_kept", False)
        gone = [
            f"{what} {dropped[what]}"
            for what, there in (("slot", "exists"), ("publication", "publication_exists"))
            if dropped[there] and not (what == "publication" and kept)
        ]
        click.echo(f"dropped {' and '.join(gone)}" if gone else "no slot or publication to drop")
        if kept:
            click.echo(f"publication {dropped['publication']} is owned by another role: left to it")
    click.echo(f"removed connector {name}")


@connector_group.command("reset")
@click.argument("name")
@click.option("--table", "table", default=None, help="Only this table.")
def reset(name: str, table: str | None) -> None:
    """Forget positions so that the next run reads from the start (a sink's committed
    offsets too); refused while a run of the connector holds its lock."""
    from bus.connector_service.reset import reset_connector

    count = reset_connector(settings(), name, table)
    click.echo(f"connector {name}: {count} position(s) forgotten")


@connector_group.command("snapshot")
@click.argument("name")
@click.option("--table", "table", default=None, help="Only this table.")
@click.option("--run", "run_now", is_flag=True, help="Run the connector now to perform it.")
def snapshot(name: str, table: str | None, run_now: bool) -> None:
    """Re-snapshot a log source's tables (mode: log) while its stream goes on: the next run
    reads them in primary-key chunks between its changes, resumes after the last finished
    chunk if it is stopped, and never publishes a row older than a change it published."""
    from bus.connector_service.resnapshot import request_snapshot
    from bus.sync import run as run_sync

    done = request_snapshot(settings(), name, table)
    for item in done:
        if not item.requested:
            click.echo(f"table {item.table}: not read yet: its next run snapshots it whole")
        elif item.restarted:
            click.echo(f"table {item.table}: chunked snapshot under way restarted from chunk 1")
        else:
            click.echo(f"table {item.table}: chunked snapshot requested")
    if not run_now:
        click.echo(f"the next run performs it: lgsp connector run {name}")
        return
    run_reported(lambda progress, _: run_sync(context(), name, progress=progress))


class _Progress:
    """One updating line per table on a terminal; nothing when output is not a terminal. A
    followed run says at once when a table stops (the others go on; the run's end says it
    again), a bounded run only at its end."""

    def __init__(self, follow: bool = False) -> None:
        self.enabled = sys.stderr.isatty()
        self.current: str | None = None
        self.follow = follow
        self.announced: set[str] = set()

    def __call__(self, tr: TableReport) -> None:
        if self.follow and tr.status == "stopped" and tr.table not in self.announced:
            self.announced.add(tr.table)
            self.done()
            self.current = None
            click.echo(
                f"warning: table {tr.table} stopped: {tr.error} (the other tables go on)",
                err=True,
            )
            return
        if not self.enabled:
            return
        if self.current not in (None, tr.table):
            click.echo("", err=True)
        self.current = tr.table
        click.echo(
            f"\r{tr.table}: {tr.rows} rows, {tr.batches} batches, {tr.dlq} DLQ", nl=False, err=True
        )

    def done(self) -> None:
        if self.enabled and self.current is not None:
            click.echo("", err=True)


def _print_summary(report: SyncReport) -> None:
    echo_table(
        ["TABLE", "TOPIC", "ROWS", "BATCHES", "DLQ", "STATUS"],
        [(t.table, t.topic, t.rows, t.batches, t.dlq, t.status) for t in report.tables],
    )
    click.echo(
        f"{report.connector}: rows {report.rows}, batches {report.batches}, DLQ {report.dlq}, "
        f"time {report.seconds:.2f} s (run {report.run_id})"
    )
    for t in report.tables:
        for topic, n in sorted(t.moved.items()):
            click.echo(f"{t.table}: {n} dated after a change that ended the unit, into {topic}")
        for warning in t.warnings:
            click.echo(f"warning: {t.table}: {warning}", err=True)


@connector_group.command("run")
@click.argument("name")
@click.option("--table", "tables", multiple=True, help="Only these tables (repeatable).")
@follow_options(
    "Keep going: a sink consumes continuously, a source reads again once caught up", "row"
)
@click.option(
    "--poll",
    type=click.FloatRange(min=0.1),
    default=None,
    metavar="SECONDS",
    help="With --follow: how long a caught-up source waits before reading again "
    f"[default: {Follow.poll_s:g}].",
)
@_json
def run(
    name: str,
    tables: tuple[str, ...],
    follow: bool,
    idle_exit: float | None,
    poll: float | None,
    as_json: bool,
) -> None:
    """One sync run: a source publishes its changes, a sink applies its topics."""
    from bus.sync import run as run_sync

    only_with_follow(follow, {"--idle-exit": idle_exit, "--poll": poll})
    run_reported(
        lambda progress, follower: run_sync(
            context(), name, tables=list(tables) or None, progress=progress, follow=follower
        ),
        follow=follow,
        idle_exit=idle_exit,
        poll=poll,
        as_json=as_json,
    )


def run_reported(
    run: Callable[[_Progress, Follow | None], SyncReport],
    *,
    follow: bool = False,
    idle_exit: float | None = None,
    poll: float | None = None,
    as_json: bool = False,
) -> None:
    """``run`` (a sync run, given its progress line and its follow) once, or with ``follow``
    until a stop signal or ``idle_exit``; then its summary (``as_json``: its report as JSON),
    and a stopped run's error."""
    progress = _Progress(follow)
    try:
        with stop_signals() if follow else nullcontext(None) as stop:
            report = run(progress, _follow(stop, idle_exit, poll) if stop is not None else None)
    finally:
        progress.done()
    if as_json:
        echo_json(report.to_dict())
    else:
        _print_summary(report)
    report.raise_if_stopped()


@connector_group.command("types")
def types() -> None:
    """Installed connector types and what they can do."""
    from connectors import plugins as connector_types

    rows = []
    for name in connector_types.known_types():
        cls = connector_types.connector_class(name)
        roles = "/".join(r for r, ok in (("source", cls.can_source), ("sink", cls.can_sink)) if ok)
        flags = [
            flag
            for flag in ("supports_incremental", "supports_soft_delete", "supports_upsert")
            if getattr(cls, flag)
        ]
        rows.append((name, f"{cls.__module__}:{cls.__name__}", roles, ", ".join(flags)))
    echo_table(["TYPE", "CLASS", "ROLES", "CAPABILITIES"], rows)


def _follow(stop: Callable[[], bool], idle_exit: float | None, poll: float | None) -> Follow:
    follow = Follow(should_stop=stop, idle_exit_s=idle_exit)
    if poll is not None:
        follow.poll_s = poll
    return follow
