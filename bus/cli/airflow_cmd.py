"""``lgsp airflow standalone|status|stop|dags|manifest|test``."""

from __future__ import annotations

import time

import click

from bus.cli._common import echo_table, settings
from bus.errors import ExitCode, FatalError, NotFoundError
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
    known = [spec.dag_id for spec in dag_specs(read_manifest(write_manifest(s)))]
    if dag_id not in known:
        raise NotFoundError(
            f"DAG {dag_id!r} is not one of the project's; known: {', '.join(known)}"
        )
    migrate(s)
    result = dags_test(s, dag_id)
    state = "success" if "state=success" in result.stdout + result.stderr else "failed"
    click.echo(f"{dag_id}: {state}")
    if state != "success":
        lines = (result.stdout + result.stderr).strip().splitlines()
        click.echo("\n".join(lines[-15:]), err=True)
        raise SystemExit(ExitCode.FAILED)


@airflow_group.command("standalone")
@click.option(
    "--wait", type=float, default=90, show_default=True, help="Seconds to wait for the UI."
)
def standalone_cmd(wait: float) -> None:
    """Start Airflow (api-server, scheduler, dag-processor, triggerer) in the background."""
    from bus.broker import port_answers
    from bus.orchestration.local_airflow import (
        UI_ADDRESS,
        airflow_home,
        login,
        standalone,
        standalone_status,
    )
    from bus.orchestration.manifest import write_manifest

    s = settings()
    write_manifest(s)
    current = standalone_status(s)
    if current is not None and current.running:
        click.echo(f"airflow standalone already runs (pid {current.pid}): lgsp airflow stop")
        return
    proc = standalone(s)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not port_answers(UI_ADDRESS, timeout=0.5):
        if proc.poll() is not None:
            raise FatalError(f"airflow standalone exited; see {airflow_home(s) / 'standalone.log'}")
        time.sleep(1)
    creds = login(s)
    click.echo(f"Airflow UI: http://localhost:8080 (pid {proc.pid})")
    if creds:
        click.echo(f"login: {creds[0]} / {creds[1]}")
    click.echo(f"log: {airflow_home(s) / 'standalone.log'}; stop with: lgsp airflow stop")


@airflow_group.command("status")
def status_cmd() -> None:
    """Whether the standalone Airflow started here runs, its processes, whether the UI answers."""
    from bus.orchestration.local_airflow import standalone_status

    current = standalone_status(settings())
    if current is None or not current.running:
        click.echo("airflow standalone: not running")
        raise SystemExit(ExitCode.RETRY)
    ui = "UI answers on :8080" if current.answering else "UI does not answer (yet)"
    click.echo(f"airflow standalone (pid {current.pid}): {len(current.members)} processes, {ui}")


@airflow_group.command("stop")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=30,
    show_default=True,
    help="Seconds to wait after SIGTERM before SIGKILL.",
)
def stop_cmd(wait: float) -> None:
    """Stop the standalone Airflow started here and every process it started."""
    from bus.orchestration.local_airflow import stop_standalone

    found = stop_standalone(settings(), wait_s=wait)
    if found is None or not found.running:
        click.echo("airflow standalone: was not running")
        return
    click.echo(f"stopped airflow standalone (pid {found.pid}, {len(found.members)} processes)")
