"""Dated unit changes: the packaged reform as data, an operator's mapping file validated
(every bad entry refused with its reason, nothing stored), show --on and history."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from bus.cli.main import cli
from bus.config import Settings
from bus.units.changes import ChangeFileError
from bus.units.timeline import add_change_file, load_timeline


def _file(tmp_path: Path, changes: list[dict], **head: str) -> Path:
    data = {"name": "op-2027", "from": "hcmc-2025", "to": "hcmc-2025", "effective": "2027-01-01"}
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(data | head | {"changes": changes}), encoding="utf-8")
    return path


def test_packaged_reform_every_old_ward_has_a_successor() -> None:
    t = load_timeline()
    old = t.hierarchy("hcmc-2024")
    assert t.hierarchy_on(date(2025, 6, 30)).name == "hcmc-2024"
    assert t.hierarchy_on(date(2025, 7, 2)).name == "hcmc-2025"
    for ward in old.units(level="ward"):
        after = t.became(ward.code, "hcmc-2024", date(2026, 1, 1))
        assert after and all(s.hierarchy == "hcmc-2025" for s in after), ward.code
        assert t.became(ward.code, "hcmc-2024", date(2025, 6, 30))[0].unit == ward
    [tan_dinh] = t.became("26734", "hcmc-2024", date(2026, 1, 1))
    assert (tan_dinh.unit.code, tan_dinh.via[0].kind) == ("26737", "merge")
    split = t.changes_of("26737", "hcmc-2024")[0]
    assert split.kind == "split" and split.rule is not None and split.target({}) == "26740"


@pytest.mark.parametrize(
    ("changes", "head", "reason"),
    [
        ([{"old": "99999", "new": ["26740"]}], {}, "changes[0] (old 99999): unknown code 99999"),
        ([{"old": "26737", "new": ["12345"]}], {}, "new: unknown code(s) 12345"),
        ([{"old": "26737", "new": []}], {}, "changes[0] (old 26737): new: expected at least one"),
        (
            [{"old": "26743", "new": ["26740", "26758"]}],
            {},
            "changes[0] (old 26743): a split into 26740, 26758 needs a rule",
        ),
        (
            [{"old": "26743", "new": ["26740", "26758"], "rule": {"default": "26737"}}],
            {},
            "rule: 26737 is not one of the parts",
        ),
        (
            [{"old": "26737", "new": ["26740"]}, {"old": "26737", "new": ["26743"]}],
            {},
            "changes[1] (old 26737): overlapping dates: changes[0] already changes unit 26737",
        ),
        (
            [
                {"old": "26737", "new": ["26740"], "effective": "2027-01-01"},
                {"old": "26737", "new": ["26743"], "effective": "2028-01-01"},
            ],
            {},
            "changes[1] (old 26737): overlapping dates: unit 26737 ceased on 2027-01-01",
        ),
        (
            [{"old": "26737", "new": ["26740"]}, {"old": "26740", "new": ["26737"]}],
            {},
            "changes[0] (old 26737): cycle 26737 -> 26740 -> 26737 on 2027-01-01",
        ),
        (
            [{"old": "26734", "new": ["26737"]}],
            {"from": "hcmc-2024", "to": "hcmc-2025", "effective": "2025-07-01"},
            "overlapping dates: mapping 'hcmc-2025-reform' already changes unit 26734",
        ),
        (
            [{"old": "26737", "new": ["26740"]}],
            {"effective": "2025-06-01"},
            "effective 2025-06-01: unit 26737 is not valid the day before",
        ),
        ([{"old": "26737", "new": ["26740"]}], {"effective": "2027-13-01"}, "effective: expected"),
    ],
)
def test_bad_mapping_refused_with_reason_nothing_stored(
    offline_settings: Settings, tmp_path: Path, changes: list[dict], head: dict, reason: str
) -> None:
    good = {"old": "26758", "new": ["26758"], "name": "Phường Bến Thành mới"}
    path = _file(tmp_path, [good, *changes], **head)
    with pytest.raises(ChangeFileError) as info:
        add_change_file(offline_settings, path)
    shifted = reason.replace("changes[1]", "changes[2]").replace("changes[0]", "changes[1]")
    assert shifted in str(info.value), str(info.value)
    assert len(load_timeline(offline_settings).changes) == len(load_timeline().changes)


def test_operator_mapping_stored_and_followed(offline_settings: Settings, tmp_path: Path) -> None:
    split = {
        "old": "26743",
        "new": ["26740", "26758"],
        "rule": {"field": "street", "values": {"Lê Lợi": "26740"}, "default": "26758"},
    }
    path = _file(tmp_path, [split, {"old": "26737", "new": ["26740"]}])
    add_change_file(offline_settings, path)
    t = load_timeline(offline_settings)
    # Phường Tân Định of 2024 -> 26737 (2025) -> merged into 26740 on 2027-01-01
    assert [s.unit.code for s in t.became("26734", "hcmc-2024", date(2026, 12, 31))] == ["26737"]
    [later] = t.became("26734", "hcmc-2024", date(2027, 1, 1))
    assert later.unit.code == "26740" and [c.kind for c in later.via] == ["merge", "merge"]
    rec = {"street": "Lê Lợi"}
    assert [s.unit.code for s in t.became("26743", "hcmc-2025", date(2027, 1, 1), rec)] == ["26740"]
    assert [s.unit.code for s in t.became("26743", "hcmc-2025", date(2027, 1, 1), {})] == ["26758"]
    with pytest.raises(ChangeFileError, match="already stored"):
        add_change_file(offline_settings, path)


def test_a_file_gives_a_packaged_split_its_field_once(
    offline_settings: Settings, tmp_path: Path
) -> None:
    head = {"from": "hcmc-2024", "to": "hcmc-2025", "effective": "2025-07-01"}
    rule = {"field": "street", "values": {"Pasteur": "26740"}, "default": "26743"}
    other = _file(tmp_path, [{"old": "26746", "new": ["26740"], "rule": rule}], **head)
    with pytest.raises(ChangeFileError, match="overlapping dates"):  # not the same parts
        add_change_file(offline_settings, other)
    split = {"old": "26746", "new": ["26743", "26740"], "rule": rule}
    add_change_file(offline_settings, _file(tmp_path, [split], **head, name="streets"))
    t = load_timeline(offline_settings)
    assert len(t.changes) == len(load_timeline().changes)  # replaced, not added
    [change] = t.changes_of("26746", "hcmc-2024")
    assert change.source == "streets" and change.target({"street": "Pasteur"}) == "26740"
    assert change.target({"street": "Lê Lợi"}) == "26743"
    again = _file(tmp_path, [split], **head, name="streets-2")
    with pytest.raises(ChangeFileError, match="overlapping dates"):  # a field rule is there
        add_change_file(offline_settings, again)


def test_cli_show_on_and_history(cli_env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["units", "show", "26734", "--on", "2026-01-01"])
    assert out.exit_code == 0, out.output
    assert "on 2026-01-01:  26737 Phường Tân Định [hcmc-2025, path 79.26737]" in out.output
    out = runner.invoke(cli, ["units", "history", "26734"])
    assert out.exit_code == 0 and "2025-07-01  merge" in out.output
    bad = _file(tmp_path, [{"old": "26743", "new": ["26740", "26758"]}])
    out = runner.invoke(cli, ["units", "mapping", "add", str(bad)])
    assert out.exit_code != 0 and "needs a rule" in out.output
