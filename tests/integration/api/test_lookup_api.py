"""The once-only lookup over a real ``lgsp serve``: current state from the store the bus keeps
(a sink connector fed by the city topic), under a live grant, masked, access-logged."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from sqlalchemy import inspect

from bus.catalog import add_agency, add_grant, query_access, revoke_grant
from bus.catalog.masking import load_pii_key, token
from bus.config import LookupSettings, Settings
from bus.context import Context
from bus.db import open_engine
from bus.lookup.store import store_name, store_table, sync
from bus.orchestration.specs import MANIFEST, dag_specs
from bus.state import home
from tests.integration.api.conftest import LGSP, Server
from tests.integration.catalog.test_delivery import PURPOSE, send
from tests.unit.catalog.support import FAR_FUTURE, citizen, citizen_event, citizen_id, publish

pytestmark = pytest.mark.integration

CCCD = re.compile(r"(?<!\d)\d{12}(?!\d)")
GRANTED = "citizen_id,full_name,birth_date,unit,household_id"


@pytest.fixture
def dataset(settings: Settings, tmp_path: Path, unique: str) -> str:
    name = f"dancu.l{unique}"
    publish(settings, tmp_path, name, units=["79"])
    add_agency(settings, "ubnd-q1", "Ủy ban nhân dân Quận 1")
    return name


def grant(settings: Settings, dataset: str, **change: Any) -> int:
    data: dict[str, Any] = {
        "dataset": dataset,
        "agency": "ubnd-q1",
        "purpose": PURPOSE,
        "legal_basis": "Luật Cư trú 2020",
        "fields": GRANTED,
        "expires": FAR_FUTURE,
    }
    data.update(change)
    return add_grant(settings, **data).id


def purpose(text: str = PURPOSE) -> dict[str, str]:
    return {"X-Purpose": quote(text)}


def synced(settings: Settings, dataset: str) -> int:
    return sync(Context.build(settings), dataset).rows


def delete_event(i: int) -> dict[str, Any]:
    event = citizen_event(i, op="d")
    event["ts_ms"] += 1_000
    event["before"], event["after"] = event["after"], None
    return event


def test_a_pii_free_grant_gets_tokens_not_citizen_ids_and_every_lookup_is_logged(
    server: Server, dataset: str
) -> None:
    settings = server.settings
    send(settings, dataset, [citizen_event(i) for i in range(10)])
    assert synced(settings, dataset) == 10
    gid = grant(settings, dataset)
    key = server.key("consumer", "ubnd-q1")
    got = server.call(
        "GET", f"/v1/datasets/{dataset}/records/{citizen_id(3)}", key, headers=purpose()
    )
    assert got.status_code == 200, got.text
    assert CCCD.findall(got.text) == []
    body = got.json()
    record = body["record"]
    tokens = load_pii_key(settings)
    assert body["grant"] == gid and body["ts_ms"] == citizen_event(3)["ts_ms"]
    assert record == {
        "citizen_id": token(citizen_id(3), tokens),  # the same token deliveries give
        "full_name": token(citizen(3)["full_name"], tokens),
        "birth_date": token(citizen(3)["birth_date"], tokens),
        "unit": "26734",
        "household_id": "HK-1",
    }  # phone and note are not granted: dropped
    batch = server.call(
        "POST",
        f"/v1/datasets/{dataset}/records:lookup",
        key,
        json={"keys": [citizen_id(1), "079099999999", citizen_id(7)]},
        headers=purpose(),
    )
    assert batch.status_code == 200, batch.text
    assert CCCD.findall(batch.text) == []
    results = batch.json()["results"]
    assert [r["found"] for r in results] == [True, False, True]
    assert results[2]["record"]["household_id"] == "HK-3"
    assert results[0]["record"]["citizen_id"] == token(citizen_id(1), tokens)
    logged = query_access(settings, agency="ubnd-q1", action="lookup")
    assert [(e.records, e.detail["keys"], e.grant_id) for e in logged] == [(1, 1, gid), (2, 3, gid)]
    assert all(e.purpose == PURPOSE for e in logged)
    assert CCCD.findall(json.dumps([e.to_dict() for e in logged], default=str)) == []
    # the server's request log names the route, never the key
    code, out = server.stop()
    assert code == 0
    assert f"/v1/datasets/{dataset}/records/***" in out
    assert citizen_id(3) not in out and CCCD.findall(out) == []


def test_a_grant_with_pii_sees_the_citizen_id(server: Server, dataset: str) -> None:
    send(server.settings, dataset, [citizen_event(i) for i in range(3)])
    synced(server.settings, dataset)
    grant(server.settings, dataset, allow_pii=True, fields="citizen_id,full_name")
    key = server.key("consumer", "ubnd-q1")
    got = server.call(
        "GET", f"/v1/datasets/{dataset}/records/{citizen_id(2)}", key, headers=purpose()
    )
    assert got.json()["record"] == {"citizen_id": citizen_id(2), "full_name": "Nguyễn Văn Thử 2"}


def test_wrong_or_missing_purpose_wrong_role_and_revoked_grant_are_403_and_logged(
    server: Server, dataset: str
) -> None:
    settings = server.settings
    send(settings, dataset, [citizen_event(i) for i in range(3)])
    synced(settings, dataset)
    gid = grant(settings, dataset)
    key = server.key("consumer", "ubnd-q1")
    path = f"/v1/datasets/{dataset}/records/{citizen_id(1)}"
    wrong = server.call("GET", path, key, headers=purpose("Tiếp thị sản phẩm"))
    assert wrong.status_code == 403 and "allows the purpose" in wrong.json()["message"]
    missing = server.call("GET", path, key)
    assert missing.status_code == 403 and "X-Purpose" in missing.json()["message"]
    operator = server.key("operator", "ubnd-q1")
    assert server.call("GET", path, operator, headers=purpose()).status_code == 403
    assert server.call("GET", path, headers=purpose()).status_code == 401
    assert server.call("GET", path, key, headers=purpose()).status_code == 200
    revoke_grant(settings, gid)
    revoked = server.call("GET", path, key, headers=purpose())
    assert revoked.status_code == 403 and "revoked" in revoked.json()["message"]
    batch = server.call(
        "POST",
        f"/v1/datasets/{dataset}/records:lookup",
        key,
        json={"keys": [citizen_id(1)]},
        headers=purpose(),
    )
    assert batch.status_code == 403
    refused = query_access(settings, agency="ubnd-q1", action="refused")
    assert len(refused) == 5
    assert {e.detail["path"] for e in refused} == {
        f"/v1/datasets/{dataset}/records/***",
        f"/v1/datasets/{dataset}/records:lookup",
    }
    assert CCCD.findall(json.dumps([e.to_dict() for e in refused], default=str)) == []
    assert len(query_access(settings, agency="ubnd-q1", action="lookup")) == 1


def test_a_deleted_record_is_404_once_its_delete_reached_the_city_topic(
    server: Server, dataset: str
) -> None:
    settings = server.settings
    send(settings, dataset, [citizen_event(i) for i in range(4)])
    synced(settings, dataset)
    grant(settings, dataset)
    key = server.key("consumer", "ubnd-q1")
    path = f"/v1/datasets/{dataset}/records/{citizen_id(2)}"
    assert server.call("GET", path, key, headers=purpose()).status_code == 200
    changed = citizen_event(1, op="u", household_id="HK-9")
    changed["ts_ms"] += 1_000
    send(settings, dataset, [delete_event(2), changed])
    assert server.call("GET", path, key, headers=purpose()).status_code == 200  # not synced yet
    assert synced(settings, dataset) == 2
    gone = server.call("GET", path, key, headers=purpose())
    assert gone.status_code == 404, gone.text
    assert citizen_id(2) not in gone.text
    now = server.call(
        "GET", f"/v1/datasets/{dataset}/records/{citizen_id(1)}", key, headers=purpose()
    )
    assert now.json()["record"]["household_id"] == "HK-9"  # the current state, not the first
    # an update older than the delete, arriving after it, does not bring the record back
    late = citizen_event(2, op="u", household_id="HK-late")
    late["ts_ms"] += 500
    send(settings, dataset, [late])
    assert synced(settings, dataset) == 1
    assert server.call("GET", path, key, headers=purpose()).status_code == 404


def test_batch_limit_and_bad_bodies(server: Server, dataset: str) -> None:
    send(server.settings, dataset, [citizen_event(0)])
    synced(server.settings, dataset)
    grant(server.settings, dataset)
    key = server.key("consumer", "ubnd-q1")
    path = f"/v1/datasets/{dataset}/records:lookup"
    keys = [citizen_id(i) for i in range(1000)]
    full = server.call("POST", path, key, json={"keys": keys}, headers=purpose())
    assert full.status_code == 200 and full.json()["found"] == 1
    over = server.call(
        "POST", path, key, json={"keys": [*keys, citizen_id(1000)]}, headers=purpose()
    )
    assert over.status_code == 422 and over.json()["errors"][0]["field"] == "keys"
    huge = server.call("POST", path, key, json={"keys": ["x" * 2_000_000]}, headers=purpose())
    assert huge.status_code == 413
    for bad in ({"keys": []}, {"keys": [citizen_id(0)], "colour": "red"}, {"keys": [12]}, {}):
        r = server.call("POST", path, key, json=bad, headers=purpose())
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"]
    malformed = server.call(
        "POST",
        path,
        key,
        data=b'{"keys": [',
        headers={**purpose(), "Content-Type": "application/json"},
    )
    assert malformed.status_code == 422
    assert len(query_access(server.settings, agency="ubnd-q1", action="lookup")) == 1


def test_keys_with_path_characters_or_sql_are_404_and_change_nothing(
    server: Server, dataset: str
) -> None:
    settings = server.settings
    send(settings, dataset, [citizen_event(i) for i in range(3)])
    synced(settings, dataset)
    grant(settings, dataset)
    key = server.key("consumer", "ubnd-q1")
    bad_keys = [
        "../../etc/passwd",
        "..%2F..%2Fetc",
        "a/b/c",
        f"{citizen_id(1)}' OR '1'='1",
        f"x'; DROP TABLE {store_table(dataset)};--",
        "%00",
        json.dumps({"citizen_id": citizen_id(1)}),
    ]
    for bad in bad_keys:
        r = server.call(
            "GET", f"/v1/datasets/{dataset}/records/{quote(bad, safe='')}", key, headers=purpose()
        )
        assert r.status_code == 404, (bad, r.text)
    batch = server.call(
        "POST",
        f"/v1/datasets/{dataset}/records:lookup",
        key,
        json={"keys": [*bad_keys[:6], {"citizen_id": citizen_id(1)}, {"other": "x"}]},
        headers=purpose(),
    )
    assert batch.status_code == 200, batch.text
    assert [r["found"] for r in batch.json()["results"]] == [False] * 6 + [True, False]
    assert store_table(dataset) in inspect(open_engine(settings)).get_table_names()
    unknown = server.call("GET", "/v1/datasets/dancu.nothing/records/1", key, headers=purpose())
    assert unknown.status_code == 404


def test_a_store_never_synced_is_503_and_lgsp_lookup_sync_registers_it_with_a_dag(
    server: Server, dataset: str, cli_env: dict[str, str]
) -> None:
    settings = server.settings
    send(settings, dataset, [citizen_event(i) for i in range(5)])
    grant(settings, dataset)
    key = server.key("consumer", "ubnd-q1")
    path = f"/v1/datasets/{dataset}/records/{citizen_id(4)}"
    assert server.call("GET", path, key, headers=purpose()).status_code == 503
    done = subprocess.run(
        [LGSP, "lookup", "sync", dataset, "--json"], capture_output=True, text=True, env=cli_env
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rows"] == 5
    assert f"registered connector {store_name(dataset)}" in done.stderr
    again = subprocess.run(
        [LGSP, "lookup", "sync", dataset], capture_output=True, text=True, env=cli_env
    )
    assert again.returncode == 0 and "rows 0" in again.stdout, again.stderr
    manifest = json.loads((home(settings) / MANIFEST).read_text())
    stores = [c for c in manifest["connectors"] if c["name"] == store_name(dataset)]
    assert stores and stores[0]["role"] == "sink" and stores[0]["schedule"] == "*/5 * * * *"
    dags = {spec.dag_id: spec for spec in dag_specs(manifest)}
    dag = dags[f"lgsp_sync__{store_name(dataset).replace('-', '_')}"]
    assert dag.schedule == "*/5 * * * *" and dag.params["connector"] == store_name(dataset)
    assert server.call("GET", path, key, headers=purpose()).status_code == 200
    nothing = subprocess.run(
        [LGSP, "lookup", "sync", "dancu.nothing"], capture_output=True, text=True, env=cli_env
    )
    assert nothing.returncode == 2 and "not in the catalogue" in nothing.stderr


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_store_in_its_own_database_lookup_url(
    serve: Callable[..., Server],
    settings: Settings,
    dataset: str,
    backend: str,
    pg_url: str,
    mysql_url: str,
) -> None:
    url = pg_url if backend == "postgresql" else mysql_url
    own = Settings(
        home=settings.home,
        kafka_bootstrap=settings.kafka_bootstrap,
        lookup=LookupSettings(url=SecretStr(url)),
    )
    send(settings, dataset, [citizen_event(i) for i in range(3)])
    send(settings, dataset, [delete_event(1)])
    try:
        assert synced(own, dataset) == 4
        assert store_table(dataset) not in inspect(open_engine(settings)).get_table_names()
        grant(settings, dataset)
        server = serve(LGSP_LOOKUP__URL=url)
        key = server.key("consumer", "ubnd-q1")
        base = f"/v1/datasets/{dataset}/records/"
        got = server.call("GET", base + citizen_id(2), key, headers=purpose())
        assert got.status_code == 200, got.text
        assert got.json()["record"]["birth_date"] == token(
            citizen(2)["birth_date"], load_pii_key(settings)
        )
        assert server.call("GET", base + citizen_id(1), key, headers=purpose()).status_code == 404
        for bad in ("x' OR '1'='1", "../../etc"):
            r = server.call("GET", base + quote(bad, safe=""), key, headers=purpose())
            assert r.status_code == 404
    finally:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {store_table(dataset)}"))
        engine.dispose()
