"""``lgsp archive run|status|export-key|export-checkpoints|log``, ``lgsp audit verify`` and
``lgsp replay``."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from bus.archive.access import list_access
from bus.archive.archiver import Archiver, ArchiveReport
from bus.archive.checkpoint import export_checkpoints, export_path
from bus.archive.replay import ReplayReport, replay_as_of, replay_events, require_purpose
from bus.archive.signing import load_public_key, load_signing_key, public_pem
from bus.archive.status import archive_status
from bus.archive.verify import VerifyReport, require_archived, verify
from bus.cli._common import F, context, echo_json, echo_table, settings
from bus.errors import ConfigurationError, FatalError
from bus.serde.jsoncodec import dumps
from bus.timeutil import as_utc, from_epoch_ms, parse_cli_time


def _ms(value: int | None) -> str:
    if value is None:
        return ""
    return from_epoch_ms(value).isoformat(timespec="seconds")


def _echo_run(report: ArchiveReport) -> None:
    click.echo(
        f"archived {report.appended} new event(s) from {len(report.topics)} topic(s) "
        f"(read {report.read}, already archived {report.skipped}, parked in DLQ {report.dlq})"
    )
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.checkpoint is not None:
        click.echo(
            f"checkpoint {report.checkpoint.n} signed {len(report.checkpoint.heads)} chain "
            f"head(s) with key id {report.checkpoint.key_id} (digest {report.checkpoint.digest})"
        )


def _echo_key_generated(path: str | None) -> None:
    if path:
        click.echo(
            f"no signing key was configured: generated a new Ed25519 key at {path}; give "
            "auditors its public key with 'lgsp archive export-key'",
            err=True,
        )


@click.group("archive")
def archive_group() -> None:
    """The auditors' archive: every event of the dataset topics, hash-chained and signed."""


@archive_group.command("run")
@click.option("--topics", "pattern", default=None, help="Glob(s) of topics, comma-separated.")
@click.option("--follow", is_flag=True, help="Keep archiving until interrupted.")
@click.option("--interval", type=float, default=2.0, show_default=True, help="Seconds (follow).")
@click.option(
    "--checkpoint-every",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between signed checkpoints (follow); bounded runs sign at the end.",
)
def archive_run(
    pattern: str | None, follow: bool, interval: float, checkpoint_every: float
) -> None:
    """Append new events of the dataset topics (DLQ topics excluded) to the archive."""
    archiver = Archiver(context())
    if follow:
        click.echo("archiving until interrupted (Ctrl-C)")
        total = archiver.follow(
            pattern,
            interval_s=interval,
            checkpoint_every_s=checkpoint_every,
            on_report=lambda r: _echo_run(r) if r.appended or r.notes else None,
        )
        click.echo(f"stopped: {total.appended} event(s) archived in this session")
        if total.checkpoint is not None:
            click.echo(f"last checkpoint {total.checkpoint.n} (digest {total.checkpoint.digest})")
        _echo_key_generated(total.key_generated)
        return
    report = archiver.run_once(pattern)
    _echo_run(report)
    _echo_key_generated(report.key_generated)


@archive_group.command("status")
@click.option("--dataset", default=None, help="Only this dataset (domain.name).")
def archive_status_cmd(dataset: str | None) -> None:
    """Chains (per topic-partition) with their heads, and the latest checkpoint."""
    s = settings()
    state = archive_status(s, dataset)
    echo_table(
        ["TOPIC", "PART", "EPOCH", "ENTRIES", "LAST OFFSET", "SIGNED", "UPDATED"],
        [
            (
                c.topic,
                c.partition,
                c.epoch,
                c.entries,
                c.last_offset,
                c.signed,
                _ms(c.updated_ms),
            )
            for c in state.chains
        ],
    )
    last = state.latest
    if last is None:
        click.echo("no checkpoint yet")
    else:
        click.echo(
            f"{state.checkpoints} checkpoint(s); latest {last.n} at {_ms(last.created_ms)} by "
            f"key id {last.key_id}, digest {last.digest}"
        )
    click.echo(
        f"signing key: {state.key_origin}, key id {state.key_id}"
        if state.key_id
        else "signing key: none"
    )
    click.echo(f"checkpoints exported to: {export_path(s)}")


@archive_group.command("export-key")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write to FILE.")
def archive_export_key(out: Path | None) -> None:
    """Print (or write) the public key that verifies the archive's checkpoints (PEM)."""
    key = load_signing_key(settings(), create=True)
    assert key is not None
    pem = public_pem(key.public)
    if key.generated:
        _echo_key_generated(str(key.path))
    if out is None:
        click.echo(pem, nl=False)
    else:
        out.write_text(pem, encoding="ascii")
        click.echo(f"public key (key id {key.key_id}) written to {out}")


@archive_group.command("export-checkpoints")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
def archive_export_checkpoints(file: Path) -> None:
    """Append to FILE the signed checkpoints it lacks (JSON lines; created if absent).

    The archiver does this itself on every checkpoint (checkpoint_export_file); use this to
    start a copy elsewhere or bring one up to date. A FILE whose last checkpoint the database
    no longer holds unchanged is refused: the archive was altered.
    """
    added = export_checkpoints(settings(), file)
    click.echo(f"appended {added} checkpoint(s) to {file}")


@archive_group.command("log")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--limit", type=int, default=50, show_default=True)
def archive_log(dataset: str | None, limit: int) -> None:
    """Who replayed what, when and why (newest first)."""
    rows = list_access(settings(), dataset, limit)

    def when(value: dt.datetime | None) -> str:
        return "" if value is None else as_utc(value).isoformat(timespec="seconds")

    echo_table(
        ["AT", "WHO", "ACTION", "DATASET", "RANGE", "RECORDS", "OUTCOME", "PURPOSE"],
        [
            (
                when(r.at),
                r.principal,
                r.action,
                r.dataset,
                f"as of {when(r.as_of)}" if r.as_of else f"{when(r.from_ts)}..{when(r.to_ts)}",
                r.records,
                r.outcome,
                r.purpose,
            )
            for r in rows
        ],
    )


def _check_options(command: F) -> F:
    """``--public-key`` and ``--checkpoints``: what ``audit verify`` and ``replay`` check the
    archive's chains and checkpoints against."""
    command = click.option(
        "--checkpoints",
        "checkpoints_file",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="An off-host copy of the exported checkpoints (JSON lines) to check the database "
        "against, besides the archiver's own checkpoint_export_file.",
    )(command)
    return click.option(
        "--public-key",
        "public_keys",
        multiple=True,
        type=click.Path(path_type=Path),
        help="Public key PEM(s) to check signatures with (default: the configured signing key).",
    )(command)


@click.group("audit")
def audit_group() -> None:
    """Checks for auditors."""


@audit_group.command("verify")
@click.option("--dataset", default=None, help="Only the chains of this dataset.")
@_check_options
@click.option(
    "--allow-unsigned-tail",
    is_flag=True,
    help="Accept entries after the last signed checkpoint (reported, counted); "
    "without it they fail.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="The auditor's mode: every warning fails; requires --checkpoints FILE (an off-host "
    "copy, up to date) and --public-key.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def audit_verify(
    dataset: str | None,
    public_keys: tuple[Path, ...],
    checkpoints_file: Path | None,
    allow_unsigned_tail: bool,
    strict: bool,
    as_json: bool,
) -> None:
    """Recompute every chain and check every checkpoint; exit 0 only when intact.

    Fails closed: every chain head must be covered by a signed checkpoint.
    """
    keys = [load_public_key(p) for p in public_keys] if public_keys else None
    report = verify(
        settings(),
        dataset=dataset,
        public_keys=keys,
        checkpoints_file=checkpoints_file,
        allow_unsigned_tail=allow_unsigned_tail,
        strict=strict,
    )
    require_archived(report, dataset)
    if as_json:
        echo_json(report.to_dict())
    else:
        _echo_verify(report, dataset)
    if not report.ok:
        total = len(report.problems) + report.more_problems
        raise FatalError(f"the archive is NOT intact: {total} problem(s)")
    if not as_json:
        if report.unsigned_entries:
            click.echo(
                f"OK, EXCEPT AN UNSIGNED TAIL: the archive is intact up to its signed "
                f"checkpoints; {report.unsigned_entries} entries after them are not signed "
                "(accepted with --allow-unsigned-tail)"
            )
        else:
            click.echo("OK: the archive is intact")


def _echo_verify(report: VerifyReport, dataset: str | None) -> None:
    scope = f"dataset {dataset}" if dataset else "the whole archive"
    click.echo(
        f"verified {report.entries} entries in {len(report.chains)} chain(s) of {scope} and "
        f"{report.checkpoints} checkpoint(s) in {report.elapsed_s:.2f} s "
        f"({report.rate:,.0f} entries/s); verifying key id(s): "
        f"{', '.join(report.key_ids) or 'none'}"
    )
    if report.local_export_present:
        click.echo(
            f"compared with {report.local_exported} exported checkpoint(s) in "
            f"{report.local_export} (the archiver's local export)"
        )
    else:
        click.echo(f"the archiver's local export {report.local_export} is missing")
    if report.checkpoints_file is not None:
        click.echo(
            f"compared with {report.exported_checkpoints} exported checkpoint(s) in "
            f"{report.checkpoints_file} (off-host copy)"
        )
    else:
        click.echo("no off-host copy of the checkpoints compared (--checkpoints FILE)")
    if report.latest_checkpoint is not None:
        click.echo(
            f"latest valid checkpoint {report.latest_checkpoint}, digest {report.latest_digest}"
        )
    for chain in report.chains:
        click.echo(
            f"  {chain.topic}[{chain.partition}] head position {chain.head_seq} "
            f"hash {chain.head_hash[:16]}… signed to position {chain.signed_seq}"
        )
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    for problem in report.problems:
        click.echo(f"PROBLEM {problem}")
    if report.more_problems:
        click.echo(f"... and {report.more_problems} more problem(s)")


def _echo_replay(report: ReplayReport, err: bool = False) -> None:
    def out(text: str) -> None:
        click.echo(text, err=err)

    if report.mode == "as-of":
        out(
            f"dataset {report.dataset} as of {report.as_of}"
            + (f", unit {report.unit}" if report.unit else "")
        )
    else:
        out(
            f"dataset {report.dataset} events from {report.from_ts or 'the beginning'} to "
            f"{report.to_ts or 'the end'}" + (f", unit {report.unit}" if report.unit else "")
        )
    out(
        f"events read: {report.events_archive} from the archive, {report.events_broker} from the "
        f"broker (not archived yet); {report.duplicates} roll-up copies counted once; "
        f"{report.outside_unit} outside the unit; {report.undecodable} undecodable"
    )
    if report.mode == "as-of":
        out(f"events up to the moment: {report.selected}")
        out(f"keys: {report.keys} (deleted by then: {report.deleted_keys})")
        out(f"table: {report.table} in {report.target}")
        out(f"content hash: {report.content_hash}")
    else:
        out(f"events in range: {report.selected}")
    out("verified chain heads relied on:")
    for chain in report.chains:
        signed = (
            f"signed to position {chain.signed_seq} (checkpoint {chain.checkpoint_n})"
            if chain.checkpoint_n
            else "not yet signed"
        )
        out(
            f"  {chain.topic}[{chain.partition}] position {chain.head_seq} hash "
            f"{chain.head_hash} {signed}"
        )
    if not report.chains:
        out("  (none: nothing of this dataset is archived yet)")
    if report.checkpoint is not None:
        out(f"latest valid checkpoint {report.checkpoint}, digest {report.checkpoint_digest}")
    for note in report.notes:
        out(f"note: {note}")


@click.command("replay")
@click.argument("dataset")
@click.option(
    "--as-of",
    "as_of",
    default=None,
    help="Rebuild as of this time, e.g. 2026-03-01T00:00:00+07:00.",
)
@click.option("--into", "into", default=None, help="SQLAlchemy URL of the target database.")
@click.option("--table", default=None, help="Target table (default replay_<domain>_<name>).")
@click.option("--replace", is_flag=True, help="Drop and rebuild the target table if it exists.")
@click.option("--from", "start", default=None, help="Events from this time (inclusive).")
@click.option("--to", "end", default=None, help="Events before this time (exclusive).")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--unit", default=None, help="Only events within this unit path, e.g. 79.760.")
@click.option("--purpose", default=None, help="Why the history is read (required; logged).")
@_check_options
@click.option("--json", "as_json", is_flag=True, help="Print the as-of report as JSON.")
def replay(
    dataset: str,
    as_of: str | None,
    into: str | None,
    table: str | None,
    replace: bool,
    start: str | None,
    end: str | None,
    fmt: str,
    unit: str | None,
    purpose: str | None,
    public_keys: tuple[Path, ...],
    checkpoints_file: Path | None,
    as_json: bool,
) -> None:
    """Rebuild DATASET as of a moment (--as-of, --into) or print its events (--from/--to).

    Selection is by event time (the envelope's ts_ms). Times need a zone. Every replay is
    access-logged with --purpose.
    """
    purpose = require_purpose(purpose)
    keys = [load_public_key(p) for p in public_keys] if public_keys else None
    s = settings()
    if as_of is not None:
        if start or end:
            raise ConfigurationError("--as-of: cannot be combined with --from/--to")
        if not into:
            raise ConfigurationError(
                "--into: required with --as-of (a SQLAlchemy URL, e.g. sqlite:///audit.db)"
            )
        moment = parse_cli_time(as_of, "--as-of")
        report = replay_as_of(
            s,
            dataset,
            moment,
            into=into,
            purpose=purpose,
            table=table,
            unit=unit,
            replace=replace,
            public_keys=keys,
            checkpoints_file=checkpoints_file,
        )
        if as_json:
            echo_json(report.to_dict())
        else:
            _echo_replay(report)
        return
    if into or table or replace:
        raise ConfigurationError("--into/--table/--replace: only with --as-of")
    if start is None and end is None:
        raise ConfigurationError(
            "replay: give --as-of TIME --into URL (rebuild a table) or --from/--to TIME "
            "(print events), e.g. --as-of 2026-03-01T00:00:00+07:00"
        )
    begin = parse_cli_time(start, "--from") if start else None
    finish = parse_cli_time(end, "--to") if end else None
    report, events = replay_events(
        s,
        dataset,
        purpose=purpose,
        start=begin,
        end=finish,
        unit=unit,
        public_keys=keys,
        checkpoints_file=checkpoints_file,
    )
    for event in events:
        click.echo(dumps(event))
    _echo_replay(report, err=True)
    sys.stdout.flush()
