"""``lgsp dataset show`` and ``GET /v1/datasets/{name}`` list a dataset's topics of every
hierarchy the bus has topics in, with their dates: before the 2025 cut-over the old wards'
only; after it both (where the 2024 history lives, and the wards that replaced them); a unit
merged by an operator's dated change inside one hierarchy ends the day before, its successor
listed too."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from bus.catalog import dated_topics, get_dataset
from bus.config import Settings
from bus.routes.plan import all_routes
from bus.units.timeline import Cutover, add_change_file, record_cutover
from tests.helpers import run_cli as run
from tests.unit.catalog.support import publish


def _listing(settings: Settings, name: str) -> dict[str, dict[str, tuple]]:
    return {
        era["hierarchy"]: {t["topic"]: (t["from"], t["to"]) for t in era["topics"]}
        for era in dated_topics(settings, get_dataset(settings, name))
    }


def test_show_lists_both_eras_after_the_cutover(offline_cli_env: dict, tmp_path: Path) -> None:
    settings = Settings(home=Path(offline_cli_env["LGSP_HOME"]))
    publish(settings, tmp_path, "dancu.ward", units=["26734", "26746"])
    assert _listing(settings, "dancu.ward") == {
        "hcmc-2024": {
            "lgsp.79.760.26734.dancu.ward": (None, "2025-06-30"),
            "lgsp.79.760.26746.dancu.ward": (None, "2025-06-30"),
        }
    }
    record_cutover(settings, Cutover("hcmc-2024", "hcmc-2025", dt.date(2025, 7, 1)))
    eras = _listing(settings, "dancu.ward")
    assert list(eras) == ["hcmc-2024", "hcmc-2025"]
    assert len(eras["hcmc-2024"]) == 2
    # Tân Định merged into 26737; Bến Nghé (26746) split into 26740 and 26743
    assert eras["hcmc-2025"] == {
        f"lgsp.79.{c}.dancu.ward": ("2025-07-01", None) for c in ("26737", "26740", "26743")
    }

    code, out, _ = run("dataset", "show", "dancu.ward")
    assert code == 0
    assert "hcmc-2024 (to 2025-06-30):" in out and "hcmc-2025 (from 2025-07-01):" in out
    assert "lgsp.79.760.26734.dancu.ward  26734 Phường Tân Định" in out
    assert "lgsp.79.26737.dancu.ward  26737 Phường Tân Định" in out
    code, out, _ = run("dataset", "show", "dancu.ward", "--json")
    shown = json.loads(out)
    assert [e["hierarchy"] for e in shown["topics_by_era"]] == ["hcmc-2024", "hcmc-2025"]
    assert len(shown["topics"]) == 5


def test_a_unit_merged_inside_one_hierarchy_ends_and_its_successor_is_listed(
    home: Path, tmp_path: Path
) -> None:
    settings = Settings(home=home, hierarchy="hcmc-2025")
    publish(settings, tmp_path, "dancu.ward", units=["26737"])
    merge = {
        "name": "merge-2026",
        "from": "hcmc-2025",
        "to": "hcmc-2025",
        "effective": "2026-01-01",
        "changes": [{"old": "26737", "new": ["26740"]}],
    }
    path = tmp_path / "merge.json"
    path.write_text(json.dumps(merge), encoding="utf-8")
    add_change_file(settings, path)
    assert _listing(settings, "dancu.ward") == {
        "hcmc-2025": {
            "lgsp.79.26737.dancu.ward": ("2025-07-01", "2025-12-31"),
            "lgsp.79.26740.dancu.ward": ("2025-07-01", None),
        }
    }
    # the successor's topic rolls up too, and a grant's delivery reads it (the same listing)
    sources = {r.source_topic for r in all_routes(settings, "dancu.ward")}
    assert sources == {"lgsp.79.26737.dancu.ward", "lgsp.79.26740.dancu.ward"}
