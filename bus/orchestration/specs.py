"""DAG specifications from a manifest: pure Python and JSON, safe at DAG-parse time.

The DAG file (``dags/lgsp_dags.py``) reads the manifest file and turns each spec into a DAG;
no control-database, broker or Avro work happens while Airflow parses it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"
FREQUENCY_SCHEDULES = {
    "continuous": "*/10 * * * *",
    "hourly": "@hourly",
    "daily": "@daily",
    "weekly": "@weekly",
    "monthly": "@monthly",
}


@dataclass(frozen=True)
class DagSpec:
    dag_id: str
    kind: str  # sync | rollup | reconcile | archive
    schedule: str | None
    description: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """One task of the pipeline: ``task`` names a function of ``bus.orchestration.tasks``."""

    task_id: str
    task: str
    args: tuple[Any, ...] = ()


def pipeline_stages(spec: DagSpec) -> list[list[Step]]:
    """The ``lgsp_pipeline`` DAG's stages in order (each waits for the one before; the steps
    of a stage are independent): broker check, every source, each roll-up level, every sink,
    then the archive. The DAG file and the demo's in-process pipeline both run these."""
    p = spec.params
    stages = [
        [Step("check_broker", "check_broker")],
        [Step(f"sync__{name}", "sync", (name,)) for name in p["sources"]],
    ]
    stages += [
        [Step(f"rollup__{dataset}__{level}", "rollup", (dataset, level))]
        for dataset, level in p["rollups"]
    ]
    stages.append([Step(f"sync__{name}", "sync", (name,)) for name in p["sinks"]])
    if p["archive"]:
        stages.append([Step("archive", "archive")])
    return stages


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def manifest_path(home: str | os.PathLike[str] | None = None) -> Path:
    """``LGSP_MANIFEST``, or ``manifest.json`` in the state folder."""
    explicit = os.environ.get("LGSP_MANIFEST")
    if explicit:
        return Path(explicit)
    base = Path(home or os.environ.get("LGSP_HOME", ".lgsp")).resolve()
    return base / MANIFEST


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest, or an empty one when there is none yet (a fresh install parses clean)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def dag_specs(manifest: dict[str, Any]) -> list[DagSpec]:
    specs: list[DagSpec] = []
    for c in manifest.get("connectors", []):
        specs.append(
            DagSpec(
                dag_id=f"lgsp_sync__{_safe(c['name'])}",
                kind="sync",
                schedule=c.get("schedule"),
                description=f"Sync {c['role']} connector {c['name']} ({c['type']}, {c['agency']})",
                params={"connector": c["name"], "role": c["role"]},
                tags=("lgsp", "sync", c["role"]),
            )
        )
    for d in manifest.get("datasets", []):
        schedule = d.get("schedule") or FREQUENCY_SCHEDULES.get(d.get("frequency", ""), "@hourly")
        for level in d.get("levels", []):
            specs.append(
                DagSpec(
                    dag_id=f"lgsp_rollup__{_safe(d['name'])}__{level}",
                    kind="rollup",
                    schedule=schedule,
                    description=f"Roll {d['name']} up into the {level} topics",
                    params={"dataset": d["name"], "level": level},
                    tags=("lgsp", "rollup", level),
                )
            )
    for r in manifest.get("reconcile", []):
        repair = bool(r.get("repair"))
        specs.append(
            DagSpec(
                dag_id=f"lgsp_reconcile__{_safe(r['source'])}__{_safe(r['table'])}__{_safe(r['sink'])}",
                kind="reconcile",
                schedule=r.get("schedule") or "@daily",
                description=f"Reconcile {r['source']}.{r['table']} against sink {r['sink']}"
                + (", repairing differences" if repair else ""),
                params={"source": r["source"], "table": r["table"], "sink": r["sink"]}
                | ({"repair": True} if repair else {}),
                tags=("lgsp", "reconcile", *(("repair",) if repair else ())),
            )
        )
    sources = [c["name"] for c in manifest.get("connectors", []) if c.get("role") == "source"]
    sinks = [c["name"] for c in manifest.get("connectors", []) if c.get("role") == "sink"]
    if sources or sinks:
        specs.append(
            DagSpec(
                dag_id="lgsp_pipeline",
                kind="pipeline",
                schedule=manifest.get("pipeline_schedule"),
                description="Every source, then each roll-up level, then every sink, then archive",
                params={
                    "sources": sources,
                    "rollups": [
                        [d["name"], level]
                        for d in manifest.get("datasets", [])
                        for level in d.get("levels", [])
                    ],
                    "sinks": sinks,
                    "archive": bool(manifest.get("archive")),
                },
                tags=("lgsp", "pipeline"),
            )
        )
    if manifest.get("archive"):
        specs.append(
            DagSpec(
                dag_id="lgsp_archive",
                kind="archive",
                schedule=manifest["archive"].get("schedule", "*/15 * * * *"),
                description="Append every dataset event to the hash-chained archive",
                params={},
                tags=("lgsp", "archive"),
            )
        )
    return specs
