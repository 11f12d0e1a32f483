"""``lgsp demo``: the whole bus on the embedded defaults, District 1's wards to the city."""

from __future__ import annotations

import os
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
@click.option(
    "--serve",
    "keep_serving",
    is_flag=True,
    help="Then keep serving the HTTP API and the web console (until Ctrl-C).",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="[default: api.port, 8088]."
)
def demo(
    rows: int,
    seed: int,
    fresh: bool,
    no_airflow: bool,
    as_json: bool,
    db_server: str | None,
    hierarchy: str,
    keep_serving: bool,
    port: int | None,
) -> None:
    """Ten ward databases → ward topics → district → city → sinks, archive, grant, report."""
    from bus.demo.city import result_dict, run_city_demo, summary_lines

    started = time.monotonic()

    def say(text: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {text}", err=as_json)

    if hierarchy == "hcmc-2025":
        if keep_serving:
            raise click.UsageError("--serve: not with --hierarchy hcmc-2025 (yet)")
        _reform_demo(rows, seed, fresh, no_airflow, as_json, db_server, say)
        return

    s = settings()
    result = run_city_demo(
        s,
        say,
        rows_per_ward=rows,
        seed=seed,
        fresh=fresh,
        use_airflow=not no_airflow,
        db_server=db_server,
    )
    from bus.demo.logins import console_lines, demo_logins

    logins = demo_logins(s)
    host, port = s.api.host, port or s.api.port
    url = f"http://{host}:{port}/console/"
    if as_json:
        data = result_dict(result)
        data["console"] = {"url": url, "logins": [vars(x) for x in logins]}
        echo_json(data)
    else:
        for line in summary_lines(result):
            click.echo(line)
        for line in console_lines(url, logins):
            click.echo(line)
        if not keep_serving:
            click.echo(f"    serve it:  lgsp serve --port {port}   (or lgsp demo --serve)")
    if not (result.archive_ok and result.agreeing == result.reconciled):
        raise SystemExit(ExitCode.FAILED)
    if keep_serving:
        from bus.cli.serve_cmd import run_server
        from bus.context import Context
        from bus.demo.city import demo_env

        # the demo's connector files name ${LGSP_DEMO_DIR}: "run now" in the console needs it
        for key, value in demo_env(s).items():
            os.environ.setdefault(key, value)
        click.echo(f"serving {url} until Ctrl-C", err=True)
        run_server(Context.load(s), host, port)


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
