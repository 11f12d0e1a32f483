"""Helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from bus.config import Settings, get_settings
from bus.errors import ConfigurationError

if TYPE_CHECKING:
    from bus.context import Context

F = TypeVar("F", bound=Callable[..., Any])  # a command function that an option decorator returns


def follow_options(keep: str, unit: str) -> Callable[[F], F]:
    """``--follow`` and ``--idle-exit``, alike for every command that can keep going: ``keep``
    says what following does, ``unit`` what an idle second lacks (a row, a record)."""

    def wrap(fn: F) -> F:
        fn = click.option(
            "--idle-exit",
            type=click.FloatRange(min=0),
            default=None,
            metavar="SECONDS",
            help=f"With --follow: stop after this many seconds without a {unit}.",
        )(fn)
        return click.option(
            "--follow",
            is_flag=True,
            help=f"{keep}; stops on Ctrl-C or SIGTERM after the batch in hand.",
        )(fn)

    return wrap


def only_with_follow(follow: bool, flags: dict[str, object]) -> None:
    """A usage error for each option of ``flags`` (name -> value) given without --follow."""
    for flag, value in flags.items():
        if value is not None and not follow:
            raise click.UsageError(f"{flag}: only with --follow")


def settings() -> Settings:
    return get_settings()


def context() -> Context:
    """The command's process context (settings, hierarchy, registry, connector store)."""
    from bus.context import Context

    return Context.load(get_settings())


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain aligned text table."""
    body = [[("" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in body:
        widths = [max(w, len(v)) for w, v in zip(widths, row, strict=False)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)).rstrip())
    for row in body:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())


def confirm(question: str, *, yes: bool) -> None:
    """Ask ``question`` on the terminal unless ``yes`` (``--yes``); a "no" aborts the command.
    Without a terminal (CI, cron, a pipe) there is nobody to ask: refuse, naming ``--yes``."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigurationError(
            f"{question.rstrip('?')}: no terminal to confirm on; pass --yes to confirm"
        )
    click.confirm(question, abort=True)
