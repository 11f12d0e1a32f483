"""The auditor API: archive status, verify as a background job, the history of one key across
the hash chains, replay to JSON lines equal to ``lgsp replay``; every call access-logged, PII
tokenised unless a grant covers it, keys never in the request log."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bus.archive.archiver import Archiver
from bus.archive.checkpoint import export_checkpoints
from bus.archive.replay import content_hash
from bus.archive.signing import load_signing_key, public_pem
from bus.catalog import add_grant, query_access
from bus.db import open_engine
from bus.envelope import canonical_key
from bus.publish import Publisher
from tests.integration.api.conftest import LGSP, Server
from tests.unit.catalog.support import FAR_FUTURE, citizen_event, citizen_id, publish

pytestmark = pytest.mark.integration

CCCD = re.compile(r"(?<!\d)\d{12}(?!\d)")
WHY = "Thanh tra việc chia sẻ dữ liệu dân cư"
PURPOSE = {"X-Purpose": requests.utils.quote(WHY)}  # UTF-8, percent-encoded
ODD_KEY = "A/B'; DROP TABLE archive_entry;--"
FROM, TO = "2026-01-01T00:00:00+07:00", "2027-01-01T00:00:00+07:00"
AS_OF = "2026-02-02T09:45:00+07:00"


def events() -> list[dict[str, Any]]:
    """Five citizens, citizen 1 updated twice later, and one with path and SQL in its key."""
    out = [citizen_event(i) for i in range(5)]
    for n in (1, 2):
        later = citizen_event(1, op="u", full_name=f"Nguyễn Văn Thử 1 lần {n}")
        later["event_id"] = f"ev-79-u-1-{n}"
        later["ts_ms"] += 60_000 * n
        out.append(later)
    odd = citizen_event(9, citizen_id=ODD_KEY)
    odd["key"] = canonical_key({"citizen_id": ODD_KEY})
    return [*out, odd]


@pytest.fixture
def archived(server: Server, tmp_path: Path, unique: str) -> str:
    name = f"dancu.c{unique}"
    publish(server.settings, tmp_path, name)
    with Publisher(server.settings) as pub:
        assert pub.publish(f"lgsp.79.{name}", events(), dataset=name).sent == 8
    assert Archiver(server.settings).run_once(f"lgsp.79.{name}").appended == 8
    return name


def grant_pii(server: Server, dataset: str, agency: str) -> None:
    add_grant(
        server.settings,
        dataset=dataset,
        agency=agency,
        purpose="Thanh tra",
        legal_basis="Luật Thanh tra 2022",
        fields="citizen_id,full_name,birth_date,phone,unit,household_id,note",
        allow_pii=True,
        expires=FAR_FUTURE,
    )


def quoted(key: str) -> str:
    return requests.utils.quote(key, safe="")


def test_history_of_one_key_across_the_chains(server: Server, archived: str) -> None:
    name = archived
    auditor = server.key("auditor", "thanh-tra")
    consumer = server.key("consumer", "ubnd-q1")
    path = f"/v1/audit/datasets/{name}/history/{citizen_id(1)}"

    assert server.call("GET", path, headers=PURPOSE).status_code == 401
    assert server.call("GET", path, consumer, headers=PURPOSE).status_code == 403
    no_purpose = server.call("GET", path, auditor)
    assert no_purpose.status_code == 422
    assert [e["field"] for e in no_purpose.json()["errors"]] == ["X-Purpose"]

    got = server.call("GET", path, auditor, headers=PURPOSE)
    assert got.status_code == 200, got.text
    history = got.json()
    assert history["verified"] is True
    assert [e["op"] for e in history["events"]] == ["c", "u", "u"]
    assert [e["ts_ms"] for e in history["events"]] == sorted(e["ts_ms"] for e in history["events"])
    for event in history["events"]:
        [position] = event["positions"]
        assert position["topic"] == f"lgsp.79.{name}" and position["status"] == "verified"
        assert event["verified"] is True
    seqs = [e["positions"][0]["seq"] for e in history["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    [chain] = history["chains"]
    assert chain["ok"] is True and chain["problems"] == []
    # PII as tokens for an auditor without a PII grant: no citizen id, no name
    assert CCCD.findall(got.text) == [] and "Nguyễn" not in got.text
    assert history["events"][0]["event"]["after"]["full_name"].startswith("tok_")
    assert history["events"][0]["event"]["after"]["unit"] == "26734"

    # a grant with PII covering the fields shows them in clear
    grant_pii(server, name, "thanh-tra")
    clear = server.call("GET", path, auditor, headers=PURPOSE).json()
    assert clear["events"][-1]["event"]["after"]["full_name"] == "Nguyễn Văn Thử 1 lần 2"
    assert clear["key"] == canonical_key({"citizen_id": citizen_id(1)})
    as_json = quoted(json.dumps({"citizen_id": citizen_id(1)}))
    by_json = server.call(
        "GET", f"/v1/audit/datasets/{name}/history/{as_json}", auditor, headers=PURPOSE
    )
    assert by_json.json() == clear

    # keys with path characters and SQL: found when archived, else 404; malformed 422
    odd = server.call(
        "GET", f"/v1/audit/datasets/{name}/history/{quoted(ODD_KEY)}", auditor, headers=PURPOSE
    )
    assert odd.status_code == 200, odd.text
    assert odd.json()["events"][0]["event"]["after"]["citizen_id"] == ODD_KEY
    for missing in ("079099999999", "../../etc/passwd", "x' OR '1'='1", "%2500"):
        r = server.call(
            "GET", f"/v1/audit/datasets/{name}/history/{quoted(missing)}", auditor, headers=PURPOSE
        )
        assert r.status_code == 404, (missing, r.text)
        assert missing not in r.text
    nul = server.call("GET", f"/v1/audit/datasets/{name}/history/a%00b", auditor, headers=PURPOSE)
    assert nul.status_code == 422 and nul.json()["errors"][0]["field"] == "path"
    for bad in ('{"citizen_id": ', '{"id": 1}', "x" * 1001):
        r = server.call(
            "GET", f"/v1/audit/datasets/{name}/history/{quoted(bad)}", auditor, headers=PURPOSE
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "key", r.text
    assert (
        server.call(
            "GET", "/v1/audit/datasets/dancu.nope/history/1", auditor, headers=PURPOSE
        ).status_code
        == 404
    )
    assert "archive_entry" in sa.inspect(open_engine(server.settings)).get_table_names()

    # every call is in the access log, with a token of the key, never the key
    reads = [e for e in query_access(server.settings, agency="thanh-tra", action="read")]
    calls = [e for e in reads if e.detail and e.detail.get("call") == "history"]
    assert len(calls) >= 8 and calls[0].purpose == WHY
    assert calls[0].records == 3 and calls[0].principal.startswith("api-key:")
    assert citizen_id(1) not in json.dumps([c.detail for c in calls])
    refused = query_access(server.settings, agency="ubnd-q1", action="refused")
    assert len(refused) == 1
    outcomes = [c.detail["outcome"] for c in calls]
    assert outcomes.count("ok") == 4 and "error 404" in outcomes and "error 422" in outcomes

    # a tampered entry: its chain no longer verifies, and the history says so
    with open_engine(server.settings).begin() as conn:
        conn.execute(
            sa.text("UPDATE archive_entry SET ts_ms = ts_ms + 1 WHERE dataset = :d AND seq = :s"),
            {"d": name, "s": seqs[1]},
        )
    tampered = server.call("GET", path, auditor, headers=PURPOSE).json()
    assert tampered["verified"] is False
    assert tampered["chains"][0]["ok"] is False and tampered["chains"][0]["problems"]
    assert {p["status"] for e in tampered["events"] for p in e["positions"]} == {"failed"}

    # the request log shows the route, never the key
    code, out = server.stop()
    assert code == 0
    assert "/history/***" in out
    assert citizen_id(1) not in out and "DROP" not in out


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    done = subprocess.run([LGSP, *args], capture_output=True, env=env)
    assert done.returncode == 0, done.stderr.decode()
    return done


def test_replay_jsonl_equals_the_cli(
    server: Server, archived: str, cli_env: dict[str, str], tmp_path: Path
) -> None:
    name = archived
    auditor = server.key("auditor", "thanh-tra")
    masked_auditor = server.key("auditor", "kiem-toan")
    grant_pii(server, name, "thanh-tra")
    replay = f"/v1/audit/datasets/{name}/replay"
    purpose = WHY

    # events in a range: byte for byte what 'lgsp replay --from --to' prints
    api = server.call("GET", replay, auditor, headers=PURPOSE, params={"from": FROM, "to": TO})
    assert api.status_code == 200, api.text
    assert api.headers["content-type"].startswith("application/x-ndjson")
    assert api.headers["transfer-encoding"] == "chunked"  # streamed, no length known up front
    out = cli(cli_env, "replay", name, "--from", FROM, "--to", TO, "--purpose", purpose).stdout
    assert len(out.splitlines()) == 8
    assert hashlib.sha256(api.content).hexdigest() == hashlib.sha256(out).hexdigest()
    assert api.headers["X-LGSP-Selected"] == "8" and api.headers["X-LGSP-Masked"] == "none"

    # as of a moment: the rows 'lgsp replay --as-of --into' writes, by content hash
    rows = server.call("GET", replay, auditor, headers=PURPOSE, params={"as_of": AS_OF})
    assert rows.status_code == 200, rows.text
    lines = [json.loads(line) for line in rows.text.splitlines()]
    target = f"sqlite:///{tmp_path / 'audit.db'}"
    report = json.loads(
        cli(
            cli_env,
            "replay",
            name,
            "--as-of",
            AS_OF,
            "--into",
            target,
            "--purpose",
            purpose,
            "--json",
        ).stdout
    )
    assert rows.headers["X-LGSP-Content-Hash"] == report["content_hash"]
    assert content_hash([(r["key"], r["record"]) for r in lines]) == report["content_hash"]
    assert len(lines) == report["keys"] == int(rows.headers["X-LGSP-Keys"]) == 6
    [one] = [r for r in lines if r["key"] == canonical_key({"citizen_id": citizen_id(1)})]
    assert one["record"]["full_name"] == "Nguyễn Văn Thử 1 lần 2"
    engine = sa.create_engine(target)
    with engine.connect() as conn:
        query = f"SELECT _lgsp_key FROM replay_{name.replace('.', '_')}"  # noqa: S608
        table = conn.execute(sa.text(query))
        assert sorted(r[0] for r in table) == [r["key"] for r in lines]
    engine.dispose()

    # an auditor agency without a PII grant gets the same lines with PII as tokens
    masked = server.call(
        "GET", replay, masked_auditor, headers=PURPOSE, params={"from": FROM, "to": TO}
    )
    assert masked.status_code == 200 and len(masked.text.splitlines()) == 8
    assert CCCD.findall(masked.text) == [] and "Nguyễn" not in masked.text
    assert masked.headers["X-LGSP-Masked"] == "birth_date,citizen_id,full_name"
    masked_rows = server.call(
        "GET", replay, masked_auditor, headers=PURPOSE, params={"as_of": AS_OF}
    )
    assert CCCD.findall(masked_rows.text) == [] and len(masked_rows.text.splitlines()) == 6

    # every replay access-logged for the key's agency
    logged = query_access(server.settings, action="replay")
    api_reads = [e for e in logged if e.principal.startswith("api-key:")]
    assert [e.agency for e in api_reads] == ["thanh-tra", "thanh-tra", "kiem-toan", "kiem-toan"]
    assert {e.detail["kind"] for e in api_reads} == {"replay-events", "replay-as-of"}

    # refusals and bad input
    assert server.call("GET", replay, params={"as_of": AS_OF}).status_code == 401
    consumer = server.key("consumer", "ubnd-q1")
    assert (
        server.call("GET", replay, consumer, headers=PURPOSE, params={"as_of": AS_OF}).status_code
        == 403
    )
    for params, field in (
        ({"as_of": AS_OF}, None),
        ({}, "as_of"),
        ({"as_of": AS_OF, "from": FROM}, "as_of"),
        ({"as_of": "2026-02-02T09:40:00"}, "as_of"),
        ({"from": "soon"}, "from"),
        ({"from": TO, "to": FROM}, "to"),
        ({"as_of": AS_OF, "unit": "79; DROP"}, "unit"),
    ):
        headers = PURPOSE if field else {}
        r = server.call("GET", replay, auditor, headers=headers, params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["errors"][0]["field"] == (field or "X-Purpose"), (params, r.text)
    nothing = server.call(
        "GET",
        "/v1/audit/datasets/dancu.nope/replay",
        auditor,
        headers=PURPOSE,
        params={"as_of": AS_OF},
    )
    assert nothing.status_code == 404
    assert len(query_access(server.settings, action="replay")) == len(logged)
    early = [
        e.detail["outcome"]
        for e in query_access(server.settings, agency="thanh-tra", action="read")
        if e.detail and e.detail["call"] == "replay"
    ]
    assert early == ["error 422"] * 6 + ["error 404"]  # bad times and the unknown dataset


def test_archive_status_and_verify_jobs(server: Server, archived: str, tmp_path: Path) -> None:
    name = archived
    auditor = server.key("auditor", "thanh-tra")
    operator = server.key("operator", "so-tttt")

    status = server.call("GET", "/v1/audit/archive", auditor, params={"dataset": name})
    assert status.status_code == 200, status.text
    state = status.json()
    assert {c["topic"] for c in state["chains"]} == {f"lgsp.79.{name}"}
    assert sum(c["entries"] for c in state["chains"]) == 8  # over the topic's partitions
    assert state["latest_checkpoint"]["n"] >= 1 and state["signing_key"]["key_id"]
    assert server.call("GET", "/v1/audit/archive", operator).status_code == 403
    assert server.call("GET", "/v1/audit/archive").status_code == 401
    long = server.call("GET", "/v1/audit/archive", auditor, params={"dataset": "x" * 101})
    assert long.status_code == 422 and long.json()["errors"][0]["field"] == "query.dataset"

    def finished(job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + 60
        while True:
            job = server.call("GET", f"/v1/audit/verify/{job_id}", auditor).json()
            if job["status"] in ("done", "failed"):
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.1)

    started = server.call("POST", "/v1/audit/verify", auditor, json={"dataset": name})
    assert started.status_code == 202, started.text
    assert started.headers["Location"] == f"/v1/audit/verify/{started.json()['id']}"
    job = finished(started.json()["id"])
    assert job["status"] == "done" and job["ok"] is True, job
    assert job["result"]["entries"] == 8 and job["result"]["problems"] == []
    job_path = f"/v1/audit/verify/{job['id']}"
    assert server.call("GET", job_path).status_code == 401
    assert server.call("GET", job_path, operator).status_code == 403

    # with the auditor's own copy of the public key (PEM text, not a server path)
    key = load_signing_key(server.settings)
    assert key is not None
    pem = public_pem(key.public)
    with_key = server.call(
        "POST", "/v1/audit/verify", auditor, json={"dataset": name, "public_keys": [pem]}
    )
    assert finished(with_key.json()["id"])["ok"] is True

    # strict: with an off-host copy of the checkpoints posted as text
    copy = tmp_path / "offhost.jsonl"
    export_checkpoints(server.settings, copy)
    strict = {"dataset": name, "public_keys": [pem], "strict": True}
    posted = server.call(
        "POST", "/v1/audit/verify", auditor, json=strict | {"checkpoints": copy.read_text()}
    )
    done = finished(posted.json()["id"])
    assert done["ok"] is True and done["result"]["checkpoints_file"] == "(posted checkpoints)"
    paths = set(re.findall(r'"(/[^"]*\.jsonl)', json.dumps(done)))
    assert paths == {done["result"]["local_export"]["path"]}  # the temporary copy is not named
    without = finished(server.call("POST", "/v1/audit/verify", auditor, json=strict).json()["id"])
    assert without["status"] == "failed" and "off-host copy" in without["error"]
    cut = server.call(
        "POST", "/v1/audit/verify", auditor, json=strict | {"checkpoints": '{"n": 1}\n'}
    )
    assert finished(cut.json()["id"])["ok"] is False

    for body, field in (
        ({"public_keys": ["not a key"]}, "public_keys.0"),
        ({"colour": "red"}, "colour"),
        ({"strict": True, "allow_unsigned_tail": True}, "strict"),
    ):
        r = server.call("POST", "/v1/audit/verify", auditor, json=body)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    assert server.call("POST", "/v1/audit/verify", operator, json={}).status_code == 403
    assert server.call("POST", "/v1/audit/verify", json={}).status_code == 401
    assert server.call("GET", "/v1/audit/verify/no-such-job", auditor).status_code == 404
    empty = server.call("POST", "/v1/audit/verify", auditor, json={"dataset": "dancu.nope"})
    nothing = finished(empty.json()["id"])
    assert (
        nothing["status"] == "failed" and "nothing of 'dancu.nope' is archived" in nothing["error"]
    )

    # a tampered archive: the job is done and says the archive is not intact
    with open_engine(server.settings).begin() as conn:
        conn.execute(
            sa.text("UPDATE archive_entry SET op = 'd' WHERE dataset = :d AND seq = 2"),
            {"d": name},
        )
    broken = finished(
        server.call("POST", "/v1/audit/verify", auditor, json={"dataset": name}).json()["id"]
    )
    assert broken["status"] == "done" and broken["ok"] is False
    assert any("position 2" in p for p in broken["result"]["problems"])

    calls = [
        e.detail["call"]
        for e in query_access(server.settings, agency="thanh-tra", action="read")
        if e.detail
    ]
    # 7 started, 2 refused by the handler (an unknown body field is refused before it)
    assert calls.count("verify") == 9 and calls.count("archive-status") == 1
    refused = [
        e.detail["outcome"]
        for e in query_access(server.settings, agency="thanh-tra", action="read")
        if e.detail and e.detail["call"] == "verify" and e.detail["outcome"] != "ok"
    ]
    assert refused == ["error 422", "error 422"]
    assert "verify-result" in calls
