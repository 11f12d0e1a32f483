"""Small helpers shared by tests (importable as ``tests.helpers``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bus.config import Settings
from bus.envelope import envelope_schema
from bus.registry import Registry, subject_for


def record_schema(name: str = "Person", namespace: str = "demo", extra: list | None = None) -> dict:
    fields: list[dict[str, Any]] = [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        },
        {"name": "born", "type": ["null", {"type": "int", "logicalType": "date"}], "default": None},
        {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    ]
    return {
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": fields + (extra or []),
    }


def register_topic(settings: Settings, topic: str, schema: dict | None = None) -> int:
    env = envelope_schema(schema or record_schema(), settings.schemas_dir)
    return Registry(settings).register(subject_for(topic), env).id


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Return as soon as ``predicate()`` is true; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)
