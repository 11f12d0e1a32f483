"""``lgsp units list|show|history|topic|mapping``: the dated hierarchy and its topic names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click

from bus.cli._common import F, echo_json, echo_table, settings
from bus.units import Hierarchy, load_hierarchy, topic_name
from bus.units.changes import UnitChange
from bus.units.timeline import Successor, Timeline, add_change_file, load_timeline


def _hierarchy_option(func: F) -> F:
    return click.option(
        "--hierarchy",
        "hierarchy_name",
        default=None,
        metavar="NAME",
        help="hcmc-2024 or hcmc-2025 (default: the 'hierarchy' setting).",
    )(func)


def _hierarchy(name: str | None) -> Hierarchy:
    """The era ``name``, else the configured hierarchy (no control database needed)."""
    from bus.context import configured_hierarchy

    return load_hierarchy(name) if name else configured_hierarchy(settings())


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
@click.option(
    "--on",
    "on",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Also say what the unit is on this date (YYYY-MM-DD), after merges and splits.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_hierarchy_option
def show_cmd(code: str, on: dt.datetime | None, as_json: bool, hierarchy_name: str | None) -> None:
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
    became = []
    if on is not None:
        timeline = load_timeline(settings())
        became = timeline.became(unit.code, h.name, on.date())
        info["on"] = on.date().isoformat()
        info["became"] = [_successor(timeline, s) for s in became]
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
    for s in info.get("became", []):
        how = "; ".join(f"{c['kind']} on {c['effective']} ({c['source']})" for c in s["via"])
        click.echo(
            f"on {info['on']}:  {s['code']} {s['name']} [{s['hierarchy']}, path {s['path']}]"
            + (f" <- {how}" if how else " (unchanged)")
        )


def _successor(timeline: Timeline, s: Successor) -> dict[str, Any]:
    return {
        "code": s.unit.code,
        "name": s.unit.name,
        "hierarchy": s.hierarchy,
        "path": timeline.hierarchy(s.hierarchy).path(s.unit.code),
        "via": [c.to_dict() for c in s.via],
    }


@units_group.command("history")
@click.argument("code")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history_cmd(code: str, as_json: bool) -> None:
    """Every dated change naming CODE as old or new unit (packaged and operators' mappings)."""
    timeline = load_timeline(settings())
    changes = timeline.history(code)
    if as_json:
        echo_json([c.to_dict() for c in changes])
        return
    if not changes:
        click.echo(f"no change names unit {code}")
        return

    def named(h: str, c: str) -> str:
        return f"{c} {timeline.hierarchy(h).get(c).name}"

    echo_table(
        ["EFFECTIVE", "KIND", "OLD", "NEW", "RULE", "MAPPING"],
        [
            (
                c.effective.isoformat(),
                c.kind,
                f"{named(c.from_hierarchy, c.old)} [{c.from_hierarchy}]",
                ", ".join(named(c.to_hierarchy, n) for n in c.new) + f" [{c.to_hierarchy}]",
                _rule_text(c),
                c.source,
            )
            for c in changes
        ],
    )


def _rule_text(c: UnitChange) -> str:
    if c.rule is None:
        return ""
    by = ", ".join(f"{c.rule.field}={v}->{n}" for v, n in c.rule.values.items())
    return (by + "; " if by else "") + f"default {c.rule.default}"


@units_group.group("mapping")
def mapping_group() -> None:
    """Operators' dated unit mappings (merge, split, rename, move)."""


@mapping_group.command("add")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def mapping_add(path: Path) -> None:
    """Validate a mapping file and store it; any bad entry refuses the whole file."""
    changes = add_change_file(settings(), path)
    click.echo(f"{len(changes)} change(s) stored from {path.name}")


@mapping_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def mapping_list(as_json: bool) -> None:
    """Every known change: the packaged mappings and the stored ones."""
    changes = load_timeline(settings()).changes
    if as_json:
        echo_json([c.to_dict() for c in changes])
        return
    echo_table(
        ["EFFECTIVE", "KIND", "OLD", "NEW", "FROM", "TO", "MAPPING"],
        [
            (
                c.effective.isoformat(),
                c.kind,
                c.old,
                ",".join(c.new),
                c.from_hierarchy,
                c.to_hierarchy,
                c.source,
            )
            for c in changes
        ],
    )


@units_group.command("topic")
@click.argument("unit")
@click.argument("dataset")
@_hierarchy_option
def topic_cmd(unit: str, dataset: str, hierarchy_name: str | None) -> None:
    """Print the topic name of DATASET (domain.name) published by UNIT."""
    click.echo(topic_name(_hierarchy(hierarchy_name), unit, dataset))
