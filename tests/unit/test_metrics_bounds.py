"""The metrics' memory is bounded: unfinished runs remembered between scrapes are capped (a
crashed run never finishes), and a run finished later is still counted once."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from bus.api.metrics import Metrics
from bus.config import Settings
from bus.context import Context
from bus.runs import record_run, start_run


def _count(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(
        "lgsp_runs_total", {"kind": "sync", "name": name, "status": "ok"}
    )
    return value or 0.0


def test_open_runs_are_capped_newest_kept(offline_settings: Settings) -> None:
    ctx = Context.of(offline_settings)
    ids = [start_run(offline_settings, kind="sync", name=f"c{i}") for i in range(5)]
    metrics = Metrics(max_open_runs=3)
    metrics.read_runs(ctx)
    assert metrics._open == set(ids[-3:])
    record_run(offline_settings, kind="sync", name="c4", status="ok", run_id=ids[4])
    more = [start_run(offline_settings, kind="sync", name=f"d{i}") for i in range(4)]
    metrics.read_runs(ctx)
    assert _count(metrics, "c4") == 1.0  # finished after a scrape saw it open: counted
    assert len(metrics._open) == 3 and metrics._open == set(more[-3:])
    metrics.read_runs(ctx)
    assert _count(metrics, "c4") == 1.0  # once


def test_dashboard_and_alerts_name_only_metrics_the_app_exposes() -> None:
    """Every ``lgsp_*`` series the Grafana dashboard and the Prometheus alerts query is one the
    app registers (a renamed metric would leave an empty panel or an alert that never fires)."""
    deploy = Path(__file__).resolve().parents[2] / "deploy"
    board = json.loads((deploy / "grafana" / "dashboards" / "lgsp.json").read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((deploy / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exposed = {
        name
        for family in Metrics().registry.collect()
        for name in (family.name, *(family.name + s for s in ("_total", "_bucket", "_count")))
    }
    used = {name for e in exprs for name in re.findall(r"\blgsp_[a-z_]+", e)}
    assert "lgsp_log_behind_bytes" in used and "lgsp_log_status_up" in used
    assert used <= exposed, sorted(used - exposed)
