"""``lgsp route list|plan|init|run|reform|fan-down`` and ``lgsp runs``."""

from __future__ import annotations

import datetime as dt

import click

from bus.cli._common import context, echo_json, echo_table, settings
from bus.errors import BrokerUnavailableError, RetriableError
from bus.routes import init_subjects, plan_routes, route_lag, run_fan_down, run_routes
from bus.routes.plan import all_routes
from bus.runs import list_runs


@click.group("route")
def route_group() -> None:
    """Roll-up (ward → district → city) and fan-down routes of datasets."""


def _datasets(dataset: str | None) -> list[str]:
    if dataset:
        return [dataset]
    from bus.catalog import list_datasets

    return [d.name for d in list_datasets(settings())]


@route_group.command("list")
@click.argument("dataset", required=False)
@click.option("--no-lag", is_flag=True, help="Do not ask the broker for lag.")
def route_list(dataset: str | None, no_lag: bool) -> None:
    """Routes that follow from the hierarchy and the catalogue, with lag per child topic."""
    ctx = context()
    rows = []
    for name in _datasets(dataset):
        routes = all_routes(ctx, name)
        lag: dict[str, int] = {}
        if not no_lag:
            try:
                lag = route_lag(ctx.settings, routes)
            except BrokerUnavailableError:
                lag = {}
        for r in routes:
            rows.append(
                (name, r.level, r.source_topic, r.target_topic, lag.get(r.source_topic, ""))
            )
    echo_table(["DATASET", "INTO", "FROM TOPIC", "TO TOPIC", "LAG"], rows)


@route_group.command("plan")
@click.argument("dataset")
def route_plan(dataset: str) -> None:
    """The roll-up routes of DATASET in every hierarchy (era): before a reform ward ->
    district -> city, after it ward -> city (a level that no longer exists is skipped).
    After a recorded cut-over, a route into an ended level sends the events from the
    effective date on straight to the level kept (AFTER CUT-OVER)."""
    from zoneinfo import ZoneInfo

    from bus.routes.plan import after_cutover
    from bus.units.timeline import cutovers, load_timeline

    ctx = context()
    timeline = load_timeline(ctx.settings)
    cuts = cutovers(ctx.settings)
    names = timeline.era_names
    eras = names[names.index(ctx.settings.hierarchy) :]
    vietnam = ZoneInfo("Asia/Ho_Chi_Minh")
    rows = []
    for r in all_routes(ctx, dataset, eras=eras):
        root = timeline.hierarchy(r.era).root
        since = root.valid_from.isoformat() if root.valid_from else "…"
        until = root.valid_to.isoformat() if root.valid_to else "…"
        redirect = after_cutover(ctx, r, cuts)
        later = ""
        if redirect is not None:
            day = dt.datetime.fromtimestamp(redirect[0] / 1000, vietnam).date()
            later = f"from {day.isoformat()}: {redirect[1]}"
        rows.append((r.era, f"{since} to {until}", r.level, r.source_topic, r.target_topic, later))
    echo_table(["ERA", "IN FORCE", "INTO", "FROM TOPIC", "TO TOPIC", "AFTER CUT-OVER"], rows)


@route_group.command("reform")
@click.argument("dataset", default="all")
@click.option(
    "--effective",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The reform's effective date (YYYY-MM-DD), e.g. 2025-07-01.",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="Seconds to wait for running sources of the ended units before refusing.",
)
@click.option("--json", "as_json", is_flag=True)
def route_reform(dataset: str, effective: dt.datetime, wait: float, as_json: bool) -> None:
    """Re-key DATASET (or all) at a reform: the cut-over is recorded first (running sources
    of the ended units waited for, then refused from then on), then each old unit's current
    state is published into the topic of the unit that replaced it, with the new unit code.
    A rerun publishes only what is not re-keyed yet. Exit 1 when a publishing unit has no
    successor (the run is partial)."""
    from bus.errors import ExitCode
    from bus.routes.reform import run_reform

    report = run_reform(
        context(), _datasets(None if dataset == "all" else dataset), effective.date(), wait_s=wait
    )
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(
            f"reform {report.from_hierarchy} -> {report.to_hierarchy} on {report.effective}: "
            f"{report.rows_in} events read, {report.rows_out} records re-keyed into "
            f"{len(report.per_target)} topics, {report.already} already re-keyed"
            + ("" if report.cutover_recorded else " (cut-over recorded by an earlier run)")
        )
        for topic, n in sorted(report.per_target.items()):
            click.echo(f"  {topic}: {n}")
        for where, why in sorted(report.unmapped.items()):
            click.echo(f"not re-keyed: {where.split(' ')[0]}: {why}", err=True)
    if report.unmapped:
        raise SystemExit(ExitCode.FAILED)


@route_group.command("init")
@click.argument("dataset")
def route_init(dataset: str) -> None:
    """Register the dataset's schema for every topic on its roll-up path (idempotent)."""
    subjects = init_subjects(context(), dataset)
    click.echo(f"{len(subjects)} subjects ready for {dataset}")


@route_group.command("run")
@click.argument("dataset")
@click.option("--level", required=True, help="The level routed into (district, city) or all.")
@click.option("--json", "as_json", is_flag=True)
@click.option("--follow", is_flag=True, help="Keep running: one bounded run every --interval.")
@click.option("--interval", type=float, default=30, show_default=True)
def route_run(dataset: str, level: str, as_json: bool, follow: bool, interval: float) -> None:
    """One bounded run of the routes into LEVEL (planned and checked first).

    DATASET may be 'all' (every dataset of the catalogue) and LEVEL 'all' (every parent level,
    deepest first). With --follow, a broker or database away is waited for (backing off up
    to 30 s); the first Ctrl-C or SIGTERM stops after the run in hand, the second at once."""

    def once() -> bool:
        for name in _datasets(None if dataset == "all" else dataset):
            _route_once(name, level, as_json)
        return False  # every run reads to the end: the next waits --interval

    if not follow:
        once()
        return
    from bus.longrun import Follow, stop_signals
    from bus.longrun import follow as follow_runs

    with stop_signals() as stop:
        policy = Follow(should_stop=stop, poll_s=interval)
        follow_runs(once, policy, retry=(RetriableError,), what="route run")


def _route_once(dataset: str, level: str, as_json: bool) -> None:
    from bus.routes.plan import parent_levels

    ctx = context()
    levels = parent_levels(ctx) if level == "all" else [level]
    for lvl in levels:
        routes = plan_routes(ctx, dataset, lvl)
        report = run_routes(ctx, dataset, lvl, routes)
        if as_json:
            echo_json(report.to_dict())
        else:
            lag = sum(report.lag.values())
            click.echo(
                f"{dataset} into {lvl}: {report.routes} routes, {report.rows_in} in, "
                f"{report.rows_out} out, {report.dlq} DLQ, lag {lag}, {report.seconds:.1f}s"
            )


@route_group.command("fan-down")
@click.argument("dataset")
@click.option("--from", "source_unit", default="79", show_default=True)
@click.option("--to-level", default="ward", show_default=True)
@click.option("--unit-field", default="unit", show_default=True, help="'' to send to all.")
def fan_down(dataset: str, source_unit: str, to_level: str, unit_field: str) -> None:
    """Deliver a higher unit's dataset (e.g. city master data) to the topics below it."""
    report = run_fan_down(
        context(),
        dataset,
        source_unit=source_unit,
        to_level=to_level,
        unit_field=unit_field or None,
    )
    click.echo(
        f"{dataset} fan-down to {to_level}: {report.rows_in} in, {report.rows_out} out, "
        f"{report.dlq} DLQ"
    )


@click.command("runs")
@click.option("--kind", default=None, help="sync, route, fan-down, reconcile, archive ...")
@click.option("--name", default=None)
@click.option("--limit", type=int, default=30, show_default=True)
def runs(kind: str | None, name: str | None, limit: int) -> None:
    """Recent runs with rows in/out, DLQ count, lag and duration."""
    rows = []
    for r in list_runs(settings(), kind, name, limit):
        lag = (r.detail or {}).get("lag")
        lag_total = sum(lag.values()) if isinstance(lag, dict) else (lag or "")
        rows.append(
            (
                r.id,
                r.kind,
                r.name,
                r.started_at.isoformat(timespec="seconds") if r.started_at else "",
                r.status,
                r.rows_in,
                r.rows_out,
                r.dlq,
                lag_total,
                f"{r.seconds:.1f}s" if r.seconds is not None else "",
            )
        )
    echo_table(["ID", "KIND", "NAME", "STARTED", "STATUS", "IN", "OUT", "DLQ", "LAG", "TIME"], rows)
