"""Writing the manifest the DAG file reads: registered connectors and catalogue datasets."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bus.config import Settings
from bus.orchestration.specs import MANIFEST, dag_specs
from bus.state import home, write_json

if TYPE_CHECKING:
    from bus.context import Context


def build_manifest(settings: Context | Settings) -> dict[str, Any]:
    from bus.catalog import list_datasets
    from bus.context import Context
    from bus.errors import ConfigurationError
    from bus.units.timeline import refuse_replaced_unit

    ctx = Context.of(settings)
    settings = ctx.settings
    connectors = []
    retired = []
    for c in ctx.connectors.list():
        if c.role == "source":
            try:
                refuse_replaced_unit(settings, c.unit, c.topics)
            except ConfigurationError as exc:  # its unit ended at a recorded cut-over
                retired.append({"name": c.name, "unit": c.unit, "reason": str(exc)})
                continue
        config = c.config
        connectors.append(
            {
                "name": c.name,
                "type": c.type,
                "role": c.role,
                "agency": c.agency,
                "unit": c.unit,
                "schedule": config.get("schedule"),
                "tables": [t.get("table") for t in config.get("tables", [])],
            }
        )
    hierarchy = ctx.configured_hierarchy  # the one dataset units are given in
    levels = hierarchy.levels
    parent_levels = list(reversed(levels[:-1]))  # e.g. district, city
    datasets = []
    for d in list_datasets(settings):
        unit_levels = {hierarchy.get(u).level for u in d.units}
        deepest = max(levels.index(lv) for lv in unit_levels)
        into = [lv for lv in parent_levels if levels.index(lv) < deepest]
        datasets.append({"name": d.name, "frequency": d.frequency, "levels": into})
    return {
        "version": 1,
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hierarchy": settings.hierarchy,
        "connectors": connectors,
        "retired": retired,  # sources of units a cut-over ended: not scheduled
        "datasets": datasets,
        "reconcile": [
            p for p in reconcile_pairs(settings) if p["source"] not in {r["name"] for r in retired}
        ],
        "archive": {"schedule": "*/15 * * * *"},
    }


def reconcile_pairs(settings: Settings) -> list[dict[str, Any]]:
    """(source connector, table, sink connector) pairs that copy the same dataset."""
    try:
        from bus.reconcile import pairs_for_manifest
    except ImportError:
        return []
    return pairs_for_manifest(settings)


def write_manifest(settings: Context | Settings) -> Path:
    """Write ``manifest.json`` in the state folder (atomically); return its path."""
    from bus.context import Context

    ctx = Context.of(settings)
    path = home(ctx.settings) / MANIFEST
    manifest = build_manifest(ctx)
    dag_specs(manifest)  # refuse to write a manifest the DAG file could not turn into DAGs
    write_json(path, manifest)
    return path
