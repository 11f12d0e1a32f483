"""A publish that fails half-way leaves no catalogue row without its schema subjects, and says
what it left; a publish racing another one gets a bus error, never a raw database error."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from bus.catalog import get_dataset
from bus.catalog.datasets import PublishResult
from bus.config import Settings
from bus.db import open_engine
from bus.errors import FatalError, LgspError, NotFoundError
from bus.registry import Registry
from tests.unit.catalog.support import CITIZEN_SCHEMA, publish

FIRST = "lgsp.79.760.26734.dancu.citizen-value"
SECOND = "lgsp.79.777.27460.dancu.citizen-value"
UNITS = ["26734", "27460"]


def refuse_second(settings: Settings, refuse: bool = True) -> None:
    """Make the registry's table refuse versions of the second subject (a real database error
    raised inside the registry), or stop refusing."""
    with open_engine(settings).begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS refuse_second"))
        if refuse:
            conn.execute(
                text(
                    "CREATE TRIGGER refuse_second BEFORE INSERT ON registry_version "
                    f"WHEN NEW.subject = '{SECOND}' BEGIN SELECT RAISE(ABORT, 'refused'); END"
                )
            )


def _versions(settings: Settings, subject: str) -> int:
    return len(Registry(settings).versions(subject))


def test_a_failed_first_publish_leaves_no_row(offline_settings: Settings, tmp_path: Path) -> None:
    refuse_second(offline_settings)
    with pytest.raises(FatalError) as err:
        publish(offline_settings, tmp_path, "dancu.citizen", units=UNITS)
    message = str(err.value)
    assert SECOND in message and "IntegrityError" in message
    assert "removed again" in message and "already registered (kept, reused" in message
    assert FIRST in message and "Publish again" in message
    with pytest.raises(NotFoundError):
        get_dataset(offline_settings, "dancu.citizen")
    assert _versions(offline_settings, FIRST) == 1 and _versions(offline_settings, SECOND) == 0


def test_a_failed_update_sets_the_row_back(offline_settings: Settings, tmp_path: Path) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen", units=UNITS)
    refuse_second(offline_settings)
    schema = json.loads(CITIZEN_SCHEMA.read_text("utf-8"))
    schema["fields"].append({"name": "email", "type": ["null", "string"], "default": None})
    changed = tmp_path / "ward.Citizen.avsc"
    changed.write_text(json.dumps(schema), "utf-8")
    with pytest.raises(LgspError, match="set back to version 1"):
        publish(offline_settings, tmp_path, "dancu.citizen", units=UNITS, schema=str(changed))
    info = get_dataset(offline_settings, "dancu.citizen")
    assert info.version == 1 and "email" not in info.fields
    assert _versions(offline_settings, FIRST) == 2 and _versions(offline_settings, SECOND) == 1

    with open_engine(offline_settings).begin() as conn:
        conn.execute(text("DROP TRIGGER refuse_second"))
    again = publish(offline_settings, tmp_path, "dancu.citizen", units=UNITS, schema=str(changed))
    assert (
        again.status == "updated"
        and "email" in get_dataset(offline_settings, "dancu.citizen").fields
    )
    assert _versions(offline_settings, FIRST) == 2 and _versions(offline_settings, SECOND) == 2


def race(
    settings: Settings, folder: Path, publishers: list[str], name: str = "dancu.citizen"
) -> list[object]:
    """Publish the same dataset from several threads at once; each result or error."""
    barrier = threading.Barrier(len(publishers))
    results: list[object] = [None] * len(publishers)

    def one(i: int) -> None:
        sub = folder / f"{name}-p{i}"
        sub.mkdir()
        barrier.wait()
        try:
            results[i] = publish(settings, sub, name, publisher=publishers[i])
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(publishers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_racing_publishes_get_bus_errors_only(offline_settings: Settings, tmp_path: Path) -> None:
    results = race(offline_settings, tmp_path, ["cong-an-tp", "cong-an-tp", "ubnd-q1"])
    assert all(isinstance(r, PublishResult | LgspError) for r in results), results
    assert any(isinstance(r, PublishResult) for r in results)
    owner = get_dataset(offline_settings, "dancu.citizen").publisher
    for r in results:
        if isinstance(r, LgspError):
            assert "already published by" in str(r) or "try again" in str(r), r
        else:
            assert isinstance(r, PublishResult) and r.publisher == owner
