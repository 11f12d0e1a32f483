"""The city demo: District 1's ten wards publish dossiers that reach the district and the city.

Steps (each idempotent, so a second run works without cleaning up; ``fresh`` starts over):
broker → catalogue (dataset, agencies) → one SQLite database per ward with generated dossiers →
connectors registered from ``examples/demo/connectors`` → roll-up subjects → one run of the
``lgsp_pipeline`` DAG in Airflow (every ward source, ward→district→city roll-ups, the district
and city sinks, the archive) → reconciliation of every ward against the city copy → archive
verification → a PII-free grant to a second agency → the on-time report from the city copy.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from bus import broker
from bus.config import PROJECT_ROOT, Settings
from bus.context import Context
from bus.errors import ConfigurationError, FatalError
from bus.kafka.ends import end_offsets
from bus.units import topic_name

EXAMPLES = PROJECT_ROOT / "examples" / "demo"
DATASET = "tthc.dossier"
DISTRICT = "760"
CITY = "79"
SECOND_AGENCY = "so-noi-vu"
SECOND_AGENCY_DISPLAY = "Sở Nội vụ Thành phố Hồ Chí Minh"
MONTH = "2026-10"
CCCD = re.compile(rb"(?<![0-9A-Za-z])\d{12}(?![0-9A-Za-z])")

Say = Callable[[str], None]


@dataclass
class DemoResult:
    wards: list[str] = field(default_factory=list)
    ward_rows: int = 0
    topic_records: dict[str, int] = field(default_factory=dict)
    sink_rows: dict[str, int] = field(default_factory=dict)
    dlq: int = 0
    dag_state: str = ""
    reconciled: int = 0
    agreeing: int = 0
    archive_entries: int = 0
    archive_ok: bool = False
    delivered: int = 0
    citizen_ids_leaked: int = 0
    on_time: list[tuple[str, int, int, float | None]] = field(default_factory=list)
    city_rate: float | None = None
    chart: str = ""


@dataclass(frozen=True)
class Databases:
    """Where the demo's departmental databases live: SQLite files in the state folder (the
    default), or databases ``lgsp_demo_<name>`` on a PostgreSQL or MariaDB server."""

    demo_dir: Path
    server: str | None = None  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432

    @property
    def kind(self) -> str:
        if self.server is None:
            return "sqlite"
        scheme = self.server.split(":", 1)[0]
        if scheme.startswith("postgresql"):
            return "postgresql"
        if scheme.startswith(("mysql", "mariadb")):
            return "mysql"
        raise ConfigurationError(
            f"--db-server: expected a postgresql+psycopg:// or mysql+pymysql:// URL, got {scheme}"
        )

    def database(self, name: str) -> str:
        return "lgsp_demo_" + name.replace("-", "_")

    def url(self, name: str) -> str:
        if self.server is None:
            return f"sqlite:///{self.demo_dir / f'{name}.db'}"
        return f"{self.server.rstrip('/')}/{self.database(name)}"

    def _admin(self) -> sa.Engine:
        assert self.server is not None
        default = "postgres" if self.kind == "postgresql" else ""
        return sa.create_engine(
            f"{self.server.rstrip('/')}/{default}", isolation_level="AUTOCOMMIT"
        )

    def has_table(self, name: str) -> bool:
        """Whether database ``name`` exists with its ``ho_so`` table (created if missing)."""
        if self.server is None:
            return (self.demo_dir / f"{name}.db").exists()
        admin = self._admin()
        try:
            with admin.connect() as conn:
                if self.kind == "postgresql":
                    found = conn.execute(
                        sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                        {"d": self.database(name)},
                    ).first()
                    if found is None:
                        conn.execute(sa.text(f'CREATE DATABASE "{self.database(name)}"'))
                else:
                    conn.execute(sa.text(f"CREATE DATABASE IF NOT EXISTS `{self.database(name)}`"))
        finally:
            admin.dispose()
        engine = sa.create_engine(self.url(name))
        try:
            return sa.inspect(engine).has_table("ho_so")
        finally:
            engine.dispose()

    def drop_all(self, names: list[str]) -> None:
        if self.server is None:
            return
        admin = self._admin()
        try:
            with admin.connect() as conn:
                for name in names:
                    if self.kind == "postgresql":
                        conn.execute(
                            sa.text(f'DROP DATABASE IF EXISTS "{self.database(name)}" WITH (FORCE)')
                        )
                    else:
                        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{self.database(name)}`"))
        finally:
            admin.dispose()

    def connector(self, data: dict[str, Any]) -> dict[str, Any]:
        """A demo connector file pointed at these databases (unchanged for SQLite)."""
        if self.server is None:
            return data
        name = Path(str(data["connection"]["url"]).rsplit("/", 1)[-1]).stem
        return {**data, "type": self.kind, "connection": {"url": self.url(name)}}


def database_names() -> list[str]:
    return [f"ward-{c}" for c in ward_codes()] + [f"unit-{DISTRICT}", f"unit-{CITY}"]


def ward_codes() -> list[str]:
    """The demo's wards: the publishing units of its dataset file (read once)."""
    return list(_ward_codes())


@functools.cache
def _ward_codes() -> tuple[str, ...]:
    doc = yaml.safe_load((EXAMPLES / "datasets" / "tthc.dossier.yaml").read_text("utf-8"))
    return tuple(str(u) for u in doc["units"])


def online_procedures(code: str) -> int:
    doc = yaml.safe_load((EXAMPLES / "connectors" / f"ward-{code}.yaml").read_text("utf-8"))
    match = re.search(r"\((\d+) thủ tục trực tuyến\)", doc.get("description", ""))
    return int(match.group(1)) if match else 10


def _fresh(settings: Settings, dbs: Databases, say: Say) -> None:
    dbs.drop_all(database_names())
    if not settings.kafka_bootstrap:
        broker.stop_embedded(settings)
    home = settings.home.resolve()
    if home.is_dir():
        for child in home.iterdir():
            if child.is_dir():
                shutil.rmtree(child)
            else:
                child.unlink()
    from bus.db.engine import dispose_engines

    dispose_engines()
    Context.forget(settings)  # built on the emptied control database (cut-overs, schema ids)
    say(f"fresh start: emptied {home}")


def _catalogue(ctx: Context, say: Say) -> None:
    from bus.catalog import add_agency
    from bus.catalog.datasets import publish_dataset

    result = publish_dataset(ctx, EXAMPLES / "datasets" / "tthc.dossier.yaml")
    add_agency(ctx.settings, SECOND_AGENCY, SECOND_AGENCY_DISPLAY)
    say(f"catalogue: dataset {DATASET} ({getattr(result, 'status', 'published')})")


def _ward_databases(
    settings: Settings,
    dbs: Databases,
    rows: int,
    seed: int,
    say: Say,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    touch: bool = True,
) -> int:
    """One database per demo ward with ``rows`` generated dossiers (received between
    ``start`` and ``end``: the generator's defaults when not given)."""
    from bus.generate.datasets import DEFAULT_END, DEFAULT_START
    from bus.generate.sql import load_table

    total = 0
    created = 0
    for i, code in enumerate(ward_codes()):
        url = dbs.url(f"ward-{code}")
        if not dbs.has_table(f"ward-{code}"):
            load_table(
                url,
                "ho_so",
                DATASET,
                rows,
                seed + i,
                [code],
                online_procedures=online_procedures(code),
                hierarchy=settings.hierarchy,
                start=start or DEFAULT_START,
                end=end or DEFAULT_END,
            )
            created += 1
        elif touch:
            _touch(url)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            total += int(conn.execute(sa.text("SELECT count(*) FROM ho_so")).scalar_one())
        engine.dispose()
    say(
        f"ward databases ({dbs.kind}): {len(ward_codes())} ({created} created), "
        f"{total} dossiers in all"
        + ("" if created or not touch else "; a few open dossiers resolved since the last run")
    )
    return total


def _touch(url: str) -> None:
    """A little activity between runs: resolve the two oldest open dossiers."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT dossier_id, due_at FROM ho_so WHERE resolved_at IS NULL "
                "AND status NOT IN ('withdrawn', 'rejected') ORDER BY received_at LIMIT 2"
            )
        ).all()
        latest = conn.execute(sa.text("SELECT max(updated_at) FROM ho_so")).scalar_one()
        stamp = dt.datetime.fromisoformat(str(latest)) + dt.timedelta(minutes=1)
        for dossier_id, _due in rows:
            conn.execute(
                sa.text(
                    "UPDATE ho_so SET status = 'resolved', resolved_at = :t, updated_at = :t "
                    "WHERE dossier_id = :d"
                ),
                {"t": stamp, "d": dossier_id},
            )
    engine.dispose()


def _connectors(ctx: Context, dbs: Databases, say: Say) -> list[str]:
    from bus.connector_service.registration import register
    from connectors.errors import ConnectorNotFoundError

    store = ctx.connectors
    names = []
    added = 0
    for path in sorted((EXAMPLES / "connectors").glob("*.yaml")):
        data = yaml.safe_load(path.read_text("utf-8"))
        names.append(data["name"])
        try:
            store.get(data["name"])
            continue
        except ConnectorNotFoundError:
            pass
        if data.get("role") == "sink":
            dbs.has_table(Path(str(data["connection"]["url"])).stem)  # the database exists
        register(ctx, dbs.connector(data), base_dir=path.parent)
        added += 1
    say(f"connectors: {len(names)} registered from examples/demo/connectors ({added} new)")
    return names


def _broker_forgot(ctx: Context, names: list[str], say: Say) -> None:
    """The embedded broker keeps topics in memory only: after a restart, replay the sources
    from the start (the sinks' versioned upserts make the replay harmless)."""
    from bus.kafka import clients

    h = ctx.configured_hierarchy  # the demo's wards are the configured hierarchy's
    admin = clients.admin(ctx.settings)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    if topic_name(h, ward_codes()[0], DATASET) in existing:
        return
    store = ctx.connectors
    reset = 0
    for name in names:
        if name.startswith("ward-"):
            reset += store.reset(name)
    if reset:
        say("the broker's topics are new: the ward sources will publish from the start again")


def _pipeline(settings: Settings, use_airflow: bool, say: Say) -> str:
    from bus.orchestration.manifest import write_manifest

    manifest = write_manifest(settings)
    if use_airflow:
        from bus.orchestration.local_airflow import dags_test, migrate

        migrate(settings)
        say("Airflow: running DAG lgsp_pipeline (sources, roll-ups, sinks, archive) ...")
        result = dags_test(settings, "lgsp_pipeline")
        output = result.stdout + result.stderr
        state = "success" if result.returncode == 0 and "state=success" in output else "failed"
        if state != "success":
            tail = "\n".join(output.strip().splitlines()[-20:])
            raise FatalError(f"DAG lgsp_pipeline failed:\n{tail}")
        say("Airflow: DAG run lgsp_pipeline succeeded")
        return state
    from bus.orchestration.specs import dag_specs, pipeline_stages, read_manifest
    from bus.orchestration.tasks import run_step

    # the lgsp_pipeline DAG's own steps, run here one after another
    spec = next(s for s in dag_specs(read_manifest(manifest)) if s.dag_id == "lgsp_pipeline")
    ctx = Context.load(settings)  # loaded now: a reform before this run changed its hierarchy
    for stage in pipeline_stages(spec):
        for step in stage:
            run_step(ctx, step)
    say("pipeline run in-process (no Airflow)")
    return "in-process"


def _counts(ctx: Context, dbs: Databases, result: DemoResult) -> None:
    settings, h = ctx.settings, ctx.configured_hierarchy
    topics = {
        "wards": [topic_name(h, c, DATASET) for c in ward_codes()],
        "district": [topic_name(h, DISTRICT, DATASET)],
        "city": [topic_name(h, CITY, DATASET)],
    }
    for level, names in topics.items():
        result.topic_records[level] = sum(end_offsets(settings, names).values())
    dlq = [f"{t}.dlq" for names in topics.values() for t in names]
    result.dlq = sum(end_offsets(settings, dlq).values())
    for unit in (DISTRICT, CITY):
        engine = sa.create_engine(dbs.url(f"unit-{unit}"))
        try:
            table = sa.Table("ho_so", sa.MetaData(), autoload_with=engine)
            live = sa.or_(table.c._lgsp_deleted.is_(None), table.c._lgsp_deleted == sa.false())
            with engine.connect() as conn:
                count = sa.select(sa.func.count()).select_from(table).where(live)
                result.sink_rows[unit] = int(conn.execute(count).scalar_one())
        finally:
            engine.dispose()


def _reconcile(settings: Settings, result: DemoResult, say: Say) -> None:
    from bus.reconcile.service import run_reconcile

    for code in ward_codes():
        report = run_reconcile(
            settings,
            f"ward-{code}-dossiers",
            "ho_so",
            f"sink-{CITY}-dossiers",
        )  # the city copy holds every ward: compared by its _lgsp_unit column
        result.reconciled += 1
        result.agreeing += int(report.agree)
    say(f"reconciliation: {result.agreeing}/{result.reconciled} wards agree with the city copy")


def _archive(settings: Settings, result: DemoResult, say: Say) -> None:
    from bus.archive.verify import verify

    report = verify(settings, dataset=DATASET)
    result.archive_entries = report.entries
    result.archive_ok = report.ok
    say(
        f"archive: {report.entries} entries in {len(report.chains)} hash chains, "
        f"{report.checkpoints} signed checkpoints, verify {'OK' if report.ok else 'FAILED'}"
    )


def _grant(settings: Settings, demo_dir: Path, result: DemoResult, say: Say) -> None:
    from bus.catalog import add_grant, get_dataset, list_grants
    from bus.catalog.delivery import JsonlSink, deliver

    info = get_dataset(settings, DATASET)
    live = [
        g
        for g in list_grants(settings)
        if g.agency == SECOND_AGENCY and g.dataset == DATASET and g.status() == "live"
    ]
    if not live:
        add_grant(
            settings,
            dataset=DATASET,
            agency=SECOND_AGENCY,
            purpose="Theo dõi tiến độ giải quyết hồ sơ (Quyết định 766/QĐ-TTg)",
            legal_basis="Quyết định 766/QĐ-TTg; Nghị định 61/2018/NĐ-CP",
            fields=[f for f in info.fields if f not in ("applicant_name",)],
            allow_pii=False,
            expires=dt.date(2027, 12, 31),
        )
    out = demo_dir / f"{SECOND_AGENCY}.jsonl"
    out.unlink(missing_ok=True)
    sink = JsonlSink(out)
    try:
        report = deliver(
            settings,
            SECOND_AGENCY,
            DATASET,
            sink,
            purpose="Theo dõi tiến độ giải quyết hồ sơ (Quyết định 766/QĐ-TTg)",
            from_beginning=True,
        )
    finally:
        sink.close()
    data = out.read_bytes()
    result.delivered = report.delivered
    result.citizen_ids_leaked = len(CCCD.findall(data))
    say(
        f"grant: {SECOND_AGENCY} received {report.delivered} dossier events without names, "
        f"citizen IDs tokenised ({result.citizen_ids_leaked} 12-digit numbers in its copy)"
    )


def _report(
    settings: Settings, dbs: Databases, demo_dir: Path, result: DemoResult, say: Say
) -> None:
    from bus.report.service import sla_report

    as_of = dt.datetime(2026, 11, 1, tzinfo=dt.timezone(dt.timedelta(hours=7)))
    report = sla_report(
        settings,
        level="ward",
        month=MONTH,
        as_of=as_of,
        unit=DISTRICT,
        url=dbs.url(f"unit-{CITY}"),
        table="ho_so",
    )
    for row in report.unit_rows():
        resolved = row["resolved_early"] + row["resolved_on_time"] + row["resolved_late"]
        result.on_time.append((row["unit_name"], row["received"], resolved, row["on_time_rate"]))
    result.city_rate = report.total.get("on_time_rate")
    chart = demo_dir / f"on-time-{MONTH}.png"
    try:
        from bus.report.render import write_chart

        write_chart(report, chart)
        result.chart = str(chart)
    except ImportError:  # matplotlib is the optional 'chart' extra
        result.chart = ""
    say(f"on-time report for {MONTH} read from the city's copy ({report.dossiers} dossiers)")


def demo_dir(settings: Settings) -> Path:
    """Where the demo keeps its databases, output files and chart: ``<home>/demo``."""
    return (settings.home / "demo").resolve()


def demo_env(settings: Settings) -> dict[str, str]:
    """The environment the demo's files need: its connector files name ``${LGSP_DEMO_DIR}``
    (the demo runs, an Airflow run they start, the console's server and tests set it)."""
    return {"LGSP_DEMO_DIR": str(demo_dir(settings))}


@contextmanager
def demo_environment(settings: Settings) -> Iterator[None]:
    """:func:`demo_env` set in this process for a demo run, the previous values put back."""
    env = demo_env(settings)
    previous = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_city_demo(
    settings: Settings,
    say: Say,
    *,
    rows_per_ward: int = 500,
    seed: int = 2026,
    fresh: bool = False,
    use_airflow: bool = True,
    db_server: str | None = None,
) -> DemoResult:
    folder = demo_dir(settings)
    dbs = Databases(folder, db_server)
    dbs.kind  # noqa: B018 - refuse a bad --db-server before anything is done
    if fresh:
        _fresh(settings, dbs, say)
    result = DemoResult(wards=ward_codes())
    if not settings.kafka_bootstrap:
        status = broker.start_embedded(settings)
        say(f"broker: embedded, {status.detail} at {status.bootstrap}")
    folder.mkdir(parents=True, exist_ok=True)
    with demo_environment(settings):
        ctx = Context.load(settings)
        _catalogue(ctx, say)
        result.ward_rows = _ward_databases(settings, dbs, rows_per_ward, seed, say)
        names = _connectors(ctx, dbs, say)
        from bus.routes import init_subjects

        init_subjects(ctx, DATASET)
        _broker_forgot(ctx, names, say)
        result.dag_state = _pipeline(settings, use_airflow, say)
        _counts(ctx, dbs, result)
        _reconcile(settings, result, say)
        _archive(settings, result, say)
        _grant(settings, folder, result, say)
        _report(settings, dbs, folder, result, say)
    return result


def airflow_line(dag_state: str) -> str:
    """The summary's Airflow line (shared by the reform demo)."""
    if dag_state == "in-process":
        return "  airflow        not used: the pipeline ran in-process (--no-airflow)"
    return f"  airflow        DAG run lgsp_pipeline {dag_state}"


def archive_line(entries: int, ok: bool) -> str:
    """The summary's archive line (shared by the reform demo)."""
    return f"  archive        {entries} entries, verify {'OK' if ok else 'FAILED'}"


def summary_lines(result: DemoResult) -> list[str]:
    from bus.report.render import format_rate as rate

    lines = [
        "",
        "LGSP bus demo: District 1 (10 wards) -> District 1 -> Ho Chi Minh City",
        f"  datasets       {DATASET} (publisher vp-ubnd-tp), granted PII-free to {SECOND_AGENCY}",
        f"  ward databases {result.ward_rows} dossiers in {len(result.wards)} wards",
        f"  topics         wards {result.topic_records.get('wards', 0)} events, district "
        f"{result.topic_records.get('district', 0)}, city {result.topic_records.get('city', 0)}",
        f"  sinks          district copy {result.sink_rows.get(DISTRICT, 0)} rows, "
        f"city copy {result.sink_rows.get(CITY, 0)} rows",
        f"  dead letters   {result.dlq}",
        airflow_line(result.dag_state),
        f"  reconciliation {result.agreeing}/{result.reconciled} wards agree with the city copy",
        archive_line(result.archive_entries, result.archive_ok),
        f"  grant          {result.delivered} events delivered, "
        f"{result.citizen_ids_leaked} citizen IDs exposed",
        f"  on time {MONTH} (working days, supplement pauses excluded):",
    ]
    for name, received, resolved, value in result.on_time:
        lines.append(
            f"    {name:<26} received {received:>4}  resolved {resolved:>4}  {rate(value):>6}"
        )
    lines.append(f"    {'District 1':<26} {'':>24}{rate(result.city_rate):>10}")
    if result.chart:
        lines.append(f"  chart          {result.chart}")
    return lines


def result_dict(result: DemoResult) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(result)
