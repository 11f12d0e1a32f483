"""``lgsp reconcile``: prove that a table and its copy agree, list differences, repair.

- ``lgsp reconcile CONNECTOR TABLE --against SINK [--json] [--repair]``
- ``lgsp reconcile urls SOURCE_URL TABLE TARGET_URL [TARGET_TABLE] --key COL``
- ``lgsp reconcile history [CONNECTOR]`` and ``lgsp reconcile show REPORT_ID``
- ``lgsp reconcile prepare URL TABLE [--drop]``: a stored row hash column on a copy

The exit code is 0 only when the copies agree, 1 when they differ, and 2 or more for an
error (unknown connector or table, bad option, database down).
"""

from __future__ import annotations

import functools
import gc
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from bus.errors import ConfigurationError, ExitCode, NotFoundError
from bus.reconcile.core import Endpoint, Options
from bus.reconcile.report import Report

if TYPE_CHECKING:
    from bus.config import Settings

_SUBCOMMANDS = {"check", "urls", "history", "show", "prepare"}


class _ReconcileGroup(click.Group):
    """``lgsp reconcile CONNECTOR TABLE ...`` runs ``check``; names of subcommands win."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["check", *args]
        return super().parse_args(ctx, args)


@click.group("reconcile", cls=_ReconcileGroup)
def reconcile_group() -> None:
    """Compare a table with its copy (checksums per key segment inside each database), list
    what is missing, extra or different, and repair through the bus.

    \b
    lgsp reconcile CONNECTOR TABLE --against SINK [--json] [--repair]
    lgsp reconcile OLD_CONNECTOR TABLE --against NEW_SINK --through-mapping
    lgsp reconcile urls SOURCE_URL TABLE TARGET_URL [TARGET_TABLE] --key ID
    lgsp reconcile history [CONNECTOR]
    lgsp reconcile prepare URL TABLE [--drop]
    """


def _common(func: Any) -> Any:
    """The options every comparison takes (``--json`` and those of ``Options``)."""
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
        click.option(
            "--pii",
            multiple=True,
            metavar="COLUMN",
            help="A personal-data column whose values are masked (repeatable; added to the "
            "catalogue's PII fields, and for urls to the columns named like personal data).",
        ),
        click.option(
            "--recheck-delay",
            type=click.FloatRange(min=0),
            default=2.0,
            show_default=True,
            metavar="SECONDS",
            help="Wait, then read the differing keys again; report only what persists.",
        ),
        click.option("--no-recheck", is_flag=True, help="Report differences without re-check."),
        click.option(
            "--hash",
            "hash_mode",
            type=click.Choice(["auto", "portable", "native"]),
            default="auto",
            show_default=True,
            help="portable: MD5 on every dialect; native: hashtextextended (PostgreSQL pairs).",
        ),
        click.option(
            "--max-listed",
            type=click.IntRange(min=0),
            default=1000,
            show_default=True,
            help="List at most this many keys per kind (the counts stay exact).",
        ),
    ]

    @functools.wraps(func)
    def with_options(
        *args: Any,
        pii: tuple[str, ...],
        recheck_delay: float,
        no_recheck: bool,
        hash_mode: str,
        max_listed: int,
        **kwargs: Any,
    ) -> Any:
        """The command called with the options above as one ``opts`` (``Options``)."""
        opts = Options(
            hash=hash_mode,
            pii=tuple(pii),
            recheck=not no_recheck,
            recheck_delay=recheck_delay,
            max_listed=max_listed,
        )
        return func(*args, opts=opts, **kwargs)

    for option in reversed(options):
        with_options = option(with_options)
    return with_options


def _where(pairs: tuple[str, ...], option: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in pairs:
        column, eq, value = item.partition("=")
        if not eq or not column.strip():
            raise ConfigurationError(f"{option}: expected COLUMN=VALUE, got {item!r}")
        out[column.strip()] = value
    return out


def _key_text(key: dict[str, Any]) -> str:
    return ", ".join(f"{k}={'NULL' if v is None else v}" for k, v in key.items())


def _shown(value: str | None) -> str:
    return "NULL" if value is None else repr(value)


def _print(report: Report, as_json: bool) -> None:
    if as_json:
        from bus.cli._common import echo_json

        echo_json(report.to_dict())
        return
    for issue in report.schema:
        click.echo(f"schema {issue.severity}: {issue.message}")
    for warning in report.warnings:
        click.echo(f"warning: {warning}")
    lists = (
        ("missing in the target", report.missing, report.counts["missing"]),
        ("extra in the target", report.extra, report.counts["extra"]),
        ("different", report.different, report.counts["different"]),
    )
    for title, items, total in lists:
        if not total:
            continue
        more = f", {len(items)} listed" if len(items) < total else ""
        click.echo(f"{title} ({total}{more}):")
        for diff in items:
            line = f"  {_key_text(diff.key)}"
            if diff.columns:
                changes = "; ".join(
                    f"{c}: {_shown(diff.values[c]['source'])} -> {_shown(diff.values[c]['target'])}"
                    for c in diff.columns
                )
                line += f"  [{changes}]"
            click.echo(line)
    if report.repair:
        repair = report.repair
        click.echo(
            f"repair: {repair.get('published', 0)} event(s) published on "
            f"{repair.get('topic', '-')}; run '{repair.get('then', 'the sink')}' to apply them"
        )
    if report.masked and report.differences:
        click.echo(f"values masked: {', '.join(report.masked)}")
    if report.report_id is not None:
        click.echo(f"report {report.report_id} stored (lgsp reconcile show {report.report_id})")
    click.echo(report.summary)


def _settings() -> Settings:
    """The bus's settings; imported when needed (``bus.config`` is a tenth of a second of a
    short run's start-up, which ``urls`` spends while the databases compute)."""
    from bus.cli._common import settings

    return settings()


def _finish(report: Report, as_json: bool) -> None:
    _print(report, as_json)
    # The interpreter's exit collects every object the imports made (SQLAlchemy's, the
    # drivers'), a few tenths of a second of a short run; frozen, they are left to the
    # process's end. Nothing here needs a finaliser: connections are closed by now.
    gc.freeze()
    sys.exit(ExitCode.OK if report.agree else ExitCode.FAILED)


@reconcile_group.command("check")
@click.argument("connector")
@click.argument("table")
@click.option(
    "--against", required=True, metavar="SINK", help="The sink connector holding the copy."
)
@click.option(
    "--repair",
    is_flag=True,
    help="Publish the source's current rows for missing/different keys and deletes for extra "
    "ones on the source's topic; the next sink run applies them.",
)
@click.option(
    "--target-where",
    multiple=True,
    metavar="COLUMN=VALUE",
    help="Compare only target rows with this value (a city table that gathers many wards).",
)
@click.option(
    "--through-mapping",
    is_flag=True,
    help="After a reform: CONNECTOR is an old unit's source, --against the sink of the unit "
    "that replaced it; compare the old table with the re-keyed copy (unit fields as mapped).",
)
@_common
def check_cmd(
    connector: str,
    table: str,
    against: str,
    repair: bool,
    target_where: tuple[str, ...],
    through_mapping: bool,
    as_json: bool,
    opts: Options,
) -> None:
    """Reconcile CONNECTOR's TABLE against its copy in sink connector --against."""
    from bus.reconcile.service import run_reconcile

    report = run_reconcile(
        _settings(),
        connector,
        table,
        against,
        repair,
        options=replace(opts, time_precision=3),
        target_where=_where(target_where, "--target-where"),
        through_mapping=through_mapping,
    )
    _finish(report, as_json)


@reconcile_group.command("urls")
@click.argument("source_url")
@click.argument("table")
@click.argument("target_url")
@click.argument("target_table", required=False)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="COLUMN",
    help="Key column(s) (repeatable, or comma-separated); default: the primary key.",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="PATTERN",
    help="Columns left out of the comparison (glob; default _lgsp_*).",
)
@click.option("--milliseconds", is_flag=True, help="Compare timestamps to the millisecond only.")
@click.option("--no-store", is_flag=True, help="Do not keep the report in the control database.")
@click.option(
    "--show-values",
    is_flag=True,
    help="Show the values of columns that are masked by default: those named like a PII "
    "field of a catalogued dataset or like a personal identifier (ho_ten, cccd, dia_chi, "
    "so_dien_thoai, ngay_sinh...). --pii columns stay masked.",
)
@_common
def urls_cmd(
    source_url: str,
    table: str,
    target_url: str,
    target_table: str | None,
    keys: tuple[str, ...],
    ignore: tuple[str, ...],
    milliseconds: bool,
    no_store: bool,
    show_values: bool,
    as_json: bool,
    opts: Options,
) -> None:
    """Reconcile TABLE at SOURCE_URL with TARGET_TABLE (default: the same name) at TARGET_URL.

    URLs are SQLAlchemy URLs; a password may be written as ${ENV_VAR}. Values of columns that
    look like personal data are masked (in the output and the stored report) unless
    --show-values.
    """
    from bus.reconcile.service import run_urls
    from connectors.secrets import resolve

    key = [k.strip() for item in keys for k in item.split(",") if k.strip()] or None
    opts = replace(opts, time_precision=3 if milliseconds else 6)
    if ignore:
        opts.ignore_columns = tuple(ignore)
    source = Endpoint(resolve(source_url, "SOURCE_URL"), table, key=key)
    target = Endpoint(resolve(target_url, "TARGET_URL"), target_table or table, key=key)
    # the configuration loads while the databases compute (see run_urls)
    report = run_urls(_settings, source, target, opts, store=not no_store, show_values=show_values)
    _finish(report, as_json)


@reconcile_group.command("prepare")
@click.argument("url")
@click.argument("table")
@click.option("--drop", "remove", is_flag=True, help="Remove the column instead.")
def prepare_cmd(url: str, table: str, remove: bool) -> None:
    """Add to TABLE at URL (a copy, PostgreSQL 14+ or MariaDB/MySQL) generated stored
    columns holding each row's reconciliation hash (_lgsp_rowhash, the portable one; on
    PostgreSQL also _lgsp_rowhash_native, for PostgreSQL pairs), kept by the database and read
    by reconciliations instead of computed on that side. Adding them rewrites the table; a
    column that no longer matches the table or the rule is replaced. URL may write a password
    as ${ENV_VAR}.
    """
    from bus.reconcile.stored import prepare_url
    from connectors.secrets import resolve

    click.echo(prepare_url(resolve(url, "URL"), table, remove=remove))


@reconcile_group.command("history")
@click.argument("connector", required=False)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_cmd(connector: str | None, limit: int, as_json: bool) -> None:
    """Stored reports, newest first (of CONNECTOR as source or sink)."""
    from bus.cli._common import echo_json, echo_table
    from bus.reconcile.store import history

    entries = history(_settings(), connector, limit)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    if not entries:
        click.echo("no reconciliation report" + (f" for {connector}" if connector else ""))
        return
    echo_table(
        ["ID", "STARTED", "SOURCE", "TARGET", "RESULT", "MISSING", "EXTRA", "DIFF", "REPAIRED"],
        [
            (
                e.id,
                e.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"{e.connector or '(url)'}:{e.source_table}",
                f"{e.target_connector or '(url)'}:{e.target_table}",
                "agree" if e.agree else ("schema" if e.schema_errors else "differ"),
                e.missing,
                e.extra,
                e.different,
                "" if e.repaired is None else e.repaired,
            )
            for e in entries
        ],
    )


@reconcile_group.command("show")
@click.argument("report_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_cmd(report_id: int, as_json: bool) -> None:
    """One stored report (masked as it was stored)."""
    from bus.cli._common import echo_json
    from bus.reconcile.store import get_report

    data = get_report(_settings(), report_id)
    if data is None:
        raise NotFoundError(f"REPORT_ID: no reconciliation report {report_id}")
    if as_json:
        echo_json(data)
        return
    for issue in data.get("schema", []):
        click.echo(f"schema {issue['severity']}: {issue['message']}")
    for kind in ("missing", "extra", "different"):
        items = data.get(kind, [])
        if items:
            click.echo(f"{kind} ({data['counts'][kind]}):")
            for item in items:
                cols = f"  [{', '.join(item['columns'])}]" if item.get("columns") else ""
                click.echo(f"  {_key_text(item['key'])}{cols}")
    click.echo(data.get("summary", ""))
