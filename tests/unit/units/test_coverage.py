"""The rule grants for some units follow (``bus.units.coverage``): over the packaged 2025
mapping and an operator's split by a field, decided by the event's unit and day."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from bus.catalog import add_agency, add_grant, revoke_grant
from bus.catalog.grants import auditor_view
from bus.config import Settings
from bus.units import load_hierarchy
from bus.units.coverage import UnitScope, record_unit, vn_day
from bus.units.timeline import add_change_file, effective_ms, load_timeline
from tests.unit.catalog.support import FAR_FUTURE, publish

JUNE = date(2025, 6, 30)
JULY = date(2025, 7, 1)


def test_the_event_day_is_vietnams_and_the_unit_field_comes_first() -> None:
    assert vn_day(effective_ms(JULY)) == JULY and vn_day(effective_ms(JULY) - 1) == JUNE
    assert record_unit({"title": "x", "receiving_unit": "26740", "unit": "26734"}) == "26734"
    assert record_unit({"receiving_unit": 26740}) == "26740"
    assert record_unit({"unit": "", "title": "x"}) is None and record_unit(None) is None


def test_every_old_ward_of_district_1_by_day() -> None:
    t = load_timeline()
    old = load_hierarchy("hcmc-2024")
    for ward in old.children("760"):
        [change] = t.changes_of(ward.code, "hcmc-2024")
        successor = change.target({})
        scope = UnitScope(t, "hcmc-2024", (ward.code,))
        # before: the ward's own events only (a code read in the hierarchy of that day)
        assert scope.covers(ward.code, JUNE)
        assert not any(scope.covers(w.code, JUNE) for w in old.children("760") if w != ward)
        # after: every part it became, none other
        for new in load_hierarchy("hcmc-2025").units("ward"):
            assert scope.covers(new.code, JULY) == (new.code in change.new), (ward, new)
        # a grant for the new ward covers the old ward's history when its rule sends it there
        back = UnitScope(t, "hcmc-2025", (successor,))
        assert back.covers(ward.code, JUNE, {"unit": ward.code})
        assert back.covers(successor, JULY)
        assert scope.covers_event(
            {"ts_ms": effective_ms(JULY) - 1, "after": {"unit": ward.code}}
        ) and not scope.covers_event(
            {"ts_ms": effective_ms(JULY) - 1, "after": {"unit": "27460"}}  # An Lạc, Bình Tân
        )


def test_a_district_stands_for_its_wards_and_the_listing_shows_both_eras() -> None:
    t = load_timeline()
    scope = UnitScope(t, "hcmc-2024", ("760",))
    assert scope.covers("26734", JUNE) and scope.covers("760", JUNE)
    assert not scope.covers("27460", JUNE)
    eras = {e["hierarchy"]: e["units"] for e in scope.eras()}
    assert eras["hcmc-2024"] == ["760 Quận 1"]
    assert [u.split()[0] for u in eras["hcmc-2025"]] == ["26737", "26740", "26743", "26758"]
    assert scope.whole("hcmc-2025", "26743") and not scope.whole("hcmc-2024", "27460")


def test_a_split_by_a_field_is_decided_record_by_record(
    offline_settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "streets.json"
    rule = {"field": "street", "values": {"Pasteur": "26740"}, "default": "26743"}
    data = {"name": "streets", "from": "hcmc-2024", "to": "hcmc-2025", "effective": "2025-07-01"}
    data["changes"] = [{"old": "26746", "new": ["26740", "26743"], "rule": rule}]
    path.write_text(json.dumps(data), encoding="utf-8")
    add_change_file(offline_settings, path)
    t = load_timeline(offline_settings)
    to_26740 = UnitScope(t, "hcmc-2025", ("26740",))
    assert to_26740.covers("26746", JUNE, {"unit": "26746", "street": "Pasteur"})
    assert not to_26740.covers("26746", JUNE, {"unit": "26746", "street": "Lê Lợi"})
    assert UnitScope(t, "hcmc-2025", ("26743",)).covers("26746", JUNE, {"street": "Lê Lợi"})
    # forward, a grant for the old ward covers both parts after the split
    old = UnitScope(t, "hcmc-2024", ("26746",))
    assert old.covers("26740", JULY) and old.covers("26743", JULY)
    [row] = [e for e in to_26740.eras() if e["hierarchy"] == "hcmc-2024"][0]["units"][-1:]
    assert row == (
        "26746 Phường Nguyễn Thái Bình (split: the records whose street sends them to 26740)"
    )
    assert not to_26740.whole("hcmc-2024", "26746")  # no broker ACL on the old topic


def test_a_pii_grant_for_some_units_does_not_unmask_the_auditors_view(
    offline_settings: Settings, tmp_path: Path
) -> None:
    settings = offline_settings
    publish(settings, tmp_path, "dancu.audit")
    add_agency(settings, "thanh-tra", "Thanh tra")
    grant = add_grant(
        settings,
        dataset="dancu.audit",
        agency="thanh-tra",
        purpose="Thanh tra",
        legal_basis="Luật Thanh tra",
        fields="citizen_id,unit",
        allow_pii=True,
        expires=FAR_FUTURE,
        units=["26734"],
        hierarchy="hcmc-2024",
    )
    assert "citizen_id" in auditor_view(settings, "thanh-tra", "dancu.audit").pii_fields
    revoke_grant(settings, grant.id)


def test_a_unit_topics_record_is_read_in_that_topics_hierarchy() -> None:
    """Code 26737 is old Đa Kao in hcmc-2024 and new Tân Định in hcmc-2025: a record of the
    new ward's topic dated before the reform (its system holds an older record; it keeps the
    new ward's topic) is the new ward's, and an old ward's late event in the old topic is Đa
    Kao's, whatever hierarchy its day falls in."""
    t = load_timeline()
    new_tan_dinh = UnitScope(t, "hcmc-2025", ("26737",))
    old_tan_dinh = UnitScope(t, "hcmc-2024", ("26734",))  # merged into new 26737
    old_da_kao = UnitScope(t, "hcmc-2024", ("26737",))  # split: 26740 (default), 26737
    early = {"ts_ms": effective_ms(JUNE), "after": {"unit": "26737"}}
    late = {"ts_ms": effective_ms(date(2025, 7, 3)), "after": {"unit": "26737"}}
    new_topic, old_topic = ("hcmc-2025", "26737"), ("hcmc-2024", "26737")
    assert new_tan_dinh.covers_event(early, new_topic)
    assert old_tan_dinh.covers_event(early, new_topic)  # what old Tân Định became
    # old Đa Kao's late event in its own topic goes by the split's rule to 26740
    assert old_da_kao.covers_event(late, old_topic)
    assert not new_tan_dinh.covers_event(late, old_topic)
    # without a topic (a lookup): the code is read by the day, as before
    assert not new_tan_dinh.covers_event(early) and not old_tan_dinh.covers_event(early)
    assert new_tan_dinh.covers_event(late)
