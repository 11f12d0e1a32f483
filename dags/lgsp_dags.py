"""The LGSP bus DAGs, generated from the manifest that ``lgsp`` writes.

Thin on purpose: parsing reads one JSON file and builds DAG objects; the tasks import and run
the bus code only when they execute. A connector removed from the manifest simply has no DAG
on the next parse. See ``bus/orchestration``.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from bus.orchestration import tasks
from bus.orchestration.specs import (
    DagSpec,
    dag_specs,
    manifest_path,
    pipeline_stages,
    read_manifest,
)

# retriable errors only (broker or database down, a connector already running): backing off
DEFAULTS = {
    "retries": 5,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=10),
    "owner": "lgsp",
}
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _dag(spec: DagSpec) -> DAG:
    return DAG(
        dag_id=spec.dag_id,
        schedule=spec.schedule,
        start_date=START,
        catchup=False,
        max_active_runs=1,
        description=spec.description,
        tags=list(spec.tags),
        default_args=DEFAULTS,
    )


def _then(stage: list, nxt: list) -> list:
    """Make every task of ``nxt`` wait for every task of ``stage``; return the new stage."""
    if nxt:
        for t in stage:
            t >> nxt
        return nxt
    return stage


def build_pipeline(spec: DagSpec) -> DAG:
    """All sources in parallel, then the roll-up levels in order, then sinks, then archive."""
    with _dag(spec) as dag:
        stage: list = []
        for steps in pipeline_stages(spec):
            made = [task(task_id=s.task_id)(getattr(tasks, s.task))(*s.args) for s in steps]
            stage = _then(stage, made)
    return dag


def build(spec: DagSpec) -> DAG:
    if spec.kind == "pipeline":
        return build_pipeline(spec)
    with _dag(spec) as dag:
        p = spec.params

        @task(task_id="check_broker")
        def check_broker() -> dict:
            return tasks.check_broker()

        if spec.kind == "sync":

            @task(task_id="sync")
            def run() -> dict:
                return tasks.sync(p["connector"])

        elif spec.kind == "rollup":

            @task(task_id="rollup")
            def run() -> dict:
                return tasks.rollup(p["dataset"], p["level"])

        elif spec.kind == "reconcile":

            @task(task_id="reconcile")
            def run() -> dict:
                return tasks.reconcile(p["source"], p["table"], p["sink"], p.get("repair", False))

        else:

            @task(task_id="archive")
            def run() -> dict:
                return tasks.archive()

        check_broker() >> run()
    return dag


for _spec in dag_specs(read_manifest(manifest_path())):
    globals()[_spec.dag_id] = build(_spec)
