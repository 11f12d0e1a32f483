"""A source's events are published for the unit in force at their time, on the real broker: an
operator's dated merge and split inside ``hcmc-2025`` send a running source's later events to
the topic of the unit that continues its own (re-keyed, source block kept), a split's part
chosen by its rule; earlier events, and a new unit's record dated before the unit began, keep
the source's own topic; before a reform's cut-over is recorded the new list's topics are not
used (the re-keying route carries such events over)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from bus.cli._common import settings as cli_settings
from bus.config import Settings, reset_settings
from bus.connector_service.registration import register
from bus.registry import Registry, subject_for
from bus.sync import run
from bus.units import load_hierarchy
from bus.units.timeline import Cutover, add_change_file, event_units, record_cutover
from tests.helpers import run_cli
from tests.integration.connectors.helpers import config
from tests.integration.routes.test_routes import read_all

pytestmark = pytest.mark.integration

TABLE = "CREATE TABLE ho_so (id INTEGER PRIMARY KEY, unit TEXT, street TEXT, updated_at TIMESTAMP)"


def _mapping(tmp_path: Path, name: str) -> Path:
    """Inside hcmc-2025 on 2026-01-01: 26737 merged into 26740; 26743 split by street."""
    data = {
        "name": name,
        "from": "hcmc-2025",
        "to": "hcmc-2025",
        "effective": "2026-01-01",
        "changes": [
            {"old": "26737", "new": ["26740"]},
            {
                "old": "26743",
                "new": ["26740", "26758"],
                "rule": {"field": "street", "values": {"Lê Lợi": "26740"}, "default": "26758"},
            },
        ],
    }
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _source(
    settings: Settings, tmp_path: Path, name: str, unit: str, ds: str, rows: list[tuple]
) -> None:
    url = f"sqlite:///{tmp_path}/{name}.db"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(TABLE))
        conn.execute(
            sa.text("INSERT INTO ho_so VALUES (:id, :unit, :street, :at)"),
            [{"id": i, "unit": unit, "street": s, "at": at} for i, s, at in rows],
        )
    engine.dispose()
    tables = [{"table": "ho_so", "dataset": ds, "mode": "incremental", "cursor": "updated_at"}]
    register(settings, config("sqlite", "source", url, tables, name=name, unit=unit))


def _topic(unit: str, ds: str, hierarchy: str = "hcmc-2025") -> str:
    return f"lgsp.{load_hierarchy(hierarchy).path(unit)}.{ds}"


def _ids(settings: Settings, topic: str) -> dict[int, dict]:
    return {m.value["after"]["id"]: m.value for m in read_all(settings, topic)}


def test_a_merged_units_later_events_go_to_its_successor(
    broker_bootstrap: str, home: Path, tmp_path: Path, unique: str
) -> None:
    settings = Settings(home=home, kafka_bootstrap=broker_bootstrap, hierarchy="hcmc-2025")
    add_change_file(settings, _mapping(tmp_path, f"op-{unique}"))
    ds = f"t.e{unique}"
    rows = [
        (1, None, "2025-12-20 10:00:00"),  # before the merge: 26737's own topic
        (2, None, "2026-02-01 10:00:00"),  # after it: 26740's, unit re-keyed
        (3, None, "2025-03-01 10:00:00"),  # before 26737 began (2025-07-01): still its own
    ]
    _source(settings, tmp_path, f"src-{unique}", "26737", ds, rows)
    report = run(settings, f"src-{unique}")

    [table] = report.tables
    assert table.rows == 3 and table.moved == {_topic("26740", ds): 1}
    own, successor = _ids(settings, _topic("26737", ds)), _ids(settings, _topic("26740", ds))
    assert sorted(own) == [1, 3] and sorted(successor) == [2]
    assert {e["after"]["unit"] for e in own.values()} == {"26737"}
    moved = successor[2]
    assert moved["after"]["unit"] == "26740"  # re-keyed as the re-keying route does
    assert moved["source"]["unit"] == "26737" and moved["source"]["position"]  # kept
    assert moved["ts_ms"] == int(
        dt.datetime(2026, 2, 1, 10, tzinfo=dt.UTC).timestamp() * 1000
    )  # history is not restamped

    again = run(settings, f"src-{unique}")  # nothing new: nothing published twice
    assert again.tables[0].rows == 0
    assert len(read_all(settings, _topic("26740", ds))) == 1


def test_a_split_units_later_events_go_to_the_part_its_rule_picks(
    cli_env: dict[str, str], tmp_path: Path, unique: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LGSP_HIERARCHY", "hcmc-2025")
    reset_settings()
    settings = cli_settings()
    assert settings.hierarchy == "hcmc-2025"
    add_change_file(settings, _mapping(tmp_path, f"op-{unique}"))
    ds = f"t.s{unique}"
    rows = [
        (1, "Lê Lợi", "2025-12-31 16:59:00"),  # 23:59 in Vietnam: before the split
        (2, "Lê Lợi", "2025-12-31 17:00:00"),  # 00:00 on 2026-01-01 in Vietnam: 26740
        (3, "Pasteur", "2026-03-01 08:00:00"),  # no value of the rule: the default, 26758
    ]
    _source(settings, tmp_path, f"src-{unique}", "26743", ds, rows)
    code, out, _ = run_cli("connector", "run", f"src-{unique}")

    assert code == 0, out
    for part in ("26740", "26758"):
        assert f"1 dated after a change that ended the unit, into {_topic(part, ds)}" in out
    assert sorted(_ids(settings, _topic("26743", ds))) == [1]
    [(two, lê_lợi)] = _ids(settings, _topic("26740", ds)).items()
    [(three, pasteur)] = _ids(settings, _topic("26758", ds)).items()
    assert (two, lê_lợi["after"]["unit"]) == (2, "26740")
    assert (three, pasteur["after"]["unit"]) == (3, "26758")
    assert {lê_lợi["source"]["unit"], pasteur["source"]["unit"]} == {"26743"}


def test_before_a_cutover_the_new_lists_topics_are_not_used(settings: Settings) -> None:
    h24 = load_hierarchy("hcmc-2024")
    july = {"ts_ms": int(dt.datetime(2025, 7, 3, tzinfo=dt.UTC).timestamp() * 1000)}
    units = event_units(settings, "26734", h24)
    assert units.since_ms is None and units.of({**july, "after": {"unit": "26734"}}) is None
    record_cutover(settings, Cutover("hcmc-2024", "hcmc-2025", dt.date(2025, 7, 1)))
    after = event_units(settings, "26734", h24)  # (such a source is refused at run by then)
    moved = after.of({**july, "after": {"unit": "26734"}})
    assert moved is not None and (moved.hierarchy, moved.unit.code) == ("hcmc-2025", "26737")
    june = {"ts_ms": int(dt.datetime(2025, 6, 30, 16, 59, tzinfo=dt.UTC).timestamp() * 1000)}
    assert after.of({**june, "after": {"unit": "26734"}}) is None


def test_a_grant_for_the_merged_unit_reads_its_successors_topic(
    broker_bootstrap: str, home: Path, tmp_path: Path, unique: str
) -> None:
    """The dataset's topics follow the change too: a delivery under a grant for 26737 reads
    26740's topic, where 26737's later events went, and covers them; another ward's does not."""
    from bus.catalog.delivery import deliver
    from bus.units.timeline import effective_ms
    from tests.integration.catalog.test_delivery import Collect
    from tests.integration.catalog.test_grant_units import PURPOSE, events, grant, publish_to
    from tests.integration.routes.test_routes import dataset

    settings = Settings(home=home, kafka_bootstrap=broker_bootstrap, hierarchy="hcmc-2025")
    add_change_file(settings, _mapping(tmp_path, f"op-{unique}"))
    name = f"t.g{unique}"
    dataset(settings, tmp_path, name, ["26737"])
    december, february = effective_ms(dt.date(2025, 12, 20)), effective_ms(dt.date(2026, 2, 1))
    publish_to(settings, "hcmc-2025", "26737", name, events("26737", 2, december, "dec"))
    moved = [  # as a run of 26737's source publishes them (unit re-keyed, source kept)
        {**e, "after": {**e["after"], "unit": "26740"}} for e in events("26737", 1, february, "feb")
    ]
    registry = Registry(settings)  # as the source's run registers its schema there
    own = registry.latest(subject_for(_topic("26737", name))).schema
    registry.register(subject_for(_topic("26740", name)), own)
    publish_to(settings, "hcmc-2025", "26740", name, moved)

    grant(settings, name, "so-a", ["26737"], "hcmc-2025")
    sink = Collect()
    report = deliver(settings, "so-a", name, sink, purpose=PURPOSE)
    assert _topic("26740", name) in report.topics
    assert sorted(e["after"]["item_id"] for e in sink.events) == [
        "dec-26737-0",
        "dec-26737-1",
        "feb-26737-0",
    ]
    grant(settings, name, "so-b", ["26758"], "hcmc-2025")
    other = deliver(settings, "so-b", name, Collect(), purpose=PURPOSE)
    assert (other.delivered, other.outside) == (0, 3)
