"""DAG specs from manifests, and the tasks' retry semantics (no services needed)."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from bus.errors import BrokerUnavailableError, ConfigurationError
from bus.orchestration import tasks
from bus.orchestration.specs import dag_specs


def test_specs_from_manifest() -> None:
    specs = dag_specs(
        {
            "connectors": [
                {"name": "a-b", "type": "sqlite", "role": "source", "agency": "x", "schedule": None}
            ],
            "datasets": [{"name": "tthc.dossier", "frequency": "daily", "levels": ["city"]}],
        }
    )
    assert [(s.dag_id, s.schedule) for s in specs] == [
        ("lgsp_sync__a_b", None),
        ("lgsp_rollup__tthc_dossier__city", "@daily"),
        ("lgsp_pipeline", None),
    ]
    pipeline = specs[-1].params
    assert pipeline["sources"] == ["a-b"] and pipeline["rollups"] == [["tthc.dossier", "city"]]
    assert dag_specs({}) == []


def test_reconcile_specs_carry_the_repair_option() -> None:
    pair = {"source": "s", "table": "t", "sink": "k", "schedule": "@daily"}
    plain, repairing = dag_specs({"reconcile": [pair, {**pair, "sink": "k2", "repair": True}]})
    assert plain.params == {"source": "s", "table": "t", "sink": "k"}
    assert repairing.params == {"source": "s", "table": "t", "sink": "k2", "repair": True}
    assert "repair" in repairing.tags and repairing.description.endswith("repairing differences")


def test_retriable_errors_are_raised_for_airflow_to_retry() -> None:
    def down() -> dict:
        raise BrokerUnavailableError("broker 127.0.0.1:1 does not answer")

    with pytest.raises(BrokerUnavailableError, match="does not answer"):
        tasks._guard(down)


def test_other_bus_errors_fail_without_retry() -> None:
    def bad() -> dict:
        raise ConfigurationError("tables[0].cursor: column 'x' does not exist")

    with pytest.raises(AirflowFailException, match="ConfigurationError: tables"):
        tasks._guard(bad)
