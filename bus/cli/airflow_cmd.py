"""``lgsp airflow standalone|dags|manifest|test``."""

from __future__ import annotations

import time

import click

from bus.cli._common import echo_table, settings
from bus.orchestration.specs import dag_specs, read_manifest


@click.group("airflow")
def airflow_group() -> None:
    """Airflow 3 with the project's DAGs (one per connector, dataset level, reconciliation)."""


@airflow_group.command("manifest")
def manifest_cmd() -> None:
    """Write the manifest the DAG file reads (lgsp does it when connectors or datasets change)."""
    from bus.orchestration.manifest import write_manifest

    path = write_manifest(settings())
    click.echo(f"wrote {path} ({len(dag_specs(read_manifest(path)))} DAGs)")


@airflow_group.command("dags")
def dags_cmd() -> None:
    """The DAGs generated from the current manifest."""
    from bus.orchestration.manifest import write_manifest

    path = write_manifest(settings())
    rows = [
        (s.dag_id, s.kind, s.schedule or "-", s.description) for s in dag_specs(read_manifest(path))
    ]
    echo_table(["DAG", "KIND", "SCHEDULE", "WHAT"], rows)


@airflow_group.command("test")
@click.argument("dag_id")
def test_cmd(dag_id: str) -> None:
    """Run one DAG once now (airflow dags test) and show its outcome."""
    from bus.orchestration.local_airflow import dags_test, migrate
    from bus.orchestration.manifest import write_manifest

    s = settings()
    write_manifest(s)
    migrate(s)
    result = dags_test(s, dag_id)
    state = "success" if "state=success" in result.stdout + result.stderr else "failed"
    click.echo(f"{dag_id}: {state}")
    if state != "success":
        lines = (result.stdout + result.stderr).strip().splitlines()
        click.echo("\n".join(lines[-15:]), err=True)
        raise SystemExit(1)


@airflow_group.command("standalone")
@click.option(
    "--wait", type=float, default=90, show_default=True, help="Seconds to wait for the UI."
)
def standalone_cmd(wait: float) -> None:
    """Start Airflow (api-server, scheduler, dag-processor, triggerer) in the background."""
    from bus.broker import port_answers
    from bus.orchestration.local_airflow import airflow_home, login, standalone
    from bus.orchestration.manifest import write_manifest

    s = settings()
    write_manifest(s)
    proc = standalone(s)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not port_answers("127.0.0.1:8080", timeout=0.5):
        if proc.poll() is not None:
            raise SystemExit(f"airflow standalone exited; see {airflow_home(s) / 'standalone.log'}")
        time.sleep(1)
    creds = login(s)
    click.echo(f"Airflow UI: http://localhost:8080 (pid {proc.pid})")
    if creds:
        click.echo(f"login: {creds[0]} / {creds[1]}")
    click.echo(f"log: {airflow_home(s) / 'standalone.log'}; stop with: kill {proc.pid}")


commands = [airflow_group]
