"""The DAG file parses clean and yields exactly the DAGs the manifest asks for."""

from __future__ import annotations

import pytest

from bus.config import Settings
from tests.integration.orchestration.conftest import dagbag, write_manifest_file

pytestmark = pytest.mark.integration


def connector(name: str, role: str = "source") -> dict:
    return {
        "name": name,
        "type": "postgresql",
        "role": role,
        "agency": "ubnd-phuong-tan-dinh",
        "unit": "26734",
        "schedule": "*/5 * * * *",
        "tables": ["ho_so"],
    }


def test_dagbag_has_one_sync_dag_per_connector(settings: Settings) -> None:
    manifest = {
        "connectors": [
            connector("tan-dinh-hoso"),
            connector("da-kao-hoso"),
            connector("city-sink", "sink"),
        ],
        "datasets": [
            {"name": "tthc.dossier", "frequency": "hourly", "levels": ["district", "city"]}
        ],
        "reconcile": [{"source": "tan-dinh-hoso", "table": "ho_so", "sink": "city-sink"}],
        "archive": {"schedule": "*/15 * * * *"},
    }
    write_manifest_file(settings.home, manifest)
    bag = dagbag(settings)
    assert bag["errors"] == {}
    assert bag["heavy"] == [], "parsing the DAG file must not load broker, Avro or DB code"
    sync = [d for d in bag["dags"] if d.startswith("lgsp_sync__")]
    assert sync == ["lgsp_sync__city_sink", "lgsp_sync__da_kao_hoso", "lgsp_sync__tan_dinh_hoso"]
    assert "lgsp_rollup__tthc_dossier__district" in bag["dags"]
    assert "lgsp_rollup__tthc_dossier__city" in bag["dags"]
    assert "lgsp_reconcile__tan_dinh_hoso__ho_so__city_sink" in bag["dags"]
    assert "lgsp_archive" in bag["dags"]

    # a connector removed while its DAG exists disappears on the next parse, no import error
    manifest["connectors"] = manifest["connectors"][:1]
    manifest["reconcile"] = []
    write_manifest_file(settings.home, manifest)
    bag = dagbag(settings)
    assert bag["errors"] == {}
    assert [d for d in bag["dags"] if d.startswith("lgsp_sync__")] == ["lgsp_sync__tan_dinh_hoso"]


def test_no_manifest_parses_clean(settings: Settings) -> None:
    bag = dagbag(settings)
    assert (bag["errors"], bag["dags"]) == ({}, [])
