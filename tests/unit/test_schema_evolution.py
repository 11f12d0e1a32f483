"""One test per evolution rule and mode, decided by the avro package's checker via the registry."""

from __future__ import annotations

import copy

import pytest

from bus.config import Settings
from bus.errors import IncompatibleSchemaError, SchemaError
from bus.registry import Registry, check_compatibility

BASE = {
    "type": "record",
    "name": "Ho",
    "namespace": "t",
    "fields": [{"name": "id", "type": "int"}, {"name": "ten", "type": "string"}],
}


def with_fields(*extra: dict, drop: str | None = None, base: dict = BASE) -> dict:
    schema = copy.deepcopy(base)
    schema["fields"] = [f for f in schema["fields"] if f["name"] != drop] + list(extra)
    return schema


ADD_WITH_DEFAULT = with_fields({"name": "phuong", "type": "string", "default": ""})
ADD_NO_DEFAULT = with_fields({"name": "phuong", "type": "string"})
REMOVE = with_fields(drop="ten")
WIDEN = {**BASE, "fields": [{"name": "id", "type": "long"}, BASE["fields"][1]]}
RENAME = {**BASE, "fields": [BASE["fields"][0], {"name": "ho_ten", "type": "string"}]}

# (mode, allowed change, refused change)
CASES = [
    ("BACKWARD", ADD_WITH_DEFAULT, ADD_NO_DEFAULT),
    ("BACKWARD", WIDEN, RENAME),
    ("FORWARD", ADD_NO_DEFAULT, REMOVE),
    ("FORWARD", ADD_WITH_DEFAULT, WIDEN),
    ("FULL", ADD_WITH_DEFAULT, ADD_NO_DEFAULT),
    ("FULL", ADD_WITH_DEFAULT, WIDEN),
    ("BACKWARD_TRANSITIVE", REMOVE, RENAME),
    ("FORWARD_TRANSITIVE", ADD_NO_DEFAULT, REMOVE),
    ("FULL_TRANSITIVE", ADD_WITH_DEFAULT, REMOVE),
]


@pytest.mark.parametrize(("mode", "allowed", "refused"), CASES)
def test_mode_allows_and_refuses(mode: str, allowed: dict, refused: dict) -> None:
    history = [(1, BASE)]
    assert check_compatibility(allowed, history, mode) == []
    problems = check_compatibility(refused, history, mode)
    assert problems, f"{mode} should refuse"


def test_none_allows_anything() -> None:
    assert check_compatibility(RENAME, [(1, BASE)], "NONE") == []


def test_transitive_checks_every_version() -> None:
    v1 = BASE
    v2 = with_fields({"name": "phuong", "type": "string", "default": ""})
    v3 = with_fields({"name": "phuong", "type": "string"})  # default dropped
    history = [(1, v1), (2, v2)]
    assert check_compatibility(v3, history, "BACKWARD") == []
    problems = check_compatibility(v3, history, "BACKWARD_TRANSITIVE")
    assert len(problems) == 1 and "version 1" in problems[0]


def test_registry_refuses_and_stores_nothing(offline_settings: Settings) -> None:
    reg = Registry(offline_settings)
    first = reg.register("lgsp.79.tthc.demo-value", BASE)
    assert (first.version, first.id) == (1, 1)
    with pytest.raises(IncompatibleSchemaError, match="reader_field_missing_default_value"):
        reg.register("lgsp.79.tthc.demo-value", ADD_NO_DEFAULT)
    assert [v.version for v in reg.versions("lgsp.79.tthc.demo-value")] == [1]
    second = reg.register("lgsp.79.tthc.demo-value", ADD_WITH_DEFAULT)
    assert second.version == 2
    # the same schema again is the same version, not a new one
    assert reg.register("lgsp.79.tthc.demo-value", ADD_WITH_DEFAULT).version == 2


def test_compat_mode_per_subject(offline_settings: Settings) -> None:
    reg = Registry(offline_settings)
    reg.register("s-value", BASE)
    reg.set_compatibility("s-value", "forward")
    assert reg.compatibility("s-value") == "FORWARD"
    assert reg.register("s-value", ADD_NO_DEFAULT).version == 2
    with pytest.raises(SchemaError, match="compatibility: expected one of"):
        reg.set_compatibility("s-value", "SIDEWAYS")


def test_same_schema_two_subjects_share_an_id(offline_settings: Settings) -> None:
    reg = Registry(offline_settings)
    a = reg.register("a-value", BASE)
    b = reg.register("b-value", BASE)
    assert a.id == b.id and b.version == 1


def test_malformed_schema_refused(offline_settings: Settings) -> None:
    with pytest.raises(SchemaError, match="not a valid Avro schema"):
        Registry(offline_settings).register("x-value", {"type": "record", "name": "X"})
