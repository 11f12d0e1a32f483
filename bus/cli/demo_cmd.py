"""``lgsp demo``: the whole bus on the embedded defaults, District 1's wards to the city."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from bus.cli._common import echo_json, settings
from bus.errors import ExitCode


@click.command("demo")
@click.option("--rows", type=int, default=500, show_default=True, help="Dossiers per ward.")
@click.option("--seed", type=int, default=2026, show_default=True)
@click.option("--fresh", is_flag=True, help="Start over: empty the state folder first.")
@click.option("--no-airflow", is_flag=True, help="Run the pipeline in-process, not as a DAG.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON at the end.")
@click.option(
    "--db-server",
    default=None,
    metavar="URL",
    help="Put the ward, district and city databases on this PostgreSQL or MariaDB server "
    "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432); SQLite files when not given.",
)
@click.option(
    "--hierarchy",
    type=click.Choice(["hcmc-2024", "hcmc-2025"]),
    default="hcmc-2024",
    show_default=True,
    help="hcmc-2025: start from District 1's history before the 2025 reform, re-key it into "
    "the wards that replaced District 1's ten and run the same pipeline on them (its own "
    "state folder, <home>/demo-hcmc-2025).",
)
def demo(
    rows: int,
    seed: int,
    fresh: bool,
    no_airflow: bool,
    as_json: bool,
    db_server: str | None,
    hierarchy: str,
) -> None:
    """Ten ward databases → ward topics → district → city → sinks, archive, grant, report."""
    from bus.demo.city import result_dict, run_city_demo, summary_lines

    started = time.monotonic()

    def say(text: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {text}", err=as_json)

    if hierarchy == "hcmc-2025":
        _reform_demo(rows, seed, fresh, no_airflow, as_json, db_server, say)
        return

    result = run_city_demo(
        settings(),
        say,
        rows_per_ward=rows,
        seed=seed,
        fresh=fresh,
        use_airflow=not no_airflow,
        db_server=db_server,
    )
    if as_json:
        echo_json(result_dict(result))
    else:
        for line in summary_lines(result):
            click.echo(line)
    if not (result.archive_ok and result.agreeing == result.reconciled):
        raise SystemExit(ExitCode.FAILED)


def _reform_demo(
    rows: int,
    seed: int,
    fresh: bool,
    no_airflow: bool,
    as_json: bool,
    db_server: str | None,
    say: Callable[[str], None],
) -> None:
    from bus.demo import reform

    base = settings()
    own = base.model_copy(
        update={
            "home": base.home / "demo-hcmc-2025",
            "hierarchy": reform.OLD,
            "database_url": None,
        }
    )  # its own control database and broker: the cut-over must not touch the city demo's
    result = reform.run_reform_demo(
        own,
        say,
        rows_per_ward=rows,
        seed=seed,
        fresh=fresh,
        use_airflow=not no_airflow,
        db_server=db_server,
    )
    if as_json:
        echo_json(reform.result_dict(result))
    else:
        for line in reform.summary_lines(result):
            click.echo(line)
    if not (result.archive_ok and result.agreeing == result.reconciled):
        raise SystemExit(ExitCode.FAILED)
