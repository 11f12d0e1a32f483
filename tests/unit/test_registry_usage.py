"""Who uses a subject, the delete that refuses a subject in use (CLI and function), and the
one subject rule (control database only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bus.config import Settings
from bus.connectors_db import ConnectorStore
from bus.errors import ExitCode
from bus.registry import Registry, subject_for
from bus.registry.errors import InvalidSubjectError, SubjectInUseError
from bus.registry.store import check_subject
from bus.registry.usage import SubjectUse, delete_subject, subject_users
from tests.helpers import record_schema, register_topic
from tests.helpers import run_cli as _cli
from tests.unit.catalog.support import publish

WARD = "lgsp.79.760.26734.tthc.dossier"
DISTRICT = "lgsp.79.760.tthc.dossier"


def _source(settings: Settings, name: str, topic: str, role: str = "source") -> None:
    ConnectorStore(settings).add(
        name=name,
        type="sqlite",
        role=role,
        agency="ubnd-phuong-tan-dinh",
        unit="26734",
        config={"name": name},
        topics={"ho_so": topic},
    )


def test_users_are_connectors_datasets_and_routes(
    offline_settings: Settings, tmp_path: Path
) -> None:
    assert subject_users(offline_settings, subject_for(WARD)) == []
    _source(offline_settings, "src-ward", WARD)
    _source(offline_settings, "sink-district", DISTRICT, role="sink")
    publish(offline_settings, tmp_path, "tthc.dossier", units=["26734"])
    ward = subject_users(offline_settings, subject_for(WARD))
    assert ward == [
        SubjectUse("connector", "src-ward", "writes"),
        SubjectUse("dataset", "tthc.dossier", "writes"),
        SubjectUse("route", f"{WARD} -> {DISTRICT}", "reads"),
    ]
    district = subject_users(offline_settings, subject_for(DISTRICT))
    assert SubjectUse("connector", "sink-district", "reads") in district
    assert SubjectUse("route", f"{WARD} -> {DISTRICT}", "writes") in district
    assert SubjectUse("route", f"{DISTRICT} -> lgsp.79.tthc.dossier", "reads") in district
    assert subject_users(offline_settings, "not-a-topic-subject") == []


def test_a_subject_in_use_is_refused_unless_forced(offline_settings: Settings) -> None:
    registry = Registry(offline_settings)
    register_topic(offline_settings, WARD)
    register_topic(offline_settings, WARD, record_schema(extra=[_optional("note")]))
    _source(offline_settings, "src-ward", WARD)
    subject = subject_for(WARD)
    with pytest.raises(SubjectInUseError, match="connector src-ward") as caught:
        delete_subject(registry, subject)
    assert (caught.value.http_status, caught.value.error_code) == (422, 42206)
    with pytest.raises(SubjectInUseError):
        delete_subject(registry, subject, 2)  # the latest: what the connector resolves
    assert [v.version for v in registry.versions(subject)] == [1, 2]  # nothing deleted
    assert delete_subject(registry, subject, 1) == [1]  # an older version hides nothing used
    assert delete_subject(registry, subject, force=True) == [2]
    assert registry.versions(subject) == []
    assert delete_subject(registry, subject, permanent=True) == [1, 2]


def test_an_unused_subject_deletes_without_force(offline_settings: Settings) -> None:
    register_topic(offline_settings, WARD)
    assert delete_subject(Registry(offline_settings), subject_for(WARD)) == [1]


def _optional(name: str) -> dict:
    return {"name": name, "type": ["null", "string"], "default": None}


def test_cli_schema_delete(offline_cli_env: dict, tmp_path: Path) -> None:
    from bus.config import get_settings

    settings = get_settings()
    subject = subject_for(WARD)
    register_topic(settings, WARD)
    _source(settings, "src-ward", WARD)
    code, _, err = _cli("schema", "delete", subject, "--yes")
    assert code == ExitCode.INPUT and "in use by connector src-ward (writes)" in err
    assert "--force" in err
    assert [v.version for v in Registry(settings).versions(subject)] == [1]
    code, _, err = _cli("schema", "delete", subject)  # no terminal to confirm on
    assert code == ExitCode.INPUT and "--yes" in err
    code, out, _ = _cli("schema", "delete", subject, "--yes", "--force")
    assert code == 0 and f"{subject}: soft-deleted version(s) 1" in out
    code, out, _ = _cli("schema", "delete", subject, "--yes", "--permanent")
    assert code == 0 and "permanently deleted version(s) 1" in out
    code, _, err = _cli("schema", "delete", subject, "--yes")
    assert code == ExitCode.INPUT and "not registered" in err
    code, _, err = _cli("schema", "delete", "a b", "--yes")
    assert code == ExitCode.INPUT and "subject: expected" in err


def test_one_subject_rule(offline_settings: Settings, tmp_path: Path) -> None:
    for bad in ("", "a b", "-x", "x'; DROP TABLE registry_schema;--", "x" * 256, "../etc"):
        with pytest.raises(InvalidSubjectError, match="subject: expected"):
            check_subject(bad)
    assert check_subject("x" * 255) == "x" * 255
    with pytest.raises(InvalidSubjectError, match="subject: .*99999"):
        check_subject("lgsp.79.99999.tthc.dossier-value", offline_settings.hierarchy)
    registry = Registry(offline_settings)
    env = {"type": "record", "name": "R", "fields": []}
    for call in (
        lambda: registry.register("lgsp.79.99999.tthc.dossier-value", env),
        lambda: registry.register("a b", env),
        lambda: registry.set_compatibility("a b", "FULL"),
        lambda: registry.versions("a b"),
        lambda: registry.delete("a b"),
    ):
        with pytest.raises(InvalidSubjectError):
            call()
    assert registry.subjects() == []  # nothing stored
