"""The console's Datasets/grants and Auditor pages end to end in headless Chromium, against the
catalogue/grants API (``bus/api/catalog.py``) and the auditor API (``bus/api/audit.py``) of a
real ``lgsp serve``: a publisher grants through the form (a bad grant refused beside its
fields, nothing stored), the consumer sees the grant and its own access log; an auditor finds
a resident's history by a typed citizen id (timeline with before/after and chain positions, no
unmasked citizen id) and a dossier's across the ward, district and city chains, downloads a
replay as of a date, runs a verify job, filters the access log. Screenshots at a desk and a
phone size under the test's folder."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from bus.archive.archiver import Archiver
from bus.envelope import canonical_key
from bus.publish import Publisher
from tests.integration.console.conftest import CITIZEN_ID, SIZES, Console
from tests.integration.console.test_console import open_page, visit
from tests.unit.catalog.support import citizen, citizen_id, publish

pytestmark = pytest.mark.integration

RESIDENTS = "dancu.resident"
TOPIC = f"lgsp.79.{RESIDENTS}"
DOSSIERS = "tthc.dossier"
WHY = "Thanh tra việc cập nhật dữ liệu dân cư"
T0 = 1_770_000_000_000  # 2026-02-02 09:40 in Vietnam
MINUTE = 60_000


def shoot(page: Any, folder: Path, name: str) -> None:
    """The page as it is now, at a desk and at a phone size."""
    folder.mkdir(exist_ok=True)
    for size, viewport in SIZES.items():
        page.set_viewport_size(viewport)
        path = folder / f"{name}-{size}.png"
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 5000, path
    page.set_viewport_size(SIZES["desktop"])


def rows_of(page: Any, selector: str) -> list[dict[str, str]]:
    """The first table under ``selector`` as one dict per row (header → cell text)."""
    return page.evaluate(
        """sel => {
            const table = document.querySelector(`${sel} table`);
            if (!table) return [];
            const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent);
            return [...table.querySelectorAll('tbody tr')].map(tr => Object.fromEntries(
                [...tr.children].map((td, i) => [heads[i], td.textContent])));
        }""",
        selector,
    )


def resident_events() -> list[dict[str, Any]]:
    """Residents 0-2 created; resident 1 then moves twice (a note and a name change)."""
    out = []
    for i in range(3):
        out.append(
            {
                "event_id": f"ev-console-c-{i}",
                "op": "c",
                "ts_ms": T0 + i,
                "source": {
                    "agency": "cong-an-tp",
                    "unit": "79",
                    "system": "csdl-dancu",
                    "table": "cong_dan",
                    "connector": "dancu-source",
                    "position": f"cursor-{i}",
                },
                "key": canonical_key({"citizen_id": citizen_id(i)}),
                "before": None,
                "after": citizen(i, note=f"khởi tạo {i}"),
            }
        )
    before = out[1]["after"]
    for n in (1, 2):
        after = citizen(1, note=f"chuyển hộ khẩu lần {n}", full_name=f"Nguyễn Văn Thử 1 lần {n}")
        event = out[1] | {
            "event_id": f"ev-console-u-1-{n}",
            "op": "u",
            "ts_ms": T0 + n * 60 * MINUTE,
            "before": before,
            "after": after,
        }
        event["source"] = out[1]["source"] | {"position": f"cursor-1-{n}"}
        out.append(event)
        before = after
    return out


@pytest.fixture(scope="module")
def residents(console: Console, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A resident dataset of the city's police (PII: citizen_id, full_name), its events
    published and archived; no agency holds a PII grant on it."""
    publish(console.settings, tmp_path_factory.mktemp("datasets"), RESIDENTS)
    events = resident_events()
    with Publisher(console.settings) as pub:
        assert pub.publish(TOPIC, events, dataset=RESIDENTS).sent == len(events)
    assert Archiver(console.settings).run_once(TOPIC).appended == len(events)
    return RESIDENTS


def script_errors(page: Any) -> list[str]:
    """The page's script errors, less the browser's note of each refused (4xx) request that a
    test makes on purpose."""
    refused = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")
    return [p for p in page.problems if not refused.match(p)]


def no_citizen_id(page: Any) -> None:
    html = page.content()
    assert CITIZEN_ID.findall(html) == []


def test_publisher_grants_through_the_form_and_the_consumer_sees_it(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    grants_before = console.call("GET", "/v1/grants", "auditor").json()
    page = open_page(browser, console, "publisher")
    visit(page, "datasets")
    page.wait_for_selector("#grant-form")

    # a bad grant: every problem beside its field, nothing stored
    page.fill("#gr-dataset", DOSSIERS)
    page.fill("#gr-agency", "so-noi-vu")
    page.fill("#gr-purpose", "   ")
    page.fill("#gr-legal", "   ")
    page.fill("#gr-fields", "dossier_id, no_such_field")
    page.fill("#gr-expires", "2020-01-01")
    page.click("#grant-form button[type=submit]")
    page.wait_for_selector("#gr-fields-error:not(:empty)")
    errors = {
        name: page.inner_text(f"#gr-{name}-error")
        for name in ("dataset", "agency", "purpose", "legal", "fields", "expires")
    }
    assert "no_such_field" in errors["fields"]
    assert "in the past" in errors["expires"]
    assert errors["purpose"] and errors["legal"]
    assert errors["dataset"] == errors["agency"] == ""
    for name in ("purpose", "legal", "fields", "expires"):
        assert page.get_attribute(f"#gr-{name}", "aria-invalid") == "true", name
        assert page.get_attribute(f"#gr-{name}", "aria-describedby") == f"gr-{name}-error"
    assert page.get_attribute("#gr-agency", "aria-invalid") is None
    shoot(page, shots, "publisher-grant-refused")
    assert console.call("GET", "/v1/grants", "auditor").json() == grants_before

    # a dataset that is not in the catalogue: named beside the dataset field
    page.fill("#gr-dataset", "dancu.khong-co")
    page.click("#grant-form button[type=submit]")
    page.wait_for_selector("#gr-dataset-error:not(:empty)")
    assert "dancu.khong-co" in page.inner_text("#gr-dataset-error")
    assert page.get_attribute("#gr-dataset", "aria-invalid") == "true"
    assert console.call("GET", "/v1/grants", "auditor").json() == grants_before
    page.fill("#gr-dataset", DOSSIERS)

    # an unknown agency: named beside the agency field
    page.fill("#gr-agency", "so-khong-co")
    page.fill("#gr-purpose", "Thống kê hồ sơ")
    page.fill("#gr-legal", "Nghị định 47/2020/NĐ-CP")
    page.fill("#gr-fields", "dossier_id,status")
    page.fill("#gr-expires", "2027-06-30")
    page.click("#grant-form button[type=submit]")
    page.wait_for_selector("#gr-agency-error:not(:empty)")
    assert "so-khong-co" in page.inner_text("#gr-agency-error")
    assert page.inner_text("#gr-fields-error") == ""  # the earlier errors are gone
    assert console.call("GET", "/v1/grants", "auditor").json() == grants_before

    # the demo's live grant to so-noi-vu comes first: said so, still nothing stored; revoked,
    # the new grant is stored as typed
    page.fill("#gr-agency", "so-noi-vu")
    purpose = "Thống kê thời hạn giải quyết hồ sơ theo phường"
    page.fill("#gr-purpose", purpose)
    page.click("#grant-form button[type=submit]")
    page.wait_for_function(
        "() => document.querySelector('#gr-agency-error').textContent.includes('already holds')"
    )
    assert page.get_attribute("#gr-agency", "aria-invalid") == "true"
    assert page.locator("#grant-form .msg.error").count() == 0  # beside the field only
    assert console.call("GET", "/v1/grants", "auditor").json() == grants_before
    [demo] = [g for g in grants_before if g["agency"] == "so-noi-vu" and g["status"] == "live"]
    assert console.call("DELETE", f"/v1/grants/{demo['id']}", "publisher").ok
    page.click("#grant-form button[type=submit]")
    page.wait_for_selector("#grant-form .msg.ok")
    assert "so-noi-vu" in page.inner_text("#grant-form .msg.ok")
    [new] = [
        g for g in console.call("GET", "/v1/grants", "auditor").json() if g["purpose"] == purpose
    ]
    assert new["dataset"] == DOSSIERS and new["agency"] == "so-noi-vu"
    assert new["legal_basis"] == "Nghị định 47/2020/NĐ-CP"
    assert new["fields"] == ["dossier_id", "status"] and new["allow_pii"] is False
    assert new["expires"] == "2027-06-30" and new["status"] == "live"
    # the page's own grant list shows it (refreshed after the grant)
    page.wait_for_function(
        "p => document.querySelector('#ds-grants').innerText.includes(p)", arg=purpose
    )
    no_citizen_id(page)
    assert script_errors(page) == []
    shoot(page, shots, "publisher-granted")
    page.context.close()

    # the consumer agency sees its grant, and its own access log only
    page = open_page(browser, console, "consumer")
    visit(page, "datasets")
    page.wait_for_selector("#ds-grants table")
    grants = rows_of(page, "#ds-grants")  # headed in Vietnamese, values in words
    mine = [g for g in grants if g["Mục đích"] == purpose]
    assert len(mine) == 1
    assert mine[0]["Hết hạn"] == "2027-06-30" and mine[0]["Trạng thái"] == "còn hiệu lực"
    assert mine[0]["Trường"] == "dossier_id, status" and mine[0]["Dữ liệu cá nhân"] == "không"
    assert {g["Cơ quan được cấp"] for g in grants} == {"so-noi-vu"}
    revoked = [g for g in grants if g["Số"] == str(demo["id"])]
    assert revoked[0]["Trạng thái"] == "đã thu hồi"
    assert page.locator("#grant-form").count() == 0  # a consumer grants nothing
    page.wait_for_selector("#ds-access table")
    log = rows_of(page, "#ds-access")
    api = console.call("GET", "/v1/access-log?limit=200", "consumer").json()
    assert len(log) == len(api) > 0
    assert {e["agency"] for e in log} == {"so-noi-vu"}
    no_citizen_id(page)
    assert script_errors(page) == []
    shoot(page, shots, "consumer-grants")
    page.context.close()
    assert len(list(shots.glob("*.png"))) == 6


def test_auditor_finds_a_residents_history_by_a_typed_citizen_id(
    browser: Any, console: Console, residents: str, tmp_path: Path
) -> None:
    page = open_page(browser, console, "auditor")
    visit(page, "audit")
    page.wait_for_selector("#au-key")
    # typed, never listed: no suggestions, no autocomplete, no id anywhere before the search
    assert page.get_attribute("#au-key", "list") is None
    assert page.get_attribute("#au-key", "autocomplete") == "off"
    assert page.locator("datalist").count() == 0
    no_citizen_id(page)

    # no purpose: the browser asks for one before anything is read
    page.fill("#au-dataset", residents)
    page.fill("#au-key", citizen_id(1))
    page.click("#au-history button[type=submit]")
    assert page.evaluate("document.querySelector('#au-purpose').validity.valueMissing")
    assert page.locator("#au-history-out *").count() == 0

    page.fill("#au-purpose", WHY)
    page.click("#au-history button[type=submit]")
    page.wait_for_selector("#au-history-out ol.timeline")
    assert "Chuỗi băm toàn vẹn." in page.inner_text("#au-history-out .msg.ok")
    items = page.locator("#au-history-out ol.timeline > li")
    assert items.count() == 3
    api = console.call(
        "GET",
        f"/v1/audit/datasets/{residents}/history/{citizen_id(1)}",
        "auditor",
        headers={"X-Purpose": requests.utils.quote(WHY)},
    ).json()
    assert [e["op"] for e in api["events"]] == ["c", "u", "u"]
    for n, event in enumerate(api["events"]):
        item = items.nth(n)
        heading = item.locator("strong").first.inner_text()
        assert heading.startswith(f"{event['op']} · ")
        assert "đã xác minh" in item.inner_text()
        [position] = event["positions"]
        # its chain position: topic[partition] #seq
        chain = item.locator(".muted").inner_text()
        assert chain == f"{TOPIC}[{position['partition']}] #{position['seq']}", chain
    seqs = [e["positions"][0]["seq"] for e in api["events"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3

    # before/after of each change: the note's old and new text, changed cells marked
    def diff(n: int) -> dict[str, tuple[str, str, bool]]:
        return {
            row[0]: (row[1], row[2], row[3])
            for row in items.nth(n).evaluate(
                """li => [...li.querySelectorAll('table.diff tbody tr')].map(tr => [
                    tr.querySelector('th').textContent, tr.children[1].textContent,
                    tr.children[2].textContent, tr.children[2].classList.contains('changed')])"""
            )
        }

    created, first, second = diff(0), diff(1), diff(2)
    assert created["note"] == ("–", "khởi tạo 1", True)
    assert first["note"] == ("khởi tạo 1", "chuyển hộ khẩu lần 1", True)
    assert second["note"] == ("chuyển hộ khẩu lần 1", "chuyển hộ khẩu lần 2", True)
    assert first["household_id"][2] is False  # unchanged, not marked
    # PII without a PII grant: tokens, the name's change still seen as a change
    name_before, name_after, changed = second["full_name"]
    assert name_before.startswith("tok_") and name_after.startswith("tok_") and changed
    assert first["citizen_id"][0].startswith("tok_")
    no_citizen_id(page)  # the typed id is in the input's value only, never in the page
    assert script_errors(page) == []
    shoot(page, tmp_path / "screenshots", "auditor-history")
    page.set_viewport_size(SIZES["phone"])  # before and after side by side on a phone too
    overflow = page.eval_on_selector_all(
        "table.diff", "ts => ts.map(t => t.parentElement.scrollWidth - t.parentElement.clientWidth)"
    )
    assert overflow == [0, 0, 0]
    page.set_viewport_size(SIZES["desktop"])

    # an unknown dataset: the API's error shown, no timeline
    page.fill("#au-dataset", "dancu.khong-co")
    page.click("#au-history button[type=submit]")
    page.wait_for_selector("#au-history-out .msg.error")
    assert "dancu.khong-co" in page.inner_text("#au-history-out .msg.error")
    no_citizen_id(page)
    page.context.close()


def test_auditor_downloads_a_replay_as_of_a_date_and_verifies(
    browser: Any, console: Console, residents: str, tmp_path: Path
) -> None:
    page = open_page(browser, console, "auditor")
    visit(page, "audit")
    page.wait_for_selector("#rp-asof")

    def replay(as_of: str) -> list[dict[str, Any]]:
        page.fill("#rp-dataset", residents)
        page.fill("#rp-asof", as_of)
        page.fill("#rp-purpose", WHY)
        with page.expect_download() as download:
            page.click("#au-replay button[type=submit]")
        assert download.value.suggested_filename == f"replay-{residents}.jsonl"
        text = Path(download.value.path()).read_text("utf-8")
        assert CITIZEN_ID.findall(text) == []  # keys and ids tokenised for this auditor
        return [json.loads(line) for line in text.splitlines()]

    # between the first and the second move (Vietnam time, as the form says)
    moment = dt.datetime.fromtimestamp(
        (T0 + 90 * MINUTE) / 1000, dt.timezone(dt.timedelta(hours=7))
    )
    lines = replay(moment.strftime("%Y-%m-%dT%H:%M"))
    page.wait_for_selector("#au-replay .msg.ok")
    assert len(lines) == 3  # one line per resident
    assert all({"key", "record"} <= set(line) for line in lines)
    keys = [json.loads(line["key"])["citizen_id"] for line in lines]  # tokens, one per resident
    assert len(set(keys)) == 3 and all(k.startswith("tok_") for k in keys)
    notes = sorted(line["record"]["note"] for line in lines)
    assert notes == ["chuyển hộ khẩu lần 1", "khởi tạo 0", "khởi tạo 2"]
    assert all(line["record"]["citizen_id"].startswith("tok_") for line in lines)

    # before anything was created: an empty file; after the last move: its note
    assert replay("2026-02-01T00:00") == []
    notes = sorted(line["record"]["note"] for line in replay("2026-12-31T23:59"))
    assert notes == ["chuyển hộ khẩu lần 2", "khởi tạo 0", "khởi tạo 2"]

    # an unknown dataset: the API's 404 shown, nothing downloaded
    downloads: list[Any] = []
    page.on("download", lambda d: downloads.append(d))
    page.fill("#rp-dataset", "dancu.khong-co")
    page.click("#au-replay button[type=submit]")
    page.wait_for_selector("#au-replay .msg.error")
    assert "dancu.khong-co" in page.inner_text("#au-replay .msg.error")
    assert page.locator("#au-replay .msg.ok").count() == 0 and downloads == []

    # the replay reads were access-logged as this auditor's, with the purpose
    log = console.call("GET", f"/v1/access-log?dataset={residents}&action=replay", "auditor").json()
    assert len(log) >= 3 and {e["purpose"] for e in log} == {WHY}

    # a verify job started from the page: its result shown
    page.click("#au-verify button")
    page.wait_for_selector("#au-verify .msg.ok", timeout=120_000)
    assert page.inner_text("#au-verify .msg.ok") == "Chuỗi băm toàn vẹn."
    shown = dict(
        page.eval_on_selector_all(
            "#au-verify dl.plain dt",
            "dts => dts.map(dt => [dt.textContent, dt.nextElementSibling.textContent])",
        )
    )
    archive = console.call("GET", "/v1/audit/archive", "auditor").json()
    assert shown["ok"] == "true"
    assert int(shown["entries"]) == sum(c["entries"] for c in archive["chains"])
    assert f"chains ({len(archive['chains'])})" in page.inner_text("#au-verify")
    no_citizen_id(page)
    assert script_errors(page) == []
    shoot(page, tmp_path / "screenshots", "auditor-replay-verify")
    page.context.close()


def test_access_log_filters_in_the_page(
    browser: Any, console: Console, residents: str, tmp_path: Path
) -> None:
    why = {"X-Purpose": requests.utils.quote(WHY)}
    path = f"/v1/audit/datasets/{residents}/history/{citizen_id(2)}"
    assert console.call("GET", path, "auditor", headers=why).ok  # one read to find
    page = open_page(browser, console, "auditor")
    visit(page, "audit")
    page.wait_for_selector("#au-access table")
    every = rows_of(page, "#au-access")
    assert len({e["agency"] for e in every}) >= 2  # an auditor sees every agency's

    def filtered(**values: str) -> list[dict[str, str]]:
        for name in ("agency", "dataset", "action", "since"):
            page.fill(f"#au-access-{name}", values.get(name, ""))
        page.click("#au-access button[type=submit]")
        query = "&".join(f"{k}={requests.utils.quote(v)}" for k, v in values.items())
        expected = console.call("GET", f"/v1/access-log?limit=200&{query}", "auditor").json()
        page.wait_for_function(
            """n => { const out = document.querySelector('#au-access > div[aria-live]');
                      return n === 0 ? out.querySelector('table') === null
                                     : out.querySelectorAll('tbody tr').length === n; }""",
            arg=len(expected),
        )
        rows = rows_of(page, "#au-access")
        assert [r["id"] for r in rows] == [str(e["id"]) for e in expected], values
        return rows

    consumer = filtered(agency="so-noi-vu")
    assert consumer and {r["agency"] for r in consumer} == {"so-noi-vu"}
    reads = filtered(agency="thanh-tra-tp", dataset=residents, action="read")
    assert reads and all(r["dataset"] == residents and r["action"] == "read" for r in reads)
    assert any(WHY == r["purpose"] for r in reads)
    assert filtered(since="2099-01-01") == []
    assert page.inner_text("#au-access > div[aria-live]") == "Không có dữ liệu."
    shoot(page, tmp_path / "screenshots", "auditor-access-log")
    everything = filtered()
    assert len(everything) >= len(every)
    no_citizen_id(page)
    assert script_errors(page) == []
    page.context.close()


def test_auditor_finds_a_dossiers_history_across_ward_district_and_city(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    engine = sa.create_engine(f"sqlite:///{console.demo_dir / 'ward-26734.db'}")
    try:
        with engine.connect() as conn:
            dossier = conn.execute(
                sa.text("SELECT dossier_id FROM ho_so ORDER BY dossier_id LIMIT 1")
            ).scalar_one()
    finally:
        engine.dispose()
    page = open_page(browser, console, "auditor")
    visit(page, "audit")
    page.fill("#au-dataset", DOSSIERS)
    page.fill("#au-key", dossier)
    page.fill("#au-purpose", WHY)
    page.click("#au-history button[type=submit]")
    page.wait_for_selector("#au-history-out ol.timeline")
    api = console.call(
        "GET",
        f"/v1/audit/datasets/{DOSSIERS}/history/{requests.utils.quote(dossier, safe='')}",
        "auditor",
        headers={"X-Purpose": requests.utils.quote(WHY)},
    ).json()
    items = page.locator("#au-history-out ol.timeline > li")
    assert items.count() == len(api["events"]) > 0
    # the ward's event, rolled up: its place in the ward's, the district's and the city's chain
    chains = items.first.locator(".muted").inner_text()
    topics = {p["topic"] for p in api["events"][0]["positions"]}
    assert topics == {
        "lgsp.79.760.26734.tthc.dossier",
        "lgsp.79.760.tthc.dossier",
        "lgsp.79.tthc.dossier",
    }
    for p in api["events"][0]["positions"]:
        assert f"{p['topic']}[{p['partition']}] #{p['seq']}" in chains
    created = items.first.evaluate(
        """li => Object.fromEntries([...li.querySelectorAll('table.diff tbody tr')].map(tr =>
               [tr.querySelector('th').textContent, tr.children[2].textContent]))"""
    )
    assert created["dossier_id"] == dossier  # not personal data: shown as it is
    assert created["applicant_citizen_id"].startswith("tok_")
    no_citizen_id(page)
    assert script_errors(page) == []
    shoot(page, tmp_path / "screenshots", "auditor-dossier-history")
    page.context.close()
