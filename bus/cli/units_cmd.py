"""``lgsp units list|show|topic``: the administrative hierarchy and the topic names it gives."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from bus.cli._common import echo_json, echo_table, settings
from bus.units import Hierarchy, load_hierarchy, topic_name

F = TypeVar("F", bound=Callable[..., Any])


def _hierarchy_option(func: F) -> F:
    return click.option(
        "--hierarchy",
        "hierarchy_name",
        default=None,
        metavar="NAME",
        help="hcmc-2024 or hcmc-2025 (default: the 'hierarchy' setting).",
    )(func)


def _hierarchy(name: str | None) -> Hierarchy:
    return load_hierarchy(name if name else settings().hierarchy)


@click.group("units")
def units_group() -> None:
    """Administrative units (city, district, ward) and topic names."""


@units_group.command("list")
@click.option("--level", default=None, help="Only units of this level (e.g. district).")
@click.option("--parent", default=None, metavar="CODE", help="Only direct children of CODE.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_hierarchy_option
def list_cmd(
    level: str | None, parent: str | None, as_json: bool, hierarchy_name: str | None
) -> None:
    """List units, by level and code."""
    h = _hierarchy(hierarchy_name)
    units = h.units(level=level, parent=parent)
    if as_json:
        echo_json([u.to_dict() | {"path": h.path(u.code)} for u in units])
        return
    echo_table(
        ["CODE", "LEVEL", "NAME", "PARENT", "PATH"],
        [(u.code, u.level, u.name, u.parent or "", h.path(u.code)) for u in units],
    )


@units_group.command("show")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_hierarchy_option
def show_cmd(code: str, as_json: bool, hierarchy_name: str | None) -> None:
    """Show one unit: level, parent, path, validity and number of children."""
    h = _hierarchy(hierarchy_name)
    unit = h.get(code)
    parent = h.parent(code)
    info = unit.to_dict() | {
        "hierarchy": h.name,
        "path": h.path(code),
        "parent_name": parent.name if parent else None,
        "children": len(h.children(code)),
    }
    if as_json:
        echo_json(info)
        return
    rows = [
        ("code", unit.code),
        ("name", unit.name),
        ("level", unit.level),
        ("parent", f"{parent.code} {parent.name}" if parent else "-"),
        ("path", info["path"]),
        ("valid_from", info["valid_from"] or "-"),
        ("valid_to", info["valid_to"] or "-"),
        ("children", info["children"]),
        ("hierarchy", h.name),
    ]
    for key, value in rows:
        click.echo(f"{key + ':':<11} {value}")


@units_group.command("topic")
@click.argument("unit")
@click.argument("dataset")
@_hierarchy_option
def topic_cmd(unit: str, dataset: str, hierarchy_name: str | None) -> None:
    """Print the topic name of DATASET (domain.name) published by UNIT."""
    click.echo(topic_name(_hierarchy(hierarchy_name), unit, dataset))
