"""The ``log:`` block of a log-based source: sizes, durations, and each bad field named."""

from __future__ import annotations

import pytest

from connectors import plugins
from connectors.errors import ConnectorConfigError
from connectors.sql.loglimit import format_bytes, format_seconds, parse_size


@pytest.mark.parametrize(
    ("value", "size"),
    [(1, 1), ("800kB", 800 * 1024), ("512MB", 512 << 20), ("10GB", 10 << 30), ("1.5GiB", 3 << 29),
     ("2 tb", 2 << 40), ("4096", 4096)],
)  # fmt: skip
def test_sizes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["10 gigabytes", "-1", 0, "0MB", True, 1.5, "MB", ""])
def test_bad_sizes(value: object) -> None:
    with pytest.raises(ValueError, match="expected"):
        parse_size(value)


def test_figures_in_words() -> None:
    assert format_bytes(12 << 20) == "12.0 MB" and format_bytes(900) == "900 bytes"
    assert format_seconds(6 * 3600 + 180) == "6h 3m" and format_seconds(42) == "42s"


def _file(type_name: str = "postgresql", role: str = "source", **extra: object) -> dict:
    scheme = "postgresql" if type_name == "postgresql" else "mysql"
    return {
        "name": "s",
        "type": type_name,
        "role": role,
        "agency": "a",
        "unit": "26734",
        "connection": {"url": f"{scheme}://u@h/db"},
        "tables": [
            {"table": "t", "dataset": "a.b", **({"mode": "log"} if role == "source" else {})}
        ],
        **extra,
    }


def _errors(data: dict) -> list[str]:
    with pytest.raises(ConnectorConfigError) as caught:
        plugins.validate(data)
    return [str(p) for p in caught.value.errors]


def test_a_valid_block() -> None:
    cfg = plugins.validate(
        _file(log={"warn_bytes": "512MB", "warn_time": "6h", "max_bytes": "10GB"})
    )
    assert (cfg.log.warn_bytes, cfg.log.warn_time, cfg.log.max_bytes) == (
        512 << 20,
        21600,
        10 << 30,
    )
    maria = plugins.validate(_file("mysql", log={"warn_bytes": "1GB", "warn_time": "2d"}))
    assert maria.log.warn_time == 2 * 86_400


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        ({"warn_bytes": "lots"}, "log.warn_bytes: expected a size such as 512MB"),
        ({"max_bytes": "-5GB"}, "log.max_bytes: expected a size such as 512MB"),
        ({"warn_time": "6 hours"}, "log.warn_time: expected a duration such as 30s"),
        ({"warn_time": 0}, "log.warn_time: expected a duration above 0"),
        ({"warn_time": "100d"}, "log.warn_time: expected 0 to 7776000 seconds (90 days)"),
        ({"warn_bytes": "2GB", "max_bytes": "1GB"}, "log.warn_bytes: must be below log.max_bytes"),
        ({"max_byte": "1GB"}, "log.max_byte: unknown key"),
        ({}, "log: expected at least one of warn_bytes, warn_time, max_bytes"),
    ],
)
def test_each_bad_field_is_named(log: dict, expected: str) -> None:
    errors = _errors(_file(log=log))
    assert any(e.startswith(expected) for e in errors), errors


def test_the_block_is_for_log_sources_and_the_hard_limit_for_postgresql() -> None:
    assert _errors(_file("mysql", log={"max_bytes": "1GB"})) == [
        "log.max_bytes: only for postgresql: a MariaDB/MySQL binlog is kept by the server's "
        "binlog_expire_logs_seconds, not for the connector (use warn_bytes or warn_time)"
    ]
    assert _errors(_file(role="sink", log={"warn_bytes": "1GB"})) == [
        "log: only for sources with mode: log tables"
    ]
    polling = _file(log={"warn_bytes": "1GB"})
    polling["tables"][0]["mode"] = "snapshot"
    assert _errors(polling) == ["log: only for sources with mode: log tables"]
