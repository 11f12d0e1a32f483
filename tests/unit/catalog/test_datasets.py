"""The dataset catalogue: validation, one publisher per dataset, owned attributes, search."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bus.catalog import (
    check_attribute_ownership,
    get_dataset,
    list_agencies,
    list_datasets,
    publish_dataset,
    search_datasets,
)
from bus.catalog.datasets import canonical_attribute, parse_dataset
from bus.config import Settings
from bus.errors import ConfigurationError, IncompatibleSchemaError, NotFoundError
from bus.registry import Registry
from tests.unit.catalog.support import CITIZEN_SCHEMA, HOUSEHOLD_SCHEMA, dataset_doc, publish

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "datasets"


def test_publish_registers_envelope_under_each_unit_subject(
    offline_settings: Settings, tmp_path: Path
) -> None:
    result = publish(offline_settings, tmp_path, "dancu.citizen", units=["26734", "27460"])
    assert result.status == "created"
    assert [s for s, _, _ in result.subjects] == [
        "lgsp.79.760.26734.dancu.citizen-value",
        "lgsp.79.777.27460.dancu.citizen-value",
    ]
    registered = Registry(offline_settings).latest("lgsp.79.760.26734.dancu.citizen-value")
    assert registered.schema["name"] == "CitizenEnvelope"
    info = get_dataset(offline_settings, "dancu.citizen")
    # file pii plus the fields the schema tags as pii, in field order
    assert info.pii == ["citizen_id", "full_name", "birth_date"]
    assert info.key_fields == ["citizen_id"]
    assert info.publisher == "cong-an-tp"
    assert [a.name for a in list_agencies(offline_settings)] == ["cong-an-tp"]


def test_republish_by_the_owner_is_idempotent_then_an_update(
    offline_settings: Settings, tmp_path: Path
) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen")
    assert publish(offline_settings, tmp_path, "dancu.citizen").status == "unchanged"
    again = publish(offline_settings, tmp_path, "dancu.citizen", pii=["citizen_id", "phone"])
    assert again.status == "updated"
    info = get_dataset(offline_settings, "dancu.citizen")
    assert info.version == 2 and "phone" in info.pii


def test_a_second_publisher_is_refused_with_the_owner_named(
    offline_settings: Settings, tmp_path: Path
) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen", units=["79"])
    with pytest.raises(ConfigurationError, match="already published by cong-an-tp") as err:
        publish(offline_settings, tmp_path, "dancu.citizen", publisher="ubnd-q1", units=["760"])
    assert "ubnd-q1" in str(err.value)
    info = get_dataset(offline_settings, "dancu.citizen")
    assert info.publisher == "cong-an-tp" and info.units == ["79"] and info.version == 1
    subjects = [s for s, _, _ in Registry(offline_settings).subjects()]
    assert subjects == ["lgsp.79.dancu.citizen-value"]  # nothing registered for 760
    assert [a.name for a in list_agencies(offline_settings)] == ["cong-an-tp"]


def test_every_problem_of_a_dataset_file_is_reported_at_once(
    offline_settings: Settings, tmp_path: Path
) -> None:
    doc = dataset_doc(
        "Dancu",
        publisher="Cong An",
        units=["79", "99999"],
        pii=["citizen_id", "shoe_size"],
        description={"vi": "", "en": "x"},
        legal_basis=" ",
        frequency="sometimes",
        colour="blue",
    )
    with pytest.raises(ConfigurationError) as err:
        parse_dataset(offline_settings, doc, where="bad.yaml")
    text = str(err.value)
    for expected in (
        "bad.yaml",
        "name:",
        "publisher:",
        "units.1: unit '99999' is not in the administrative hierarchy",
        "pii: shoe_size not a field of ward.Citizen",
        "description.vi",
        "legal_basis",
        "frequency",
        "colour",
    ):
        assert expected in text
    assert list_datasets(offline_settings) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"schema": "no/such.avsc"}, "schema: file 'no/such.avsc' not found"),
        ({"units": []}, "units:"),
        ({"key": ["nope"]}, "key: nope not a field"),
        ({"units": ["79", "79"]}, "a unit appears twice"),
        ({"description": None}, "description: Field required"),
    ],
)
def test_bad_dataset_files_store_nothing(
    offline_settings: Settings, tmp_path: Path, overrides: dict, expected: str
) -> None:
    with pytest.raises(ConfigurationError, match=expected):
        publish(offline_settings, tmp_path, "dancu.citizen", **overrides)
    assert list_datasets(offline_settings) == []
    assert Registry(offline_settings).subjects() == []


def test_a_bad_dataset_name_is_refused(offline_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="name: .*missing the domain"):
        publish(offline_settings, tmp_path, "dancu")
    assert list_datasets(offline_settings) == []


def test_a_file_that_is_not_yaml_or_not_a_mapping(
    offline_settings: Settings, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n", "utf-8")
    with pytest.raises(ConfigurationError, match="not valid YAML at line"):
        publish_dataset(offline_settings, bad)
    bad.write_text("- a\n- b\n", "utf-8")
    with pytest.raises(ConfigurationError, match="expected a mapping"):
        publish_dataset(offline_settings, bad)
    with pytest.raises(ConfigurationError, match="cannot read"):
        publish_dataset(offline_settings, tmp_path / "missing.yaml")


def test_an_incompatible_schema_change_is_refused(
    offline_settings: Settings, tmp_path: Path
) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen")
    schema = json.loads(CITIZEN_SCHEMA.read_text("utf-8"))
    schema["fields"].append({"name": "required_new", "type": "string"})  # no default
    changed = tmp_path / "ward.Citizen.avsc"
    changed.write_text(json.dumps(schema), "utf-8")
    with pytest.raises(IncompatibleSchemaError, match="lgsp.79.dancu.citizen-value"):
        publish(offline_settings, tmp_path, "dancu.citizen", schema=str(changed))
    assert get_dataset(offline_settings, "dancu.citizen").version == 1


def test_a_duplicate_attribute_is_flagged_with_owner_and_field(
    offline_settings: Settings, tmp_path: Path
) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen")
    result = publish(
        offline_settings,
        tmp_path,
        "ward.household",
        publisher="ubnd-phuong-tan-dinh",
        units=["26734"],
        schema=str(HOUSEHOLD_SCHEMA),
        pii=[],
    )
    assert result.status == "created"  # a warning, not a refusal
    flagged = [(f.field, f.owner_dataset, f.owner_agency, f.owner_field) for f in result.findings]
    # head_birth_date re-collects birth dates; citizen_id is the owner's key: a reference
    assert flagged == [("head_birth_date", "dancu.citizen", "cong-an-tp", "birth_date")]
    assert "owned by dataset dancu.citizen" in result.findings[0].message
    assert get_dataset(offline_settings, "ward.household").findings[0]["field"] == (
        "head_birth_date"
    )


def test_strict_refuses_a_duplicate_attribute_and_stores_nothing(
    offline_settings: Settings, tmp_path: Path
) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen")
    path = tmp_path / "household.yaml"
    path.write_text(
        yaml.safe_dump(
            dataset_doc(
                "ward.household",
                publisher="ubnd-phuong-tan-dinh",
                units=["26734"],
                schema=str(HOUSEHOLD_SCHEMA),
                pii=[],
            )
        ),
        "utf-8",
    )
    with pytest.raises(ConfigurationError, match="--strict.*head_birth_date"):
        publish_dataset(offline_settings, path, strict=True)
    assert [d.name for d in list_datasets(offline_settings)] == ["dancu.citizen"]
    assert "ubnd-phuong-tan-dinh" not in [a.name for a in list_agencies(offline_settings)]


def test_connectors_can_check_their_columns(offline_settings: Settings, tmp_path: Path) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen")
    findings = check_attribute_ownership(
        offline_settings,
        "hotich.birth",
        ["so_ho_tich", "NgaySinh", "ho_va_ten", "mother_full_name", "citizen_id", "address_line"],
    )
    assert [(f.field, f.owner_field) for f in findings] == [
        ("NgaySinh", "birth_date"),
        ("ho_va_ten", "full_name"),
        ("mother_full_name", "full_name"),
    ]
    # the owner itself is never flagged against itself
    assert check_attribute_ownership(offline_settings, "dancu.citizen", ["birth_date"]) == []


def test_canonical_attribute_names() -> None:
    assert canonical_attribute("NgàySinh") == "birth_date"
    assert canonical_attribute("date-of-birth") == "birth_date"
    assert canonical_attribute("SoCCCD") == "citizen_id"
    assert canonical_attribute("unit") == "unit"


def test_list_show_and_search(offline_settings: Settings, tmp_path: Path) -> None:
    publish(offline_settings, tmp_path, "dancu.citizen")
    publish(
        offline_settings,
        tmp_path,
        "ward.household",
        publisher="ubnd-phuong-tan-dinh",
        units=["26734"],
        schema=str(HOUSEHOLD_SCHEMA),
        pii=[],
        description={"vi": "Khảo sát hộ gia đình", "en": "Household survey"},
    )
    assert [d.name for d in list_datasets(offline_settings)] == ["dancu.citizen", "ward.household"]

    def found(word: str) -> dict[str, list[str]]:
        return {h.dataset: h.matches for h in search_datasets(offline_settings, word)}

    assert found("household") == {
        "dancu.citizen": ["field household_id"],
        "ward.household": ["name", "description", "field household_id"],
    }
    assert found("khao sat") == {"ward.household": ["description"]}  # accents ignored
    assert found("ngay_sinh") == {
        "dancu.citizen": ["field birth_date"],
        "ward.household": ["field head_birth_date"],
    }
    assert found("xyz") == {}
    with pytest.raises(NotFoundError, match="'dancu.nope' is not in the catalogue"):
        get_dataset(offline_settings, "dancu.nope")


def test_example_dataset_files_publish_without_findings(offline_settings: Settings) -> None:
    names = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        result = publish_dataset(offline_settings, path)
        assert result.findings == [], path.name
        names.append(result.dataset)
    assert names == ["dancu.resident", "phananh.report", "tthc.dossier"]
    assert get_dataset(offline_settings, "dancu.resident").pii == [
        "citizen_id",
        "full_name",
        "birth_date",
        "address",
    ]
