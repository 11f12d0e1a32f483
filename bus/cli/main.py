"""Entry point of ``lgsp``: discovers command modules, turns errors into one clear line."""

from __future__ import annotations

import importlib
import logging
import pkgutil
import sys
import traceback

import click

import bus.cli
from bus.errors import LgspError


class _Root(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except LgspError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:  # a bug or an unexpected library error: no message text,
            if debug:  # which could carry data values, unless --debug asks for the traceback
                traceback.print_exc()
            click.echo(
                f"error: unexpected {type(exc).__name__}; rerun with --debug for details",
                err=True,
            )
            sys.exit(1)


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
