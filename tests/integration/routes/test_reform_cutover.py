"""The reform's cut-over on the real broker: recorded before the read while running sources
of the ended units are waited for or refused, idempotent on a rerun, partial with a non-zero
exit for a unit with no successor; routes across the eras (``--level all``), the district
level that ended sending later events straight to the city; a district connector after the
cut-over refused naming what became of its wards."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.context import Context
from bus.db import open_engine, session_scope
from bus.errors import ConfigurationError
from bus.routes import reform as reform_module
from bus.routes import run_routes
from bus.routes.reform import run_reform
from bus.runs import list_runs
from bus.units import load_hierarchy
from bus.units.models import UnitCutover
from bus.units.timeline import cutovers, load_timeline
from connectors.errors import ConnectorBusyError
from tests.integration.routes.test_reform import EFFECTIVE, publish_ward
from tests.integration.routes.test_routes import dataset, read_all

pytestmark = pytest.mark.integration

JULY_3_MS = int(dt.datetime(2025, 7, 3, 9, tzinfo=dt.UTC).timestamp() * 1000)


def _new_topic(name: str, old_ward: str) -> str:
    target = load_timeline().changes_of(old_ward, "hcmc-2024")[0].target({})
    return f"lgsp.{load_hierarchy('hcmc-2025').path(target)}.{name}"


def test_a_rerun_with_the_same_date_publishes_nothing_twice(
    settings: Settings, tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"t.ri{unique}"
    wards = ["26734", "26737", "26746"]  # a merge and two splits, into 26737, 26740, 26743
    dataset(settings, tmp_path, name, wards)
    for w in wards:
        publish_ward(settings, name, w, 2)

    read_targets: list[str] = []

    def event_ids(ctx: Context, dataset: str, topics: set[str]) -> dict[str, set[str]]:
        read_targets.extend(sorted(topics))  # the real read, recorded
        return real_event_ids(ctx, dataset, topics)

    real_event_ids = reform_module._event_ids
    monkeypatch.setattr(reform_module, "_event_ids", event_ids)
    first = run_reform(Context.build(settings), [name], EFFECTIVE)
    assert read_targets == []  # nothing re-keyed before the cut-over: targets not read
    second = run_reform(Context.build(settings), [name], EFFECTIVE)
    assert len(read_targets) == 3  # the rerun reads the 3 targets for what is already there

    assert first.rows_out == 6 and first.cutover_recorded and first.already == 0
    assert second.rows_out == 0 and second.already == 6 and not second.cutover_recorded
    with session_scope(settings) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(UnitCutover)) == 1
    on_targets = {t: len(read_all(settings, t)) for t in {_new_topic(name, w) for w in wards}}
    assert sum(on_targets.values()) == 6
    # a change made after the first run (before sources were refused) is re-keyed by the next
    publish_ward(settings, name, "26734", 3, ts_ms=JULY_3_MS)  # 26734-0..2: two new versions
    third = run_reform(Context.build(settings), [name], EFFECTIVE)
    assert third.rows_out == 3 and third.already == 4
    assert len(read_all(settings, _new_topic(name, "26734"))) == 2 + 3


def test_a_district_without_successor_makes_the_run_partial(
    settings: Settings, tmp_path: Path, unique: str, cli_env: dict[str, str]
) -> None:
    name = f"t.rd{unique}"
    dataset(settings, tmp_path, name, ["760", "26734"])
    publish_ward(settings, name, "26734", 2)
    result = CliRunner().invoke(
        cli, ["route", "reform", name, "--effective", "2025-07-01"], catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    assert "records re-keyed" in result.stdout
    assert f"not re-keyed: {name}: district 760 (Quận 1)" in result.stderr
    assert "no successor in 'hcmc-2025'" in result.stderr and "26737" in result.stderr
    [run] = list_runs(settings, "reform", None, 5)
    assert run.status == "partial" and run.rows_out == 2
    assert "760" in " ".join((run.detail or {})["unmapped"])


def _sqlite_source(settings: Settings, tmp_path: Path, unit: str, name: str, ds: str) -> str:
    from bus.connector_service.registration import register

    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text("CREATE TABLE items (item_id TEXT PRIMARY KEY, unit TEXT, title TEXT)")
        )
        conn.execute(sa.text("INSERT INTO items VALUES ('a', :u, 't')"), {"u": unit})
    engine.dispose()
    register(
        settings,
        {
            "name": name,
            "type": "sqlite",
            "role": "source",
            "agency": "ubnd-test",
            "unit": unit,
            "connection": {"url": url},
            "tables": [{"table": "items", "dataset": ds, "mode": "snapshot"}],
        },
    )
    return name


def test_a_running_source_of_an_ended_ward_is_waited_for_then_refused(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    name = f"t.rw{unique}"
    dataset(settings, tmp_path, name, ["26734"])
    publish_ward(settings, name, "26734", 1)
    ctx = Context.build(settings)
    source = _sqlite_source(settings, tmp_path, "26734", f"td-{unique}", name)
    ctx.connectors.acquire_lock(source, "other-host:1:-:-:run", 600)  # a run elsewhere

    with pytest.raises(ConnectorBusyError, match=rf"{source}.*still running.*not recorded"):
        run_reform(ctx, [name], EFFECTIVE, wait_s=0.6)
    assert cutovers(settings) == []  # nothing recorded, nothing re-keyed
    assert read_all(settings, _new_topic(name, "26734")) == []

    # the run ends while the reform waits: the reform goes on
    import threading

    ended = threading.Timer(1.0, ctx.connectors.release_lock, (source, "other-host:1:-:-:run"))
    ended.start()
    try:
        report = run_reform(ctx, [name], EFFECTIVE, wait_s=20)
    finally:
        ended.cancel()
    assert report.rows_out == 1 and len(cutovers(settings)) == 1
    assert ctx.connectors.lock(source) is None  # the reform let go of the lock it held
    # from now on the source is refused (the sync run checks after taking its lock)
    from bus.sync import run as sync_run

    with pytest.raises(ConfigurationError, match=r"successor is 26737 \(Phường Tân Định\)"):
        sync_run(Context.build(settings), source)


def test_a_district_connector_after_the_cutover_is_refused_by_name(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    from bus.sync import connector_for

    name = f"t.rc{unique}"
    dataset(settings, tmp_path, name, ["26734"])
    source = _sqlite_source(settings, tmp_path, "760", f"q1-{unique}", name)
    run_reform(Context.build(settings), [name], EFFECTIVE)
    with pytest.raises(ConfigurationError) as caught:
        connector_for(Context.build(settings), source)
    text = str(caught.value)
    assert "760 belongs to hierarchy 'hcmc-2024'" in text and "no successor" in text
    assert "26737" in text and "not in hcmc-2025" not in text


def test_route_all_levels_across_the_cutover(
    settings: Settings, tmp_path: Path, unique: str, cli_env: dict[str, str]
) -> None:
    """Old-ward events before the effective date go ward -> district -> city; those at or
    after it straight to the city; the re-keyed copies new ward -> city: one
    ``route run --level all`` covers both eras."""
    name = f"t.rx{unique}"
    dataset(settings, tmp_path, name, ["26734", "26761"])
    publish_ward(settings, name, "26734", 2)  # June 2025
    run_reform(Context.build(settings), [name], EFFECTIVE)
    publish_ward(settings, name, "26761", 3, ts_ms=JULY_3_MS)  # late events on an old topic

    runner = CliRunner()
    plan = runner.invoke(cli, ["route", "plan", name], catch_exceptions=False)
    assert plan.exit_code == 0, plan.output
    assert "hcmc-2024" in plan.stdout and "hcmc-2025" in plan.stdout
    assert f"from 2025-07-01: lgsp.79.{name}" in plan.stdout
    result = runner.invoke(cli, ["route", "run", name, "--level", "all"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"{name} into district" in result.stdout and f"{name} into city" in result.stdout

    district = read_all(settings, f"lgsp.79.760.{name}")
    assert sorted(m.value["after"]["item_id"] for m in district) == ["26734-0", "26734-1"]
    city = read_all(settings, f"lgsp.79.{name}")
    by_unit = sorted((m.value["after"]["unit"], m.value["op"]) for m in city)
    # June originals via the district, their re-keyed copies via 26737, July ones directly
    assert by_unit == [
        ("26734", "c"),
        ("26734", "c"),
        ("26737", "r"),
        ("26737", "r"),
        ("26761", "c"),
        ("26761", "c"),
        ("26761", "c"),
    ]
    # a second run forwards nothing again
    again = runner.invoke(cli, ["route", "run", name, "--level", "all"], catch_exceptions=False)
    assert again.exit_code == 0 and " 0 out" in again.stdout
    assert len(read_all(settings, f"lgsp.79.{name}")) == 7

    # a run reads the recorded cut-overs once, not once per route (3 routes into the city)
    ctx = Context.build(settings)
    queries: list[str] = []

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "unit_cutover" in statement:
            queries.append(statement)

    engine = open_engine(settings)
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        city_run = run_routes(ctx, name, "city")
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert city_run.routes == 3 and city_run.rows_out == 0
    assert len(queries) == 1
