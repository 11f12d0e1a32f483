"""Topic names ``lgsp.<unit path>.<domain>.<dataset>`` and dataset-name rules."""

from __future__ import annotations

import pytest

from bus.errors import InvalidNameError, UnknownUnitError
from bus.units import Hierarchy, load_hierarchy, parse_topic, topic_name, validate_dataset_name


@pytest.fixture(scope="module")
def h24() -> Hierarchy:
    return load_hierarchy("hcmc-2024")


@pytest.fixture(scope="module")
def h25() -> Hierarchy:
    return load_hierarchy("hcmc-2025")


@pytest.mark.parametrize("name", ["tthc.dossier", "dancu.resident", "ho_tich.khai_sinh2", "a.b"])
def test_good_dataset_names(name: str) -> None:
    assert validate_dataset_name(name) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("TTHC.dossier", "lowercase"),
        ("tthc.Dossier", "lowercase"),
        ("tthc.ho so", r"' ' not allowed"),
        (" tthc.dossier", r"' ' not allowed"),
        ("tthc.dossier'", r"\"'\" not allowed"),
        ('tthc."dossier"', r"'\"' not allowed"),
        ("tthc.dossier;drop", r"';' not allowed"),
        ("tthc.dossier;DROP TABLE x", "lowercase"),
        ("tthc-dossier.x", r"'-' not allowed"),
        ("dossier", "missing the domain"),
        ("tthc.hồ_sơ", "ASCII"),
        ("hộtịch.khai_sinh", "ASCII"),
        ("tthc.dossier.v2", "exactly one '.'"),
        ("tthc..dossier", "exactly one '.'"),
        (".dossier", "domain part is empty"),
        ("tthc.", "name part is empty"),
        ("1tthc.dossier", "domain part must start with a letter"),
        ("tthc._dossier", "name part must start with a letter"),
        ("", "must not be empty"),
        ("a." + "b" * 100, "longer than"),
    ],
)
def test_bad_dataset_names(name: str, reason: str) -> None:
    with pytest.raises(InvalidNameError, match=reason):
        validate_dataset_name(name)


def test_dataset_name_must_be_a_string() -> None:
    with pytest.raises(InvalidNameError, match="expected a string"):
        validate_dataset_name(None)


def test_topic_names(h24: Hierarchy, h25: Hierarchy) -> None:
    assert topic_name(h24, "26734", "tthc.dossier") == "lgsp.79.760.26734.tthc.dossier"
    assert topic_name(h24, "760", "tthc.dossier") == "lgsp.79.760.tthc.dossier"
    assert topic_name(h24, "79", "dancu.resident") == "lgsp.79.dancu.resident"
    assert topic_name(h24, 27460, "tthc.dossier") == "lgsp.79.777.27460.tthc.dossier"
    assert topic_name(h25, "26737", "tthc.dossier") == "lgsp.79.26737.tthc.dossier"


def test_topic_name_refuses_bad_input(h24: Hierarchy, h25: Hierarchy) -> None:
    with pytest.raises(UnknownUnitError, match="'hcmc-2024'"):
        topic_name(h24, "99999", "tthc.dossier")
    with pytest.raises(UnknownUnitError, match="replaced by"):
        topic_name(h25, "26734", "tthc.dossier")
    with pytest.raises(InvalidNameError, match="missing the domain"):
        topic_name(h24, "26734", "dossier")


@pytest.mark.parametrize("name", ["hcmc-2024", "hcmc-2025"])
def test_round_trip_every_unit(name: str) -> None:
    h = load_hierarchy(name)
    for unit in h:
        topic = topic_name(h, unit.code, "tthc.dossier")
        assert parse_topic(h, topic) == (unit, "tthc.dossier")


def test_parse_topic(h24: Hierarchy) -> None:
    unit, dataset = parse_topic(h24, "lgsp.79.760.26734.tthc.dossier")
    assert (unit.code, unit.name, dataset) == ("26734", "Phường Tân Định", "tthc.dossier")


@pytest.mark.parametrize(
    ("topic", "error", "reason"),
    [
        ("kafka.79.760.26734.tthc.dossier", InvalidNameError, "must start with 'lgsp.'"),
        ("lgsp.tthc.dossier", InvalidNameError, "expected 'lgsp.<unit path>"),
        ("lgsp.79.760.26734.tthc", InvalidNameError, "must start with a letter"),
        ("lgsp.79.760.26734.TTHC.dossier", InvalidNameError, "lowercase"),
        ("lgsp.79.760.26734.tthc.dossier;x", InvalidNameError, "not allowed"),
        ("lgsp.79.760.99999.tthc.dossier", UnknownUnitError, "'99999'"),
        ("lgsp.79.777.26734.tthc.dossier", InvalidNameError, r"does not match .* 79\.760\.26734"),
        ("lgsp.760.26734.tthc.dossier", InvalidNameError, "does not match"),
        ("lgsp.26734.tthc.dossier", InvalidNameError, "does not match"),
        ("lgsp.79.79.760.26734.tthc.dossier", InvalidNameError, "does not match"),
        ("lgsp.79..26734.tthc.dossier", InvalidNameError, "is not a unit code"),
        ("lgsp.79.x760.26734.tthc.dossier", InvalidNameError, "is not a unit code"),
        ("lgsp", InvalidNameError, "expected 'lgsp.<unit path>"),
    ],
)
def test_parse_topic_refuses(h24: Hierarchy, topic: str, error: type, reason: str) -> None:
    with pytest.raises(error, match=reason):
        parse_topic(h24, topic)


def test_parse_topic_checks_the_hierarchy(h25: Hierarchy) -> None:
    with pytest.raises(UnknownUnitError):
        parse_topic(h25, "lgsp.79.760.26734.tthc.dossier")
    unit, _ = parse_topic(h25, "lgsp.79.26737.tthc.dossier")
    assert unit.name == "Phường Tân Định"
