"""The catalogue and grants API: datasets (list, show, search, publish), grants (add, list,
revoke), the access log; 401, 403 (logged), 404, 422 per field; refusals store nothing."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from bus.catalog import list_datasets, list_grants, query_access
from tests.integration.api.conftest import Server
from tests.unit.catalog.support import FAR_FUTURE

pytestmark = pytest.mark.integration


def dataset_body(name: str, **change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": name,
        "publisher": "cong-an-tp",
        "units": ["79"],
        "schema": "dancu.Resident.avsc",
        "pii": ["citizen_id", "full_name", "birth_date", "address"],
        "description": {"vi": "Cơ sở dữ liệu dân cư", "en": "Resident registry"},
        "legal_basis": "Luật Cư trú 2020",
        "frequency": "continuous",
    }
    body.update(change)
    return body


def grant_body(dataset: str, **change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "dataset": dataset,
        "agency": "ubnd-q1",
        "purpose": "Xác minh nơi cư trú",
        "legal_basis": "Luật Cư trú 2020",
        "fields": ["citizen_id", "unit", "household_id"],
        "expires": FAR_FUTURE,
    }
    body.update(change)
    return body


def fields_of(response: requests.Response) -> set[str]:
    return {e["field"] for e in response.json()["errors"]}


def test_datasets_publish_list_show_search(server: Server, unique: str) -> None:
    name = f"dancu.r{unique}"
    pub = server.key("publisher", "cong-an-tp")
    other = server.key("publisher", "so-y-te")
    consumer = server.key("consumer", "ubnd-q1")
    body = dataset_body(name)

    assert server.call("GET", "/v1/datasets").status_code == 401
    documented = set(server.call("GET", "/openapi.json").json()["paths"])
    assert {
        "/v1/datasets",
        "/v1/datasets/search",
        "/v1/datasets/{name}",
        "/v1/grants",
        "/v1/grants/{grant_id}",
        "/v1/access-log",
        "/v1/audit/archive",
        "/v1/audit/verify",
        "/v1/audit/verify/{job_id}",
        "/v1/audit/datasets/{name}/history/{key}",
        "/v1/audit/datasets/{name}/replay",
    } <= documented
    assert server.call("POST", "/v1/datasets", json=body).status_code == 401
    # outside the role, or another agency's dataset: 403, logged, nothing stored
    assert server.call("POST", "/v1/datasets", consumer, json=body).status_code == 403
    assert server.call("POST", "/v1/datasets", other, json=body).status_code == 403
    assert list_datasets(server.settings) == []
    refused = query_access(server.settings, action="refused")
    assert {(e.agency, e.dataset) for e in refused} == {
        ("ubnd-q1", "catalogue"),
        ("so-y-te", name),
    }
    # every field error at once, named as in the body
    bad = server.call(
        "POST",
        "/v1/datasets",
        pub,
        json=dataset_body(name, units=["99999"], frequency="sometimes", pii=["no_such"]),
    )
    assert bad.status_code == 422, bad.text
    assert {"units.0", "frequency"} <= fields_of(bad)
    no_name = server.call("POST", "/v1/datasets", pub, json=dataset_body("Not A Name"))
    assert no_name.status_code == 422 and "name" in fields_of(no_name)
    wrong_pii = server.call("POST", "/v1/datasets", pub, json=dataset_body(name, pii=["nope"]))
    assert wrong_pii.status_code == 422 and fields_of(wrong_pii) == {"pii"}
    for path in ("../../etc/passwd", "/etc/passwd", "no-such.avsc"):
        r = server.call("POST", "/v1/datasets", pub, json=dataset_body(name, schema=path))
        assert r.status_code == 422 and fields_of(r) == {"schema"}, (path, r.text)
    unknown = server.call("POST", "/v1/datasets", pub, json=dict(body, colour="red"))
    assert unknown.status_code == 422 and "colour" in fields_of(unknown)
    assert server.call("POST", "/v1/datasets", pub, json=["a"]).status_code == 422
    for path in ("/v1/datasets", "/v1/grants"):
        broken = server.call(
            "POST", path, pub, data=b'{"name": ', headers={"Content-Type": "application/json"}
        )
        assert broken.status_code == 422 and broken.json()["errors"], broken.text
    huge = server.call("POST", "/v1/datasets", pub, json=dict(body, legal_basis="x" * 2_000_000))
    assert huge.status_code == 413
    assert list_datasets(server.settings) == []

    created = server.call("POST", "/v1/datasets", pub, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["subjects"][0]["subject"] == f"lgsp.79.{name}-value"
    again = server.call("POST", "/v1/datasets", pub, json=body)
    assert again.status_code == 200 and again.json()["status"] == "unchanged"
    taken = server.call("POST", "/v1/datasets", other, json=dict(body, publisher="so-y-te"))
    assert taken.status_code == 403 and "published by cong-an-tp" in taken.text

    listed = server.call("GET", "/v1/datasets", consumer).json()
    assert [d["name"] for d in listed] == [name]
    shown = server.call("GET", f"/v1/datasets/{name}", consumer).json()
    assert shown["topics"] == [f"lgsp.79.{name}"] and shown["publisher"] == "cong-an-tp"
    fields = {f["name"]: f for f in shown["fields"]}
    assert fields["citizen_id"]["pii"] and fields["citizen_id"]["key"]
    assert not fields["unit"]["pii"] and "live_grants" not in shown
    assert server.call("GET", f"/v1/datasets/{name}", pub).json()["live_grants"] == []
    for missing in ("dancu.nope", "x'; DROP TABLE catalog_dataset;--", "..%2F..%2Fetc"):
        r = server.call("GET", f"/v1/datasets/{requests.utils.quote(missing, safe='%')}", pub)
        assert r.status_code == 404, (missing, r.text)

    # search by attribute: who owns "ho_ten" (full name)
    found = server.call("GET", "/v1/datasets/search", consumer, params={"q": "ho_ten"}).json()
    assert found["owner"] == {
        "attribute": "full_name",
        "dataset": name,
        "publisher": "cong-an-tp",
        "field": "full_name",
    }
    assert found["hits"][0]["dataset"] == name and "field full_name" in found["hits"][0]["matches"]
    nothing = server.call("GET", "/v1/datasets/search", consumer, params={"q": "xyzzy"}).json()
    assert nothing == {"q": "xyzzy", "owner": None, "hits": []}
    blank = server.call("GET", "/v1/datasets/search", consumer, params={"q": "   "})
    assert blank.status_code == 422 and fields_of(blank) == {"q"}
    assert server.call("GET", "/v1/datasets/search", consumer).status_code == 422
    assert server.call("GET", "/v1/datasets/search", params={"q": "x"}).status_code == 401
    assert server.call("GET", f"/v1/datasets/{name}").status_code == 401


def test_grants_add_list_revoke_and_the_access_log(server: Server, unique: str) -> None:
    name = f"dancu.g{unique}"
    pub = server.key("publisher", "cong-an-tp")
    other = server.key("publisher", "so-y-te")
    consumer = server.key("consumer", "ubnd-q1")
    stranger = server.key("consumer", "ubnd-q3")
    auditor = server.key("auditor", "thanh-tra")
    operator = server.key("operator", "so-tttt")
    assert server.call("POST", "/v1/datasets", pub, json=dataset_body(name)).status_code == 201

    assert server.call("POST", "/v1/grants", json=grant_body(name)).status_code == 401
    assert server.call("POST", "/v1/grants", consumer, json=grant_body(name)).status_code == 403
    assert server.call("POST", "/v1/grants", other, json=grant_body(name)).status_code == 403
    bad = server.call(
        "POST",
        "/v1/grants",
        pub,
        json=grant_body(name, purpose=" ", fields=["nope"], expires="2000-01-01"),
    )
    assert bad.status_code == 422, bad.text
    assert fields_of(bad) == {"purpose", "fields", "expires"}
    nobody = server.call("POST", "/v1/grants", pub, json=grant_body(name, agency="no-such"))
    assert nobody.status_code == 404 and fields_of(nobody) == {"agency"}
    gone = server.call("POST", "/v1/grants", pub, json=grant_body("dancu.nope"))
    assert gone.status_code == 404 and fields_of(gone) == {"dataset"}
    assert "dancu.nope" in gone.json()["errors"][0]["message"]
    extra = server.call("POST", "/v1/grants", pub, json=dict(grant_body(name), colour="red"))
    assert extra.status_code == 422 and fields_of(extra) == {"colour"}
    # a NUL character, which PostgreSQL cannot keep in text: 422 before any database call
    nul = server.call("POST", "/v1/grants", pub, json=grant_body(name, purpose="a\u0000b"))
    assert nul.status_code == 422 and fields_of(nul) == {"body"}
    nul = server.call("GET", "/v1/grants", auditor, params={"dataset": "a\x00"})
    assert nul.status_code == 422 and fields_of(nul) == {"query"}
    nul = server.call("GET", "/v1/datasets/a%00b", auditor)
    assert nul.status_code == 422 and fields_of(nul) == {"path"}
    assert list_grants(server.settings) == []

    made = server.call("POST", "/v1/grants", pub, json=grant_body(name))
    assert made.status_code == 201, made.text
    grant = made.json()
    assert grant["status"] == "live" and grant["fields"] == ["citizen_id", "unit", "household_id"]
    assert grant["created_by"].startswith("api-key:")
    twice = server.call("POST", "/v1/grants", pub, json=grant_body(name))
    assert twice.status_code == 422 and "already holds live grant" in twice.text
    assert fields_of(twice) == {"agency"}  # beside the receiving agency in a form
    shown = server.call("GET", f"/v1/datasets/{name}", pub).json()
    assert [g["id"] for g in shown["live_grants"]] == [grant["id"]]

    def ids(key: str, **params: str) -> list[int]:
        r = server.call("GET", "/v1/grants", key, params=params)
        assert r.status_code == 200, r.text
        return [g["id"] for g in r.json()]

    assert ids(pub) == ids(consumer) == ids(auditor) == [grant["id"]]
    assert ids(other) == ids(stranger) == []
    assert ids(auditor, dataset="dancu.nope") == []
    assert server.call("GET", "/v1/grants", operator).status_code == 403
    assert server.call("GET", "/v1/grants").status_code == 401
    maybe = server.call("GET", "/v1/grants", auditor, params={"live": "maybe"})
    assert maybe.status_code == 422 and fields_of(maybe) == {"query.live"}

    path = f"/v1/grants/{grant['id']}"
    assert server.call("DELETE", path).status_code == 401
    assert server.call("DELETE", path, other).status_code == 403
    assert server.call("DELETE", path, consumer).status_code == 403
    assert list_grants(server.settings, live_only=True) != []
    revoked = server.call("DELETE", path, pub)
    assert revoked.status_code == 200 and revoked.json()["changed"] is True
    assert revoked.json()["status"] == "revoked"
    assert server.call("DELETE", path, pub).json()["changed"] is False
    assert server.call("DELETE", "/v1/grants/999999", pub).status_code == 404
    assert server.call("DELETE", "/v1/grants/abc", pub).status_code == 422
    assert ids(auditor, live="true") == []

    # the access log: an auditor sees every agency's entries, another key its own
    everything = server.call("GET", "/v1/access-log", auditor).json()
    assert {"ubnd-q1", "so-y-te"} <= {e["agency"] for e in everything}
    own = server.call("GET", "/v1/access-log", consumer).json()
    assert own and {e["agency"] for e in own} == {"ubnd-q1"}
    assert all(e["action"] == "refused" for e in own)
    one = server.call("GET", "/v1/access-log", auditor, params={"agency": "so-y-te"}).json()
    assert one and {e["agency"] for e in one} == {"so-y-te"}
    by_dataset = server.call("GET", "/v1/access-log", auditor, params={"dataset": name}).json()
    assert by_dataset and {e["dataset"] for e in by_dataset} == {name}
    future = server.call("GET", "/v1/access-log", auditor, params={"since": "2099-01-01"})
    assert future.json() == []
    past = server.call("GET", "/v1/access-log", auditor, params={"until": "2000-01-01"})
    assert past.json() == []
    window = server.call(
        "GET",
        "/v1/access-log",
        auditor,
        params={"since": "2000-01-01", "until": "2099-01-01", "limit": "2"},
    )
    assert window.json() == everything[-2:]
    wrong = server.call("GET", "/v1/access-log", auditor, params={"since": "yesterday"})
    assert wrong.status_code == 422 and fields_of(wrong) == {"since"}
    before = len(query_access(server.settings, agency="ubnd-q1", action="refused"))
    peek = server.call("GET", "/v1/access-log", consumer, params={"agency": "so-y-te"})
    assert peek.status_code == 403
    assert len(query_access(server.settings, agency="ubnd-q1", action="refused")) == before + 1
    assert server.call("GET", "/v1/access-log").status_code == 401
