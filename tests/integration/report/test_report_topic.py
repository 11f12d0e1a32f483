"""``lgsp report sla`` reading a city-level topic on the real broker: dossiers published as change
events (creates, later updates, a stale update, a delete) through the bus's Publisher."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
from typing import Any

import pytest
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.envelope import envelope_schema, load_record_schema, make_event
from bus.errors import NotFoundError
from bus.generate import DATASETS, generate
from bus.publish import Publisher
from bus.registry import Registry, subject_for
from bus.report.service import build_report, sla_report
from bus.units import load_hierarchy
from tests.unit.report.cases import CASES, END_OF_OCTOBER, H2024

pytestmark = pytest.mark.integration

SOURCE = {"agency": "so-noi-vu", "unit": "79", "system": "lgsp-rollup"}
VALID = [c for c in CASES if c["due_at"] is not None]


def ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)


def city_topic(settings: Settings, unique: str) -> str:
    """A unique city-level dossier topic with the envelope schema of tthc.Dossier."""
    topic = f"lgsp.79.tthc.dx{unique}"
    record = load_record_schema(DATASETS["tthc.dossier"].schema_path)
    Registry(settings).register(subject_for(topic), envelope_schema(record, settings.schemas_dir))
    return topic


def first_version(record: dict[str, Any]) -> dict[str, Any]:
    """The dossier as it was when received."""
    early = copy.deepcopy(record)
    early.update(
        status="received",
        resolved_at=None,
        status_history=record["status_history"][:1],
        updated_at=record["received_at"],
    )
    return early


def change_events(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events = []
    for r in records:
        key = {"dossier_id": r["dossier_id"]}
        first = first_version(r)
        events.append(
            make_event(op="c", key=key, source=SOURCE, ts_ms=ms(r["received_at"]), after=first)
        )
        if r["status_history"] != first["status_history"]:
            events.append(
                make_event(
                    op="u",
                    key=key,
                    source=SOURCE,
                    ts_ms=ms(r["updated_at"]),
                    before=first,
                    after=r,
                )
            )
    return events


def publish_cases(settings: Settings, topic: str) -> None:
    ghost = copy.deepcopy(VALID[0])
    ghost["dossier_id"] = "Z"  # created, then deleted: must not count
    events = change_events(VALID) + change_events([ghost])
    stale = next(r for r in VALID if r["dossier_id"] == "C")
    events.append(  # an older version of C arriving last: ignored (ts_ms order)
        make_event(
            op="u",
            key={"dossier_id": "C"},
            source=SOURCE,
            ts_ms=ms(stale["received_at"]) + 1,
            after=first_version(stale),
        )
    )
    events.append(
        make_event(
            op="d",
            key={"dossier_id": "Z"},
            source=SOURCE,
            ts_ms=ms(ghost["updated_at"]) + 1,
            before=ghost,
        )
    )
    with Publisher(settings) as pub:
        assert pub.publish(topic, events).sent == len(events)


def counts(row: dict[str, Any]) -> tuple[int, ...]:
    keys = ("received", "resolved", "resolved_early", "resolved_on_time", "resolved_late")
    return tuple(row[k] for k in (*keys, "open", "overdue", "withdrawn"))


def test_report_from_the_topic_matches_the_hand_count(settings: Settings, unique: str) -> None:
    topic = city_topic(settings, unique)
    publish_cases(settings, topic)
    rep = sla_report(settings, level="ward", month="2026-10", as_of=END_OF_OCTOBER, topic=topic)
    units = {r["unit"]: r for r in rep.unit_rows()}
    #                                recv res early on-time late open overdue withdrawn
    assert counts(units["26734"]) == (6, 4, 2, 1, 1, 1, 1, 0)
    assert units["26734"]["on_time_rate"] == 0.75
    assert counts(rep.total) == (10, 8, 4, 2, 2, 1, 1, 1)
    assert rep.dossiers == len(VALID)  # the deleted Z is gone, C counted once
    assert rep.unknown_unit == 1 and rep.unreadable == 0
    expected = build_report(
        VALID, hierarchy=H2024, level="ward", month="2026-10", as_of=END_OF_OCTOBER
    )
    assert rep.rows == expected.rows

    district = sla_report(
        settings, level="district", month="2026-10", as_of=END_OF_OCTOBER, topic=topic
    )
    d1 = next(r for r in district.unit_rows() if r["unit"] == "760")
    assert counts(d1) == (9, 7, 4, 1, 2, 1, 1, 1)


def test_cli_reads_the_topic(
    settings: Settings, cli_env: dict[str, str], unique: str, tmp_path: Any
) -> None:
    topic = city_topic(settings, unique)
    publish_cases(settings, topic)
    args = ["report", "sla", "--month", "2026-10", "--as-of", "2026-10-31T23:59:59+07:00"]
    result = CliRunner().invoke(
        cli, [*args, "--level", "ward", "--unit", "760", "--topic", topic], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"topic {topic}" in lines[0]
    tan_dinh = next(line for line in lines if line.startswith("26734") and " all " in line)
    assert tan_dinh.split()[-8:] == ["6", "4", "2", "1", "1", "1", "1", "75.0%"]
    assert lines[-2].startswith("total 760 Quận 1: received 9, resolved 7")

    chart = tmp_path / "d1.png"
    result = CliRunner().invoke(
        cli,
        [*args, "--level", "district", "--topic", topic, "--csv", "--chart", str(chart)],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    d1 = next(r for r in rows if r["unit"] == "760" and r["field"] == "all")
    assert (d1["received"], d1["resolved"], d1["on_time_rate"]) == ("9", "7", "0.7143")
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_generated_dossiers_through_the_bus(settings: Settings, unique: str) -> None:
    topic = city_topic(settings, unique)
    wards = [u.code for u in load_hierarchy("hcmc-2024").children("760")]
    records = list(generate("tthc.dossier", 400, 21, wards, dt.date(2026, 9, 1)))
    events = [
        make_event(
            op="r",
            key={"dossier_id": r["dossier_id"]},
            source={**SOURCE, "unit": r["receiving_unit"]},
            ts_ms=ms(r["updated_at"]),
            after=r,
        )
        for r in records
    ]
    with Publisher(settings) as pub:
        pub.publish(topic, events)
    for month, as_of in (
        ("2026-09", dt.datetime(2026, 9, 30, 23, 59, 59, tzinfo=END_OF_OCTOBER.tzinfo)),
        ("2026-10", END_OF_OCTOBER),
    ):
        rep = sla_report(settings, level="ward", month=month, as_of=as_of, topic=topic)
        direct = build_report(records, hierarchy=H2024, level="ward", month=month, as_of=as_of)
        assert rep.rows == direct.rows
        assert rep.total["received"] > 100
        assert 0.7 < rep.total["on_time_rate"] < 1.0


def test_missing_topic_is_a_clear_error(settings: Settings, unique: str) -> None:
    with pytest.raises(NotFoundError, match=f"topic lgsp.79.tthc.none{unique} does not exist"):
        sla_report(
            settings,
            level="ward",
            month="2026-10",
            as_of=END_OF_OCTOBER,
            topic=f"lgsp.79.tthc.none{unique}",
        )


def test_generate_publish_report_with_the_cli(
    settings: Settings, cli_env: dict[str, str], unique: str, tmp_path: Any
) -> None:
    topic = city_topic(settings, unique)
    lines = tmp_path / "dossiers.jsonl"
    runner = CliRunner()
    steps = [
        ["generate", "tthc.dossier", "--rows", "250", "--seed", "8", "--unit", "760"]
        + ["--start", "2026-10-01", "--out", str(lines)],
        ["publish", topic, "--file", str(lines), "--key", "dossier_id"],
        ["report", "sla", "--level", "ward", "--unit", "760", "--month", "2026-10"]
        + ["--as-of", "2026-10-31T23:59:59+07:00", "--topic", topic, "--csv", "--no-by-field"],
    ]
    outputs = []
    for args in steps:
        result = runner.invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, (args, result.stderr)
        outputs.append(result.stdout)
    assert "published 250 events" in outputs[1]
    rows = list(csv.DictReader(io.StringIO(outputs[2])))
    total = rows[-1]
    assert (total["kind"], total["unit"], total["received"]) == ("total", "760", "250")
    records = list(generate("tthc.dossier", 250, 8, ["760"], dt.date(2026, 10, 1)))
    direct = build_report(
        records, hierarchy=H2024, level="ward", unit="760", month="2026-10", as_of=END_OF_OCTOBER
    )
    assert total["resolved"] == str(direct.total["resolved"])
    assert total["overdue"] == str(direct.total["overdue"])
