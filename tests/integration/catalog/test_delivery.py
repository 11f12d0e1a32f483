"""Delivery under a grant against the real broker: refusals, masking, tokens, revocation, log."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from bus.catalog import (
    AccessDeniedError,
    add_agency,
    add_grant,
    query_access,
    revoke_grant,
)
from bus.catalog._common import today_vn
from bus.catalog.delivery import JsonlSink, deliver
from bus.catalog.models import Grant
from bus.cli.main import cli
from bus.config import Settings
from bus.db import session_scope
from bus.publish import Publisher
from bus.units import load_hierarchy, topic_name
from tests.unit.catalog.support import FAR_FUTURE, citizen_event, citizen_id, publish

pytestmark = pytest.mark.integration

CCCD = re.compile(rb"(?<!\d)\d{12}(?!\d)")
PURPOSE = "Xác minh nơi cư trú khi giải quyết thủ tục hành chính"


def make_dataset(settings: Settings, folder: Path, unique: str, units: list[str]) -> str:
    name = f"dancu.c{unique}"
    publish(settings, folder, name, units=units)
    add_agency(settings, "ubnd-q1", "Ủy ban nhân dân Quận 1")
    add_agency(settings, "so-y-te", "Sở Y tế")
    return name


def send(settings: Settings, dataset: str, events: list[dict[str, Any]], unit: str = "79") -> None:
    topic = topic_name(load_hierarchy(settings.hierarchy), unit, dataset)
    with Publisher(settings) as pub:
        assert pub.publish(topic, events, dataset=dataset).sent == len(events)


def grant(settings: Settings, dataset: str, agency: str = "ubnd-q1", **change: Any) -> int:
    data: dict[str, Any] = {
        "dataset": dataset,
        "agency": agency,
        "purpose": PURPOSE,
        "legal_basis": "Luật Cư trú 2020",
        "fields": "citizen_id,full_name,birth_date,unit,household_id,note",
        "expires": FAR_FUTURE,
    }
    data.update(change)
    return add_grant(settings, **data).id


class Collect:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.calls = 0

    def __call__(self, events: list[dict[str, Any]]) -> None:
        self.calls += 1
        self.events.extend(events)


@pytest.fixture
def dataset(settings: Settings, tmp_path: Path, unique: str) -> str:
    return make_dataset(settings, tmp_path, unique, ["79"])


def test_an_agency_without_a_grant_receives_nothing(settings: Settings, dataset: str) -> None:
    send(settings, dataset, [citizen_event(i) for i in range(5)])
    sink = Collect()
    with pytest.raises(AccessDeniedError, match=f"ubnd-q1 holds no grant for dataset {dataset}"):
        deliver(settings, "ubnd-q1", dataset, sink)
    assert sink.calls == 0 and sink.events == []
    # a grant to another agency gives ubnd-q1 nothing either
    grant(settings, dataset, agency="so-y-te")
    with pytest.raises(AccessDeniedError, match="holds no grant"):
        deliver(settings, "ubnd-q1", dataset, sink)
    assert sink.events == []
    refused = query_access(settings, agency="ubnd-q1")
    assert [(e.action, e.records) for e in refused] == [("refused", 0), ("refused", 0)]
    assert "holds no grant" in refused[0].detail["reason"]


def test_a_grant_without_pii_never_delivers_a_citizen_id(
    settings: Settings, dataset: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # kafka-python's DEBUG protocol traces dump raw wire bytes (the topic's own, unmasked
    # records): that is the broker client's level, not the delivery's; keep it at INFO.
    caplog.set_level(logging.INFO, logger="kafka")
    events = [citizen_event(i) for i in range(40)]
    send(settings, dataset, events)
    gid = grant(settings, dataset)
    out = tmp_path / "delivered.jsonl"
    with JsonlSink(out) as sink:
        report = deliver(settings, "ubnd-q1", dataset, sink, purpose=PURPOSE)
    assert report.delivered == 40 and report.grant_id == gid
    data = out.read_bytes()
    lines = [json.loads(line) for line in data.splitlines()]
    assert len(lines) == 40
    # no 12-digit number anywhere in what the agency received, nor in the logs
    assert CCCD.findall(data) == []
    assert CCCD.findall(caplog.text.encode()) == []
    for i in range(40):
        assert citizen_id(i).encode() not in data
        assert f"Nguyễn Văn Thử {i}".encode() not in data
    first = lines[0]
    assert set(first["after"]) == {
        "citizen_id",
        "full_name",
        "birth_date",
        "unit",
        "household_id",
        "note",
    }  # phone was not granted
    assert first["after"]["citizen_id"].startswith("tok_")
    assert first["after"]["birth_date"].startswith("tok_")
    assert first["after"]["unit"] == "26734"
    assert json.loads(first["key"])["citizen_id"] == first["after"]["citizen_id"]
    assert first["source"]["position"] is None
    assert len({line["after"]["citizen_id"] for line in lines}) == 40  # distinct inputs


def test_a_grant_with_pii_delivers_values_in_clear(settings: Settings, dataset: str) -> None:
    send(settings, dataset, [citizen_event(i) for i in range(3)])
    grant(settings, dataset, fields="citizen_id,birth_date", allow_pii=True)
    sink = Collect()
    deliver(settings, "ubnd-q1", dataset, sink)
    assert sorted(e["after"]["citizen_id"] for e in sink.events) == [
        citizen_id(i) for i in range(3)
    ]
    assert all(set(e["after"]) == {"citizen_id", "birth_date"} for e in sink.events)
    assert isinstance(sink.events[0]["after"]["birth_date"], dt.date)


def test_tokens_are_stable_across_runs_and_agencies_and_differ_by_key(
    settings: Settings, dataset: str
) -> None:
    send(settings, dataset, [citizen_event(i) for i in range(10)])
    grant(settings, dataset, agency="ubnd-q1")
    grant(settings, dataset, agency="so-y-te", fields="citizen_id")

    def tokens(s: Settings, agency: str, again: bool = False) -> dict[str, str]:
        sink = Collect()
        deliver(s, agency, dataset, sink, from_beginning=again)
        return {e["event_id"]: e["after"]["citizen_id"] for e in sink.events}

    first = tokens(settings, "ubnd-q1")
    assert len(first) == 10 and len(set(first.values())) == 10
    # a later run (a new process: new Settings on the same state folder) gives the same tokens
    again = Settings(home=settings.home, kafka_bootstrap=settings.kafka_bootstrap)
    assert tokens(again, "ubnd-q1", again=True) == first
    # another agency joining on the same citizens sees the same tokens
    assert tokens(settings, "so-y-te") == first
    # another key, other tokens
    rekeyed = settings.model_copy(update={"pii_key": SecretStr("another-secret-key-of-the-city")})
    other = tokens(rekeyed, "so-y-te", again=True)
    assert set(other) == set(first)
    assert all(other[k] != first[k] for k in first)


def test_revocation_stops_the_next_run(settings: Settings, dataset: str) -> None:
    send(settings, dataset, [citizen_event(i) for i in range(5)])
    gid = grant(settings, dataset)
    sink = Collect()
    assert deliver(settings, gid, None, sink).delivered == 5
    send(settings, dataset, [citizen_event(i, op="u", note="mới") for i in range(3)])
    revoke_grant(settings, gid)
    later = Collect()
    with pytest.raises(AccessDeniedError, match=f"grant {gid} .* was revoked"):
        deliver(settings, "ubnd-q1", dataset, later)
    with pytest.raises(AccessDeniedError, match="was revoked"):
        deliver(settings, gid, None, later)
    assert later.events == []
    # a new grant continues where the agency stopped: only the 3 updates
    grant(settings, dataset)
    assert deliver(settings, "ubnd-q1", dataset, later).delivered == 3
    assert {e["op"] for e in later.events} == {"u"}


def test_expiry_stops_the_next_run(settings: Settings, dataset: str) -> None:
    send(settings, dataset, [citizen_event(1)])
    gid = grant(settings, dataset, expires=today_vn().isoformat())
    assert deliver(settings, "ubnd-q1", dataset, Collect()).delivered == 1
    with session_scope(settings) as s:
        s.get(Grant, gid).expires = today_vn() - dt.timedelta(days=1)
    with pytest.raises(AccessDeniedError, match="expired on"):
        deliver(settings, "ubnd-q1", dataset, Collect())


def test_the_access_log_has_one_entry_per_delivery(settings: Settings, dataset: str) -> None:
    gid = grant(settings, dataset)
    send(settings, dataset, [citizen_event(i) for i in range(4)])
    deliver(settings, "ubnd-q1", dataset, Collect(), principal="cron-q1")
    deliver(settings, "ubnd-q1", dataset, Collect())  # nothing new: still logged
    send(settings, dataset, [citizen_event(i) for i in range(10, 12)])
    deliver(settings, "ubnd-q1", dataset, Collect())
    entries = query_access(settings, agency="ubnd-q1", dataset=dataset)
    assert [(e.action, e.records) for e in entries] == [
        ("deliver", 4),
        ("deliver", 0),
        ("deliver", 2),
    ]
    assert [e.principal for e in entries] == ["cron-q1", "lgsp-operator", "lgsp-operator"]
    assert all(e.grant_id == gid and e.purpose == PURPOSE for e in entries)
    assert entries[0].detail["group"] == f"lgsp.grant.ubnd-q1.{dataset}"
    assert entries[0].detail["pii"] == "tokenised"


def test_a_failing_sink_is_logged_and_its_batch_redelivered(
    settings: Settings, dataset: str
) -> None:
    grant(settings, dataset)
    send(settings, dataset, [citizen_event(i) for i in range(3)])

    def broken(events: list[dict[str, Any]]) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        deliver(settings, "ubnd-q1", dataset, broken)
    entry = query_access(settings, agency="ubnd-q1")[-1]
    assert (entry.action, entry.records, entry.detail["status"]) == ("deliver", 0, "failed")
    assert deliver(settings, "ubnd-q1", dataset, Collect()).delivered == 3


def test_every_unit_topic_of_the_dataset_is_delivered(
    settings: Settings, tmp_path: Path, unique: str
) -> None:
    name = make_dataset(settings, tmp_path, unique, ["26734", "27460"])
    send(settings, name, [citizen_event(i, unit="26734") for i in range(3)], unit="26734")
    send(settings, name, [citizen_event(i, unit="27460") for i in range(3, 5)], unit="27460")
    grant(settings, name)
    only = Collect()
    report = deliver(settings, "ubnd-q1", name, only, units=["27460"])
    assert report.delivered == 2 and report.topics == [f"lgsp.79.777.27460.{name}"]
    rest = Collect()
    assert deliver(settings, "ubnd-q1", name, rest).delivered == 3
    assert {e["source"]["unit"] for e in rest.events} == {"26734"}


def test_subscribe_command(cli_env: dict, tmp_path: Path, unique: str) -> None:
    from bus.config import get_settings
    from tests.unit.catalog.support import write_dataset

    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, list(args))

    name = f"dancu.c{unique}"
    assert run("dataset", "publish", str(write_dataset(tmp_path, name))).exit_code == 0
    assert run("agency", "add", "ubnd-q1", "--display", "UBND Quận 1").exit_code == 0
    records = tmp_path / "records.jsonl"
    records.write_text(
        "".join(
            json.dumps(
                {
                    "citizen_id": citizen_id(i),
                    "full_name": f"Trần Thị {i}",
                    "birth_date": "1990-05-0" + str(i + 1),
                    "unit": "26734",
                    "household_id": "HK-1",
                },
                ensure_ascii=False,
            )
            + "\n"
            for i in range(4)
        ),
        "utf-8",
    )
    topic = f"lgsp.79.{name}"
    sent = run("publish", topic, "--file", str(records), "--key", "citizen_id")
    assert sent.exit_code == 0, sent.output
    out = tmp_path / "q1.jsonl"
    refused = run("subscribe", name, "--agency", "ubnd-q1", "--out", str(out))
    assert refused.exit_code == 2 and "holds no grant" in refused.stderr
    assert not out.exists() or out.read_bytes() == b""
    added = run(
        "grant", "add", "--dataset", name, "--to", "ubnd-q1", "--purpose", PURPOSE,
        "--legal-basis", "Luật Cư trú 2020", "--fields", "citizen_id,unit",
        "--expires", FAR_FUTURE, "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    gid = json.loads(added.stdout)["id"]
    wrong = run("subscribe", name, "--agency", "ubnd-q1", "--purpose", "quảng cáo")
    assert wrong.exit_code == 2 and "allows the purpose" in wrong.stderr
    done = run("subscribe", name, "--agency", "ubnd-q1", "--out", str(out))
    assert done.exit_code == 0, done.output
    assert f"delivered 4 events of {name} to ubnd-q1" in done.stderr
    data = out.read_bytes()
    assert CCCD.findall(data) == [] and len(data.splitlines()) == 4
    assert all(set(json.loads(x)["after"]) == {"citizen_id", "unit"} for x in data.splitlines())
    log = run("access-log", "--agency", "ubnd-q1", "--json")
    actions = [(e["action"], e["records"]) for e in json.loads(log.stdout)]
    assert actions == [("refused", 0), ("refused", 0), ("deliver", 4)]
    assert run("grant", "revoke", str(gid)).exit_code == 0
    again = run("subscribe", name, "--agency", "ubnd-q1", "--out", str(out))
    assert again.exit_code == 2 and "was revoked" in again.stderr
    assert len(out.read_bytes().splitlines()) == 4
    assert get_settings().home == Path(cli_env["LGSP_HOME"])
