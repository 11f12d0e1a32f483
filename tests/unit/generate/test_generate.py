"""The generator: reproducible, schema-valid, realistic records; lazily made; clear errors."""

from __future__ import annotations

import collections
import datetime as dt
import io
import itertools
import re
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from bus.envelope import load_record_schema
from bus.errors import ConfigurationError, NotFoundError, UnknownUnitError
from bus.generate import (
    BINH_TAN_PERMANENT,
    BINH_TAN_RESIDENTS,
    DATASETS,
    PROCEDURES,
    generate,
    people,
    places,
)
from bus.generate.procedures import BY_CODE
from bus.report.sla import classify, from_record
from bus.report.workdays import default_calendar
from bus.units import load_hierarchy

CCCD = re.compile(r"^079[0-3]\d{8}$")
DISTRICT_1 = [u.code for u in load_hierarchy("hcmc-2024").children("760")]
VN_TZ = default_calendar().tz


def rows(dataset: str, n: int = 300, seed: int = 11, units: Any = ("26734",), **kw: Any) -> list:
    return list(generate(dataset, n, seed, list(units), **kw))


def cccd_matches(citizen_id: str, sex: str | None, born: dt.date) -> bool:
    """The fourth digit and the two year digits agree with sex and birth date."""
    digit, yy = int(citizen_id[3]), int(citizen_id[4:6])
    century_ok = (digit >= 2) == (born.year >= 2000)
    sex_ok = sex is None or (digit % 2 == 1) == (sex == "female")
    return century_ok and sex_ok and yy == born.year % 100


# -- reproducibility --------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_same_seed_same_records_other_seed_other_records(dataset: str) -> None:
    first = rows(dataset, 200, seed=5, units=DISTRICT_1[:3])
    assert first == rows(dataset, 200, seed=5, units=DISTRICT_1[:3])
    other = rows(dataset, 200, seed=6, units=DISTRICT_1[:3])
    assert first != other
    same = sum(a == b for a, b in zip(first, other, strict=True))
    assert same < 5


def test_a_prefix_does_not_depend_on_how_many_rows_were_asked_for() -> None:
    assert rows("tthc.dossier", 50) == rows("tthc.dossier", 500)[:50]


def test_generation_is_lazy() -> None:
    # a billion rows are never built: the first ones come at once
    head = list(itertools.islice(generate("dancu.resident", 10**9, 1, ["26734"]), 5))
    assert len(head) == 5


# -- schema validity ----------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_every_record_validates_strictly_and_survives_an_avro_round_trip(dataset: str) -> None:
    schema = load_record_schema(DATASETS[dataset].schema_path)
    parsed = fastavro.parse_schema(schema)
    records = rows(dataset, 400, units=DISTRICT_1)
    for record in records:
        assert validate(record, parsed, strict=True)
    buffer = io.BytesIO()
    fastavro.writer(buffer, parsed, records, strict=True)
    buffer.seek(0)
    assert list(fastavro.reader(buffer)) == records


@pytest.mark.parametrize("dataset", sorted(DATASETS))
def test_primary_keys_are_unique(dataset: str) -> None:
    key = load_record_schema(DATASETS[dataset].schema_path)["primary_key"][0]
    records = rows(dataset, 3000, units=DISTRICT_1)
    assert len({r[key] for r in records}) == len(records)


# -- people -----------------------------------------------------------------------------------


def test_resident_citizen_ids_follow_the_cccd_rules_and_are_distinct() -> None:
    residents = rows("dancu.resident", 20_000, units=["777"])
    ids = [r["citizen_id"] for r in residents]
    assert all(CCCD.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    for r in residents:
        assert cccd_matches(r["citizen_id"], r["sex"], r["birth_date"]), r["citizen_id"]
    digits = collections.Counter(i[3] for i in ids)
    assert set(digits) == {"0", "1", "2", "3"}  # both sexes, both centuries


def test_cccd_digit_rules_by_hand() -> None:
    ids = people.CitizenIds(seed=1)
    assert ids.issue("male", dt.date(1985, 7, 14))[:6] == "079085"
    assert ids.issue("female", dt.date(1985, 7, 14))[:6] == "079185"
    assert ids.issue("male", dt.date(2005, 1, 2))[:6] == "079205"
    assert ids.issue("female", dt.date(2019, 12, 31))[:6] == "079319"
    # same bucket, many numbers: all distinct
    many = {ids.issue("male", dt.date(1990, 1, 1)) for _ in range(50_000)}
    assert len(many) == 50_000


def test_other_datasets_carry_valid_cccds() -> None:
    for r in rows("hotich.event", 1000):
        assert CCCD.match(r["subject_citizen_id"])
        if r["kind"] == "birth":
            assert cccd_matches(r["subject_citizen_id"], None, r["event_date"])
            assert r["partner_citizen_id"] is None
        if r["kind"] == "marriage":
            assert CCCD.match(r["partner_citizen_id"])
            assert r["event_date"] == r["registered_at"].astimezone(VN_TZ).date()
    for r in rows("tthc.dossier", 1000):
        assert r["applicant_citizen_id"] is None or CCCD.match(r["applicant_citizen_id"])
    for r in rows("datdai.parcel", 1000):
        assert r["owner_citizen_id"] is None or CCCD.match(r["owner_citizen_id"])


def test_family_names_follow_their_national_frequencies() -> None:
    names = [r["full_name"] for r in rows("dancu.resident", 20_000, units=["777"])]
    families = collections.Counter(n.split()[0] for n in names)
    share = families["Nguyễn"] / len(names)
    assert 0.35 < share < 0.42, share
    assert families["Trần"] > families["Lê"] > families["Phạm"] > families["Đặng"]
    assert families["Huỳnh"] > families["Hoàng"]  # the southern spelling dominates in HCMC
    assert all(2 <= len(n.split()) <= 5 for n in names)
    middles = collections.Counter(n.split()[1] for n in names)
    assert middles["Thị"] > 0 and middles["Văn"] > 0


def test_middle_names_follow_sex() -> None:
    for r in rows("dancu.resident", 5000):
        middle = r["full_name"].split()[1]
        if middle == "Thị":
            assert r["sex"] == "female"
        if middle == "Văn":
            assert r["sex"] == "male"


def test_residence_types_in_binh_tan_proportions() -> None:
    n = 100_000
    residents = generate("dancu.resident", n, 3, ["777"])
    counts = collections.Counter(r["residence_type"] for r in residents)
    assert counts["permanent"] == round(n * BINH_TAN_PERMANENT / BINH_TAN_RESIDENTS) == 42_676
    assert counts["temporary"] == n - 42_676


def test_households_share_an_address_and_one_residence_type() -> None:
    households: dict[str, set] = collections.defaultdict(set)
    for r in rows("dancu.resident", 5000, units=["777"]):
        households[r["household_id"]].add((r["address"], r["residence_type"], r["unit"]))
    assert all(len(v) == 1 for v in households.values())
    assert len(households) < 5000 / 1.5  # most households have several members


def test_addresses_name_real_streets_and_the_ward() -> None:
    h = load_hierarchy("hcmc-2024")
    for r in rows("dancu.resident", 2000, units=DISTRICT_1):
        ward = h.get(r["unit"]).name
        assert r["address"].endswith(f", {ward}")
        street_part = r["address"][: -len(ward) - 2]
        number, street = street_part.split(" ", 1)
        street = street.removeprefix("Bis ")
        assert street in places.streets_for(h, r["unit"]), r["address"]
        assert re.fullmatch(r"\d+[ABC]?(/\d+){0,2}", number), number
    tan_dinh = places.streets_for(h, "26734")
    assert "Trần Khắc Chân" in tan_dinh and "Hai Bà Trưng" in tan_dinh
    assert "Tên Lửa" in places.streets_for(h, "27460")  # An Lạc, Bình Tân


def test_a_district_means_its_wards_and_a_2025_ward_is_accepted() -> None:
    units = {r["receiving_unit"] for r in rows("tthc.dossier", 2000, units=["760"])}
    assert units == set(DISTRICT_1)
    h2025 = load_hierarchy("hcmc-2025")
    ward = h2025.units("ward")[0].code
    records = rows("dancu.resident", 50, units=[ward], hierarchy="hcmc-2025")
    assert {r["unit"] for r in records} == {ward}


# -- dossier timelines ------------------------------------------------------------------------


def test_dossier_timelines_are_consistent() -> None:
    cal = default_calendar()
    records = rows("tthc.dossier", 4000, units=DISTRICT_1)
    paused = 0
    for r in records:
        history = r["status_history"]
        times = [c["at"] for c in history]
        assert times == sorted(times)
        assert history[0] == {"status": "received", "at": r["received_at"], "note": None}
        assert r["updated_at"] == times[-1]
        assert r["status"] == history[-1]["status"]
        if r["status"] in ("resolved", "rejected"):
            assert r["resolved_at"] == times[-1] >= r["received_at"]
        else:
            assert r["resolved_at"] is None
        # received during office hours on a working day; due from the legal processing time
        local = r["received_at"].astimezone(cal.tz)
        assert cal.is_workday(local.date())
        assert any(start <= local.time() < end for start, end in cal.hours)
        proc = BY_CODE[r["procedure_code"]]
        assert (r["procedure_name"], r["field"]) == (proc.name, proc.field)
        assert r["due_at"] == cal.add_workdays(r["received_at"], proc.days)
        for index, change in enumerate(history):
            if change["status"] == "supplement_requested":
                paused += 1
                assert change["note"]  # a reason, never personal data
                if index + 1 < len(history):
                    assert history[index + 1]["status"] in ("processing", "withdrawn")
        assert r["updated_at"] <= dt.datetime(2026, 10, 31, 17, 0, tzinfo=dt.UTC)
    assert paused > 100


def test_dossier_outcomes_are_mostly_in_time_some_late_a_few_open() -> None:
    records = rows("tthc.dossier", 5000, units=DISTRICT_1)
    as_of = dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=VN_TZ)
    outcomes = collections.Counter(classify(from_record(r), as_of) for r in records)
    total = sum(outcomes.values())
    in_time = outcomes["early"] + outcomes["on_time"]
    assert in_time / total > 0.75
    assert 0.02 < outcomes["late"] / total < 0.2
    assert outcomes["open"] + outcomes["overdue"] > 0
    assert outcomes["overdue"] / total < 0.05
    assert 0 < outcomes["withdrawn"] / total < 0.03
    statuses = collections.Counter(r["status"] for r in records)
    assert statuses["supplement_requested"] > 0 and statuses["rejected"] > 0


def test_wards_differ_in_punctuality() -> None:
    records = rows("tthc.dossier", 6000, units=DISTRICT_1)
    as_of = dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=VN_TZ)
    late: dict[str, list[bool]] = collections.defaultdict(list)
    for r in records:
        outcome = classify(from_record(r), as_of)
        if outcome in ("early", "on_time", "late"):
            late[r["receiving_unit"]].append(outcome == "late")
    rates = [sum(v) / len(v) for v in late.values()]
    assert max(rates) - min(rates) > 0.05


def test_online_procedures_limit_which_dossiers_come_online() -> None:
    records = rows("tthc.dossier", 3000, online_procedures=4)
    first_four = {p.code for p in PROCEDURES[:4]}
    online = [r for r in records if r["channel"] == "online"]
    assert online and {r["procedure_code"] for r in online} <= first_four
    none_online = rows("tthc.dossier", 500, online_procedures=0)
    assert {r["channel"] for r in none_online} == {"offline"}


def test_procedure_list_has_real_codes_and_every_field() -> None:
    assert len(PROCEDURES) == 25
    assert all(re.fullmatch(r"[1-3]\.\d{6}", p.code) for p in PROCEDURES)
    assert len({p.code for p in PROCEDURES}) == 25
    assert BY_CODE["1.001193"].name == "Đăng ký khai sinh"
    fields = {p.field for p in PROCEDURES}
    schema = load_record_schema(DATASETS["tthc.dossier"].schema_path)
    symbols = next(f for f in schema["fields"] if f["name"] == "field")["type"]["symbols"]
    assert fields <= set(symbols) and len(fields) >= 7


def test_times_stay_inside_the_window() -> None:
    start, end = dt.date(2026, 3, 1), dt.date(2026, 3, 31)
    low = dt.datetime(2026, 3, 1, tzinfo=VN_TZ)
    high = dt.datetime(2026, 4, 1, tzinfo=VN_TZ)
    for r in rows("phananh.report", 500, start=start, end=end):
        assert low <= r["received_at"] < high
        assert r["updated_at"] < high
        assert r["resolved_at"] is None or r["resolved_at"] >= r["received_at"]
    for r in rows("hocphi.payment", 500, start=start, end=end):
        assert low <= r["paid_at"] < high
        assert r["amount"] % 10_000 == 0
        assert re.fullmatch(r"79\d{6}", r["school_code"])
    for r in rows("dancu.resident", 500, start=start, end=end):
        assert low <= r["updated_at"] < high


# -- bad arguments ----------------------------------------------------------------------------


def test_bad_arguments_fail_at_once_with_the_reason() -> None:
    with pytest.raises(NotFoundError, match="dataset 'tthc.nope'.*expected one of"):
        generate("tthc.nope", 1, 1, ["26734"])
    with pytest.raises(UnknownUnitError, match="unit '99999'"):
        generate("tthc.dossier", 1, 1, ["99999"])
    with pytest.raises(ConfigurationError, match="rows"):
        generate("tthc.dossier", -1, 1, ["26734"])
    with pytest.raises(ConfigurationError, match="start, end"):
        generate("tthc.dossier", 1, 1, ["26734"], dt.date(2026, 2, 1), dt.date(2026, 1, 1))
    with pytest.raises(ConfigurationError, match="units"):
        generate("tthc.dossier", 1, 1, [])
    with pytest.raises(ConfigurationError, match="online_procedures"):
        generate("tthc.dossier", 1, 1, ["26734"], online_procedures=26)
    with pytest.raises(ConfigurationError, match="no working day"):
        # Tết 2026: 14-22 February are weekend days or public holidays
        generate("tthc.dossier", 1, 1, ["26734"], dt.date(2026, 2, 14), dt.date(2026, 2, 22))
