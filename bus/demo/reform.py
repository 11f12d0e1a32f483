"""The reform demo (``lgsp demo --hierarchy hcmc-2025``): District 1's ten wards before
1 July 2025, the re-keying into the wards that replaced them, and the same pipeline after.

Steps (the city demo's own steps where they are the same):

1. **Before the reform** (hierarchy ``hcmc-2024``): the ten ward databases of District 1 with
   dossiers received from July 2024 to June 2025, their sources and the district and city
   sinks (``examples/demo/connectors``), one run of the pipeline (the ``lgsp_pipeline`` DAG, or
   in-process with ``--no-airflow``): ward → district → city.
2. **The reform** (``lgsp route reform --effective 2025-07-01``): the cut-over recorded, each
   old ward's current state re-keyed into the topic of the new ward that continues it; the
   old wards' sources are refused from then on (one refusal shown).
3. **After the reform** (``hcmc-2025``): one database per new ward (the real codes and names
   of the wards that took in District 1's, from the packaged data) with dossiers received
   since July 2025, their sources registered under the new codes, the same pipeline again:
   ward → city, the district sink draining its own era.
4. **Checks**: every new ward's source and every old ward's table (through the mapping)
   against the city copy; the archive verified; June 2025 regrouped into the new wards, and
   a 24-month trend per new ward across the cut-over (CSV, and a chart with the chart extra).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from bus import broker
from bus.config import Settings
from bus.demo import city
from bus.demo.city import CITY, DATASET, Databases, Say
from bus.errors import ConfigurationError

EFFECTIVE = dt.date(2025, 7, 1)
OLD = "hcmc-2024"
NEW = "hcmc-2025"
JUNE = "2025-06"
LAST_MONTH = "2026-10"
TREND_MONTHS = 24
HISTORY_FROM = dt.date(2024, 7, 1)


@dataclass
class ReformDemoResult:
    old_wards: list[str] = field(default_factory=list)
    new_wards: list[str] = field(default_factory=list)
    old_rows: int = 0
    new_rows: int = 0
    rekeyed: dict[str, tuple[str, int]] = field(default_factory=dict)  # old -> (new, records)
    refusal: str = ""
    dag_state: str = ""
    city_rows: int = 0
    reconciled: int = 0
    agreeing: int = 0
    disagreeing: list[str] = field(default_factory=list)  # connector: the report's summary
    archive_ok: bool = False
    archive_entries: int = 0
    june: list[tuple[str, str, int, float | None]] = field(default_factory=list)
    not_regrouped: list[str] = field(default_factory=list)
    trend_csv: str = ""
    chart: str = ""


def new_wards() -> list[str]:
    """The wards of ``hcmc-2025`` that took in one of the demo's (District 1's) wards."""
    from bus.units.timeline import load_timeline

    timeline = load_timeline()
    return sorted(
        {
            s.unit.code
            for w in city.ward_codes()
            for s in timeline.became(w, OLD, EFFECTIVE)
            if s.hierarchy == NEW
        },
        key=int,
    )


def _new_ward_sources(
    settings: Settings, dbs: Databases, rows: int, seed: int, say: Say
) -> tuple[list[str], int]:
    """A database and a source per new ward, dossiers received since the effective date."""
    from bus.connector_service.registration import register
    from bus.connectors_db import ConnectorStore
    from bus.generate.datasets import DEFAULT_END
    from bus.generate.sql import load_table
    from bus.units import load_hierarchy
    from connectors.errors import ConnectorNotFoundError

    h = load_hierarchy(NEW)
    store = ConnectorStore(settings)
    names, total = [], 0
    for i, code in enumerate(new_wards()):
        db = f"ward-{code}-2025"
        url = dbs.url(db)
        if not dbs.has_table(db):
            load_table(
                url, "ho_so", DATASET, rows, seed + 100 + i, [code],
                start=EFFECTIVE, end=DEFAULT_END, hierarchy=NEW,
            )  # fmt: skip
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            total += int(conn.execute(sa.text("SELECT count(*) FROM ho_so")).scalar_one())
        engine.dispose()
        name = f"ward-{code}-2025-dossiers"
        names.append(name)
        try:
            store.get(name)
            continue
        except ConnectorNotFoundError:
            pass
        register(
            settings,
            {
                "name": name,
                "type": dbs.kind,
                "role": "source",
                "agency": f"ubnd-phuong-{code}",
                "unit": code,
                "description": f"Hồ sơ một cửa của {h.get(code).name} (từ 01/7/2025)",
                "connection": {"url": url},
                "schedule": "*/10 * * * *",
                "tables": [
                    {
                        "table": "ho_so",
                        "dataset": DATASET,
                        "mode": "incremental",
                        "cursor": "updated_at",
                    }
                ],
            },
        )
    say(
        f"new wards ({NEW}): {', '.join(f'{c} {h.get(c).name}' for c in new_wards())}; "
        f"{total} dossiers since {EFFECTIVE.isoformat()}, sources registered under the new codes"
    )
    return names, total


def _reform(settings: Settings, result: ReformDemoResult, say: Say) -> None:
    from bus.context import Context
    from bus.routes.reform import run_reform
    from bus.sync import connector_for
    from bus.units import load_hierarchy
    from bus.units.timeline import load_timeline

    report = run_reform(Context.build(settings), [DATASET], EFFECTIVE)
    old_h, new_h = load_hierarchy(OLD), load_hierarchy(NEW)
    timeline = load_timeline(settings)
    say(
        f"reform {OLD} -> {NEW} on {EFFECTIVE.isoformat()}: {report.rows_out} records re-keyed "
        f"({report.already} already), cut-over "
        + ("recorded" if report.cutover_recorded else "recorded by an earlier run")
    )
    for ward in city.ward_codes():
        [change] = timeline.changes_of(ward, OLD)
        target = change.target({})
        topic = f"lgsp.{old_h.path(ward)}.{DATASET}"
        records = report.per_source.get(topic, 0)
        result.rekeyed[ward] = (target, records)
        split = (
            f" (split into {', '.join(change.new)}: default part)" if len(change.new) > 1 else ""
        )
        say(
            f"  {old_h.get(ward).name} ({ward}) -> {new_h.get(target).name} ({target}){split}: "
            f"{records} records"
        )
    try:
        connector_for(Context.load(settings), f"ward-{city.ward_codes()[0]}-dossiers")
    except ConfigurationError as exc:
        result.refusal = str(exc)
        say(f"an old ward's source is refused now: {exc}")


def _count(result: ReformDemoResult, name: str, report: Any) -> None:
    result.reconciled += 1
    result.agreeing += int(report.agree)
    if not report.agree:
        result.disagreeing.append(f"{name}: {report.summary}")


def _reconcile(settings: Settings, result: ReformDemoResult, say: Say) -> None:
    from bus.reconcile.core import Between
    from bus.reconcile.service import run_reconcile
    from bus.units.timeline import effective_ms

    sink = f"sink-{CITY}-dossiers"
    since = Between(low=effective_ms(EFFECTIVE) + 1)
    for code in result.new_wards:
        # the city table gathers every unit: this ward's own rows, written since the reform
        # (an old ward of the same code re-keyed into it is checked through the mapping)
        report = run_reconcile(
            settings,
            f"ward-{code}-2025-dossiers",
            "ho_so",
            sink,
            target_where={"_lgsp_unit": code, "receiving_unit": code, "_lgsp_ts_ms": since},
        )
        _count(result, f"ward-{code}-2025-dossiers", report)
    for code in result.old_wards:
        report = run_reconcile(
            settings, f"ward-{code}-dossiers", "ho_so", sink, through_mapping=True
        )
        _count(result, f"ward-{code}-dossiers (through the mapping)", report)
    say(
        f"reconciliation: {result.agreeing}/{result.reconciled} agree with the city copy "
        f"({len(result.new_wards)} new wards; {len(result.old_wards)} old wards through the "
        "mapping)"
    )


def _reports(settings: Settings, dbs: Databases, result: ReformDemoResult, say: Say) -> None:
    from bus.report.render import write_trend_chart, write_trend_csv
    from bus.report.service import sla_report, sla_trend

    tz = dt.timezone(dt.timedelta(hours=7))
    url, table = dbs.url(f"unit-{CITY}"), "ho_so"
    june = sla_report(
        settings, level="ward", month=JUNE, url=url, table=table, as_hierarchy=NEW,
        as_of=dt.datetime(2025, 6, 30, 23, 59, 59, tzinfo=tz), all_units=False,
    )  # fmt: skip
    for row in june.unit_rows():
        result.june.append((row["unit"], row["unit_name"], row["received"], row["on_time_rate"]))
    result.not_regrouped = [
        f"{n.unit} {n.name}: {n.dossiers} dossiers, {n.why}" for n in june.not_regrouped
    ]
    trend = sla_trend(
        settings, level="ward", month=LAST_MONTH, months=TREND_MONTHS, url=url, table=table,
        as_hierarchy=NEW, as_of=dt.datetime(2026, 11, 1, tzinfo=tz),
    )  # fmt: skip
    demo_dir = dbs.demo_dir
    csv_path = demo_dir / f"on-time-trend-{LAST_MONTH}.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as out:
        write_trend_csv(trend, out)
    result.trend_csv = str(csv_path)
    try:
        result.chart = str(write_trend_chart(trend, demo_dir / f"on-time-trend-{LAST_MONTH}.png"))
    except ImportError:  # matplotlib is the optional 'chart' extra
        result.chart = ""
    say(
        f"reports: June 2025 regrouped into {len(result.june)} new wards "
        f"({len(result.not_regrouped)} old wards not regrouped), {TREND_MONTHS}-month trend "
        f"{trend.months[0]}..{trend.months[-1]}"
    )


def _city_rows(dbs: Databases) -> int:
    engine = sa.create_engine(dbs.url(f"unit-{CITY}"))
    try:
        table = sa.Table("ho_so", sa.MetaData(), autoload_with=engine)
        live = sa.or_(table.c._lgsp_deleted.is_(None), table.c._lgsp_deleted == sa.false())
        with engine.connect() as conn:
            count = sa.select(sa.func.count()).select_from(table).where(live)
            return int(conn.execute(count).scalar_one())
    finally:
        engine.dispose()


def run_reform_demo(
    settings: Settings,
    say: Say,
    *,
    rows_per_ward: int = 200,
    seed: int = 2026,
    fresh: bool = False,
    use_airflow: bool = True,
    db_server: str | None = None,
) -> ReformDemoResult:
    """The demo across the 2025 reform (see the module's text). ``settings`` must start in
    ``hcmc-2024`` (the history before the reform)."""
    if settings.hierarchy != OLD:
        raise ConfigurationError(
            f"hierarchy: the reform demo starts from the history before the reform, in {OLD!r}; "
            f"the configured hierarchy is {settings.hierarchy!r}"
        )
    folder = city.demo_dir(settings)
    dbs = Databases(folder, db_server)
    dbs.kind  # noqa: B018 - refuse a bad --db-server before anything is done
    if fresh:
        city._fresh(settings, dbs, say)
        dbs.drop_all([f"ward-{c}-2025" for c in new_wards()])
    result = ReformDemoResult(old_wards=city.ward_codes(), new_wards=new_wards())
    if not settings.kafka_bootstrap:
        status = broker.start_embedded(settings)
        say(f"broker: embedded, {status.detail} at {status.bootstrap}")
    folder.mkdir(parents=True, exist_ok=True)
    with city.demo_environment(settings):
        from bus.context import Context
        from bus.routes import init_subjects
        from bus.units.timeline import cutovers

        ctx = Context.load(settings)  # before the reform (a rerun: after it)
        city._catalogue(ctx, say)
        say(f"before the reform ({OLD}): District 1's ten wards, dossiers from {HISTORY_FROM}")
        before = not cutovers(settings)  # a rerun after the cut-over leaves the old wards be
        result.old_rows = city._ward_databases(
            settings, dbs, rows_per_ward, seed, say, start=HISTORY_FROM,
            end=EFFECTIVE - dt.timedelta(days=1), touch=before,
        )  # fmt: skip
        names = city._connectors(ctx, dbs, say)
        if before:
            init_subjects(settings, DATASET)
            city._broker_forgot(ctx, names, say)
            city._pipeline(settings, use_airflow, say)
        _reform(settings, result, say)
        say(f"after the reform ({NEW}): the wards that replaced District 1's")
        _, result.new_rows = _new_ward_sources(settings, dbs, rows_per_ward, seed, say)
        result.dag_state = city._pipeline(settings, use_airflow, say)
        result.city_rows = _city_rows(dbs)
        _reconcile(settings, result, say)
        demo = city.DemoResult()
        city._archive(settings, demo, say)
        result.archive_ok, result.archive_entries = demo.archive_ok, demo.archive_entries
        _reports(settings, dbs, result, say)
    return result


def summary_lines(result: ReformDemoResult) -> list[str]:
    from bus.report.render import format_rate as rate
    from bus.units import load_hierarchy

    old_h, new_h = load_hierarchy(OLD), load_hierarchy(NEW)
    lines = [
        "",
        f"LGSP bus demo across the reform of {EFFECTIVE.isoformat()}: District 1's "
        f"{len(result.old_wards)} wards -> {len(result.new_wards)} wards of {NEW}",
        f"  before         {result.old_rows} dossiers in {len(result.old_wards)} wards ({OLD})",
        "  re-keyed",
    ]
    for ward, (target, records) in result.rekeyed.items():
        lines.append(
            f"    {old_h.get(ward).name:<24} {ward} -> {target} {new_h.get(target).name:<22} "
            f"{records:>5} records"
        )
    lines += [
        f"  after          {result.new_rows} dossiers in {len(result.new_wards)} new wards",
        city.airflow_line(result.dag_state),
        f"  city copy      {result.city_rows} rows",
        f"  reconciliation {result.agreeing}/{result.reconciled} agree",
        *(f"    differs: {line}" for line in result.disagreeing),
        city.archive_line(result.archive_entries, result.archive_ok),
        f"  June 2025 as {NEW}:",
    ]
    for code, name, received, value in result.june:
        lines.append(f"    {name:<26} {code} received {received:>4}  {rate(value):>6}")
    for line in result.not_regrouped:
        lines.append(f"    not regrouped: {line}")
    lines.append(f"  trend CSV      {result.trend_csv}")
    if result.chart:
        lines.append(f"  chart          {result.chart}")
    return lines


def result_dict(result: ReformDemoResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(result)
