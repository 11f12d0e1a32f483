"""Pure parts of the auditor API: keys from URL text, the request log's masking, header text,
and what an auditor sees of a dataset (tokens unless a PII grant covers the field)."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from pathlib import Path

import pytest

from bus.api.audit import MAX_QUEUED, VerifyBody, VerifyJobs, header_text
from bus.api.errors import ApiError
from bus.api.request_log import MaskKeys, mask_path
from bus.archive.history import key_from_text
from bus.catalog import add_agency, add_grant, apply_grant, revoke_grant
from bus.catalog.api_keys import KeyInfo
from bus.catalog.grants import auditor_view
from bus.catalog.masking import is_token
from bus.config import Settings
from bus.envelope import canonical_key
from bus.errors import ConfigurationError
from tests.unit.catalog.support import FAR_FUTURE, citizen_event, citizen_id, publish

NOW = dt.datetime.now(dt.UTC)
SCHEMA = {
    "type": "record",
    "name": "R",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "code", "type": ["null", "string"]},
        {"name": "unit", "type": "string"},
    ],
}


def test_key_from_text() -> None:
    assert key_from_text(SCHEMA, ["id"], "42") == canonical_key({"id": 42})
    assert key_from_text(SCHEMA, ["code"], "HS/2024'01") == canonical_key({"code": "HS/2024'01"})
    both = '{"unit": "26734", "id": 7}'
    assert key_from_text(SCHEMA, ["id", "unit"], both) == canonical_key({"id": 7, "unit": "26734"})
    for fields, text, says in (
        (["id"], "4x", "whole number for id"),
        (["id", "unit"], "7", "give it as a JSON object"),
        (["id"], '{"id": ', "not valid JSON"),
        (["id"], '{"id": 1, "x": 2}', "key fields id"),
        (["id"], "", "1 to 1000"),
        (["id"], "1" * 1001, "1 to 1000"),
        (["code"], "a\x00b", "NUL"),
    ):
        with pytest.raises(ConfigurationError, match=says) as caught:
            key_from_text(SCHEMA, fields, text)
        assert str(caught.value).startswith("key: ")
        if text:
            assert text not in str(caught.value)


def test_request_log_masks_keys_and_nothing_else() -> None:
    assert mask_path("/v1/audit/datasets/a.b/history/079012345678") == (
        "/v1/audit/datasets/a.b/history/***"
    )
    assert (
        mask_path("/v1/audit/datasets/a.b/history/A%2FB?x=1")
        == "/v1/audit/datasets/a.b/history/***"
    )
    assert (
        mask_path("/v1/audit/datasets/a.b/replay?as_of=x")
        == "/v1/audit/datasets/a.b/replay?as_of=x"
    )
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/v1/audit/datasets/a.b/history/079012345678", "1.1", 200),
        None,
    )
    assert MaskKeys().filter(record) is True
    assert "079012345678" not in record.getMessage() and "/history/***" in record.getMessage()


def test_header_text_raw_or_percent_encoded_utf8() -> None:
    why = "Thanh tra việc chia sẻ"
    assert header_text(why.encode().decode("latin-1")) == why  # as a server decodes raw bytes
    assert header_text("Thanh%20tra%20vi%E1%BB%87c%20chia%20s%E1%BA%BB") == why
    assert header_text(None) == "" and header_text("  ") == ""
    # percent-encoded bytes that are not UTF-8: the auditor API refuses them (422), the
    # lookup reads them as U+FFFD, a purpose no grant has (403, logged)
    with pytest.raises(UnicodeDecodeError):
        header_text("Thanh%FFtra")
    assert header_text("Thanh%FFtra", errors="replace") == "Thanh\ufffdtra"


def test_auditor_view_tokenises_pii_unless_a_pii_grant_covers_it(
    offline_settings: Settings, tmp_path: Path
) -> None:
    settings = offline_settings
    publish(settings, tmp_path, "dancu.audit")
    add_agency(settings, "thanh-tra", "Thanh tra")
    event = citizen_event(3)
    seen = apply_grant(event, auditor_view(settings, "thanh-tra", "dancu.audit"))
    assert is_token(seen["after"]["citizen_id"]) and is_token(seen["after"]["full_name"])
    assert seen["after"]["unit"] == event["after"]["unit"] and citizen_id(3) not in str(seen)
    assert seen["source"]["position"] is None
    grant = add_grant(
        settings,
        dataset="dancu.audit",
        agency="thanh-tra",
        purpose="Thanh tra",
        legal_basis="Luật Thanh tra",
        fields="citizen_id,unit",
        allow_pii=True,
        expires=FAR_FUTURE,
    )
    partly = auditor_view(settings, "thanh-tra", "dancu.audit")
    assert partly.pii_fields == frozenset({"full_name", "birth_date"}) and not partly.allow_pii
    seen = apply_grant(event, partly)
    assert seen["after"]["citizen_id"] == citizen_id(3) and is_token(seen["after"]["full_name"])
    assert seen["after"]["note"] == event["after"]["note"]  # every field, not only granted ones
    revoke_grant(settings, grant.id)
    assert auditor_view(settings, "thanh-tra", "dancu.audit").pii_fields == frozenset(
        {"citizen_id", "full_name", "birth_date"}
    )


def test_verify_jobs_wait_in_a_bounded_queue_and_finish(offline_settings: Settings) -> None:
    jobs = VerifyJobs()
    gate = threading.Event()
    jobs.pool.submit(gate.wait, 30)  # the one worker is busy
    key = KeyInfo("0123456789ab", "thanh-tra", "auditor", NOW, "t", NOW, None)
    started = [jobs.start(offline_settings, VerifyBody(), key) for _ in range(MAX_QUEUED)]
    assert {j.to_dict()["status"] for j in started} == {"queued"}
    with pytest.raises(ApiError) as full:
        jobs.start(offline_settings, VerifyBody(), key)
    assert full.value.status == 503 and full.value.headers["Retry-After"] == "30"
    assert len(jobs.jobs) == MAX_QUEUED  # the refused one is not kept
    gate.set()
    jobs.pool.shutdown(wait=True)
    done = [j.to_dict() for j in started]
    assert {(d["status"], d["ok"]) for d in done} == {("done", True)}  # an empty archive
    assert done[0]["result"]["entries"] == 0 and done[0]["started_by"] == "api-key:0123456789ab"
