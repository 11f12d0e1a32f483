"""Entry point of ``lgsp``: discovers command modules, turns errors into one clear line."""

from __future__ import annotations

import importlib
import io
import logging
import os
import pkgutil
import select
import sys
import traceback
from typing import NoReturn

import click

import bus.cli
from bus.errors import ExitCode, LgspError


class _Root(click.Group):
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


def _discover() -> None:
    for info in sorted(pkgutil.iter_modules(bus.cli.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"bus.cli.{info.name}")
        for command in getattr(module, "commands", []):
            cli.add_command(command)


_discover()


def main() -> None:
    cli()
