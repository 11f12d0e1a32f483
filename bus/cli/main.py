"""Entry point of ``lgsp``: loads a command's module only when it runs, turns errors into one
clear line."""

from __future__ import annotations

import importlib
import io
import logging
import os
import select
import sys
import traceback
from typing import NoReturn

import click

from bus.errors import ExitCode, LgspError

# Every top-level command: name -> ("module:attribute" under bus.cli, the first paragraph of its
# help). ``lgsp --help`` lists them from here, so it and ``--version`` import no command module
# (nor SQLAlchemy, Kafka, Airflow); a command's module is imported when the command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "access-log": (
        "catalog_cmd:access_log_cmd",
        "Who read which dataset, for which purpose, how many records, and when.",
    ),
    "agency": ("catalog_cmd:agency_group", "The agency register (publishers and grant holders)."),
    "airflow": (
        "airflow_cmd:airflow_group",
        "Airflow 3 with the project's DAGs (one per connector, dataset level, reconciliation).",
    ),
    "archive": (
        "archive_cmd:archive_group",
        "The auditors' archive: every event of the dataset topics, hash-chained and signed.",
    ),
    "audit": ("archive_cmd:audit_group", "Checks for auditors."),
    "broker": ("broker_cmd:broker_group", "Start, stop or check the Kafka broker."),
    "config": ("broker_cmd:config_group", "Show the effective configuration."),
    "connector": (
        "connector_cmd:connector_group",
        "Connectors: attach a departmental database or API to the bus from one YAML file.",
    ),
    "dataset": (
        "catalog_cmd:dataset_group",
        "The dataset catalogue: one authoritative publisher per dataset.",
    ),
    "db": (
        "db_cmd:db_group",
        "The control database (registry, connectors, catalogue, archive, runs).",
    ),
    "demo": (
        "demo_cmd:demo",
        "Ten ward databases → ward topics → district → city → sinks, archive, grant, report.",
    ),
    "dlq": (
        "stream_cmd:dlq_group",
        "Dead letters: records parked because they could not be decoded or did not match.",
    ),
    "generate": (
        "generate_cmd:generate_cmd",
        "Generate ROWS records of DATASET that validate against its Avro schema.",
    ),
    "grant": (
        "catalog_cmd:grant_group",
        "Grants: which agency may receive which fields of a dataset, why, until when.",
    ),
    "lookup": (
        "lookup_cmd:lookup_group",
        "Current-state stores of datasets, read by GET /v1/datasets/NAME/records/KEY.",
    ),
    "publish": (
        "stream_cmd:publish",
        "Publish JSON lines (envelopes, or bare records wrapped as op c) to TOPIC.",
    ),
    "reconcile": (
        "reconcile_cmd:reconcile_group",
        "Compare a table with its copy (checksums per key segment inside each database), list"
        " what is missing, extra or different, and repair through the bus.",
    ),
    "replay": (
        "archive_cmd:replay",
        "Rebuild DATASET as of a moment (--as-of, --into) or print its events (--from/--to).",
    ),
    "report": ("report_cmd:report_group", "Reports computed from the data the units publish."),
    "route": (
        "route_cmd:route_group",
        "Roll-up (ward → district → city) and fan-down routes of datasets.",
    ),
    "runs": ("route_cmd:runs", "Recent runs with rows in/out, DLQ count, lag and duration."),
    "schema": (
        "schema_cmd:schema_group",
        "Schema registry: subjects <topic>-value, versions, compatibility.",
    ),
    "serve": (
        "serve_cmd:serve",
        "Serve the HTTP API and the web console (/console/).",
    ),
    "subscribe": (
        "catalog_cmd:subscribe_cmd",
        "Deliver DATASET's new events to an agency under its live grant (one bounded run).",
    ),
    "tail": (
        "stream_cmd:tail",
        "Print TOPIC's records as decoded JSON lines (undecodable ones are reported on stderr).",
    ),
    "topic": ("stream_cmd:topic_group", "Topics on the broker."),
    "units": (
        "units_cmd:units_group",
        "Administrative units (city, district, ward) and topic names.",
    ),
}


class _Root(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name][0].split(":")
            command = getattr(importlib.import_module(f"bus.cli.{module}"), attribute)
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table, for the commands not loaded yet."""
        listed = {name: click.Command(name, help=text) for name, (_, text) in COMMANDS.items()}
        click.Group.format_commands(
            click.Group(commands={**listed, **self.commands}), ctx, formatter
        )

    def invoke(self, ctx: click.Context) -> object:
        debug = bool(ctx.params.get("debug"))
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # a reader gone before the end shows here, not at exit
            return result
        except LgspError as exc:
            _fail(debug, str(exc), exc.exit_code)
        except UnicodeDecodeError as exc:  # a file read whole: say where, not what
            _fail(debug, f"input is not valid UTF-8: {_where(exc)}", ExitCode.INPUT)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug or an unexpected library error: no message text,
            if _output_gone(exc):  # which could carry data values, unless --debug asks
                _quit_quietly()
            _fail(
                debug,
                f"unexpected {type(exc).__name__}; rerun with --debug for details",
                ExitCode.FAILED,
            )
        return None  # not reached: _fail and _quit_quietly exit


def _fail(debug: bool, message: str, code: int) -> NoReturn:
    if debug:
        traceback.print_exc()
    try:
        click.echo(f"error: {message}", err=True)
    except BrokenPipeError:
        _quit_quietly()
    sys.exit(code)


def _where(exc: UnicodeDecodeError) -> str:
    """Line and byte offset of the first bad byte (of the whole file when it was read at once)."""
    data = bytes(exc.object)
    line = data.count(b"\n", 0, exc.start) + 1
    column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
    return f"line {line}, byte {column} of the line (offset {exc.start}): {exc.reason}"


def _output_gone(exc: BaseException) -> bool:
    """True for a broken pipe on stdout or stderr (``lgsp ... | head``), not on a socket."""
    if not isinstance(exc, BrokenPipeError):
        return False
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            if any(event & select.POLLERR for _, event in poller.poll(0)):
                return True
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            continue
    return False


def _quit_quietly() -> NoReturn:
    """Exit as a Unix tool whose reader went away: no message, no traceback at exit (the
    unflushed rest of stdout is dropped)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
            pass
    sys.exit(ExitCode.BROKEN_PIPE)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="lgsp-bus")
def cli(debug: bool) -> None:
    """LGSP bus: Avro change events on Kafka between ward, district and city systems."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # the Kafka client logs raw wire bytes (personal data) at DEBUG: never below INFO
    logging.getLogger("kafka").setLevel(logging.INFO if debug else logging.CRITICAL)


def main() -> None:
    cli()
