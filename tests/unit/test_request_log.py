"""Record keys never reach the server's request log."""

from __future__ import annotations

import logging

from bus.api.request_log import MaskRecordKeys, masked_path


def test_masked_path_hides_the_key_of_a_record_lookup_only() -> None:
    assert masked_path("/v1/datasets/dancu.r/records/079201001234") == (
        "/v1/datasets/dancu.r/records/***"
    )
    assert masked_path("/v1/datasets/dancu.r/records/a/b/c?x=1") == (
        "/v1/datasets/dancu.r/records/***?x=1"
    )
    assert (
        masked_path("/v1/datasets/dancu.r/records:lookup") == "/v1/datasets/dancu.r/records:lookup"
    )
    assert masked_path("/subjects/x-value/versions") == "/subjects/x-value/versions"


def test_the_filter_rewrites_uvicorn_access_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/v1/datasets/d.x/records/079201001234", "1.1", 200),
        None,
    )
    assert MaskRecordKeys().filter(record)
    assert "079201001234" not in record.getMessage()
    assert "/v1/datasets/d.x/records/***" in record.getMessage()
