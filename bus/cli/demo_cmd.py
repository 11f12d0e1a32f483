"""``lgsp demo``: the whole bus on the embedded defaults, District 1's wards to the city."""

from __future__ import annotations

import os
import time

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
    from bus.demo import city, reform

    started = time.monotonic()

    def say(text: str) -> None:
        click.echo(f"[{time.monotonic() - started:6.1f}s] {text}", err=as_json)

    reforming = hierarchy == "hcmc-2025"
    if reforming and keep_serving:
        raise click.UsageError("--serve: not with --hierarchy hcmc-2025 (yet)")
    s = settings()
    if reforming:
        s = s.model_copy(
            update={
                "home": s.home / "demo-hcmc-2025",
                "hierarchy": reform.OLD,
                "database_url": None,
            }
        )  # its own control database and broker: the cut-over must not touch the city demo's
    run = reform.run_reform_demo if reforming else city.run_city_demo
    result = run(
        s,
        say,
        rows_per_ward=rows,
        seed=seed,
        fresh=fresh,
        use_airflow=not no_airflow,
        db_server=db_server,
    )
    host, port = s.api.host, port or s.api.port
    url = f"http://{host}:{port}/console/"
    if isinstance(result, reform.ReformDemoResult):
        data, lines = reform.result_dict(result), reform.summary_lines(result)
    else:
        from bus.demo.logins import console_lines, demo_logins

        logins = demo_logins(s)
        data, lines = city.result_dict(result), city.summary_lines(result)
        data["console"] = {"url": url, "logins": [vars(x) for x in logins]}
        lines += console_lines(url, logins)
        if not keep_serving:
            lines.append(f"    serve it:  lgsp serve --port {port}   (or lgsp demo --serve)")
    if as_json:
        echo_json(data)
    else:
        for line in lines:
            click.echo(line)
    if not (result.archive_ok and result.agreeing == result.reconciled):
        raise SystemExit(ExitCode.FAILED)
    if keep_serving:
        from bus.cli.serve_cmd import run_server
        from bus.context import Context

        # the demo's connector files name ${LGSP_DEMO_DIR}: "run now" in the console needs it
        for key, value in city.demo_env(s).items():
            os.environ.setdefault(key, value)
        click.echo(f"serving {url} until Ctrl-C", err=True)
        run_server(Context.load(s), host, port)
