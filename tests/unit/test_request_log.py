"""Record keys never reach the server's request log."""

from __future__ import annotations

import logging

from bus.api.request_log import MaskKeys, mask_path


def test_mask_path_hides_the_key_of_a_record_lookup_only() -> None:
    assert mask_path("/v1/datasets/dancu.r/records/079201001234") == (
        "/v1/datasets/dancu.r/records/***"
    )
    assert mask_path("/v1/datasets/dancu.r/records/a/b/c?x=1") == (
        "/v1/datasets/dancu.r/records/***"  # the query of a keyed path too
    )
    assert mask_path("/v1/datasets/dancu.r/records:lookup") == "/v1/datasets/dancu.r/records:lookup"
    assert mask_path("/subjects/x-value/versions") == "/subjects/x-value/versions"


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
    assert MaskKeys().filter(record)
    assert "079201001234" not in record.getMessage()
    assert "/v1/datasets/d.x/records/***" in record.getMessage()
