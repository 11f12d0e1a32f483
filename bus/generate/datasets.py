"""Seeded, lazy generators of the domain datasets, yielding Avro-ready records.

``generate(dataset, n, seed, units)`` validates its arguments at once and returns an iterator
that builds one record at a time (memory stays flat for any ``n``). Values are the Python
types fastavro writes: ``str``, ``int``, ``Decimal``, ``date`` and UTC-aware ``datetime`` at
whole seconds, so a record survives an Avro round trip unchanged. The same arguments give the
same records, in the same order, on every machine.

The data describes the units as of the end of the ``end`` day (the snapshot): a dossier whose
planned resolution falls after it is still open, with the history seen so far.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bus.config import PROJECT_ROOT
from bus.errors import ConfigurationError, NotFoundError
from bus.generate import people, places
from bus.generate.procedures import PROCEDURES, Procedure
from bus.report.workdays import WorkCalendar, default_calendar
from bus.units import Hierarchy, Unit, load_hierarchy

DEFAULT_START = dt.date(2026, 1, 1)
DEFAULT_END = dt.date(2026, 10, 31)
SCHEMAS_DIR = PROJECT_ROOT / "schemas"

# Bình Tân district's residents (332,148 permanent + 446,150 temporary = 778,298).
BINH_TAN_PERMANENT = 332_148
BINH_TAN_TEMPORARY = 446_150
BINH_TAN_RESIDENTS = BINH_TAN_PERMANENT + BINH_TAN_TEMPORARY

ONLINE_SHARE = 0.55  # of dossiers for a procedure the ward offers online
_UTC = dt.UTC


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    schema_file: str
    description: str

    @property
    def schema_path(self) -> Path:
        return SCHEMAS_DIR / self.schema_file


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec("tthc.dossier", "tthc.Dossier.avsc", "administrative-procedure dossiers"),
        DatasetSpec("phananh.report", "phananh.Report.avsc", "citizen feedback reports"),
        DatasetSpec("dancu.resident", "dancu.Resident.avsc", "residents"),
        DatasetSpec("hotich.event", "hotich.Event.avsc", "civil-status events"),
        DatasetSpec("hocphi.payment", "hocphi.Payment.avsc", "school-fee payments"),
        DatasetSpec("datdai.parcel", "datdai.Parcel.avsc", "land parcels"),
    )
}


def dataset_spec(name: str) -> DatasetSpec:
    spec = DATASETS.get(name)
    if spec is None:
        raise NotFoundError(
            f"dataset {name!r} has no generator; expected one of {', '.join(sorted(DATASETS))}"
        )
    return spec


@dataclass
class _Ctx:
    rng: random.Random
    seed: int
    units: list[Unit]
    h: Hierarchy
    start: dt.date
    end: dt.date
    snapshot: dt.datetime
    cal: WorkCalendar
    workdays: list[dt.date]
    streets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _start_ts: float = 0.0
    _span_s: int = 0

    def __post_init__(self) -> None:
        tz = self.cal.tz
        self._start_ts = dt.datetime.combine(self.start, dt.time(0), tzinfo=tz).timestamp()
        self._span_s = int(self.snapshot.timestamp() - self._start_ts)
        self.streets = {u.code: places.streets_for(self.h, u.code) for u in self.units}

    def unit(self) -> Unit:
        return self.units[self.rng.randrange(len(self.units))]

    def instant(self) -> dt.datetime:
        """Any second of the window."""
        ts = self._start_ts + self.rng.randrange(self._span_s)
        return dt.datetime.fromtimestamp(int(ts), _UTC)

    def office_instant(self, day: dt.date | None = None) -> dt.datetime:
        """A second of office hours on a working day (mornings busier)."""
        rng = self.rng
        day = day or self.workdays[rng.randrange(len(self.workdays))]
        hours = self.cal.hours
        period = hours[0] if len(hours) == 1 or rng.random() < 0.6 else hours[1]
        start = dt.datetime.combine(day, period[0], tzinfo=self.cal.tz)
        end = dt.datetime.combine(day, period[1], tzinfo=self.cal.tz)
        seconds = rng.randrange(int((end - start).total_seconds()))
        return (start + dt.timedelta(seconds=seconds)).astimezone(_UTC)

    def day_instant(self, first_hour: int = 6, last_hour: int = 23) -> dt.datetime:
        """A second between ``first_hour`` and ``last_hour`` on any day of the window."""
        rng = self.rng
        day = self.start + dt.timedelta(days=rng.randrange((self.end - self.start).days + 1))
        start = dt.datetime.combine(day, dt.time(first_hour), tzinfo=self.cal.tz)
        seconds = rng.randrange((last_hour - first_hour) * 3600)
        return (start + dt.timedelta(seconds=seconds)).astimezone(_UTC)

    def local_date(self, instant: dt.datetime) -> dt.date:
        return instant.astimezone(self.cal.tz).date()


def _seconds(value: dt.timedelta) -> dt.timedelta:
    return dt.timedelta(seconds=round(value.total_seconds()))


def _leaf_units(h: Hierarchy, codes: Sequence[str]) -> list[Unit]:
    """The units to generate for: each code itself if it is a ward, else its wards."""
    leaf = h.levels[-1]
    out: dict[str, Unit] = {}
    for code in codes:
        unit = h.get(code)
        if unit.level == leaf:
            out[unit.code] = unit
        else:
            for below in h.descendants(unit.code):
                if below.level == leaf:
                    out[below.code] = below
    return list(out.values())


def generate(
    dataset: str,
    n: int,
    seed: int,
    units: Sequence[str],
    start: dt.date = DEFAULT_START,
    end: dt.date = DEFAULT_END,
    *,
    hierarchy: str | Hierarchy = "hcmc-2024",
    online_procedures: int | None = None,
    calendar: WorkCalendar | None = None,
) -> Iterator[dict[str, Any]]:
    """``n`` records of ``dataset`` for ``units`` (wards; a district or city means its wards).

    Times fall between ``start`` and ``end`` (inclusive dates, Asia/Ho_Chi_Minh). For
    ``tthc.dossier``, ``online_procedures`` is how many of the procedures (in the order of
    :data:`bus.generate.procedures.PROCEDURES`) the wards accept online; default all.
    """
    spec = dataset_spec(dataset)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigurationError("rows: expected a whole number of 0 or more")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigurationError("seed: expected a whole number")
    if not isinstance(start, dt.date) or not isinstance(end, dt.date) or start > end:
        raise ConfigurationError("start, end: expected two dates with start on or before end")
    if online_procedures is not None and not 0 <= online_procedures <= len(PROCEDURES):
        raise ConfigurationError(
            f"online_procedures: expected a number from 0 to {len(PROCEDURES)}"
        )
    if isinstance(units, str):
        units = [units]
    if not units:
        raise ConfigurationError("units: expected at least one unit code")
    h = hierarchy if isinstance(hierarchy, Hierarchy) else load_hierarchy(hierarchy)
    leaves = _leaf_units(h, [str(u) for u in units])
    if not leaves:
        raise ConfigurationError("units: the given units have no wards to generate for")
    cal = calendar or default_calendar()
    workdays = [
        start + dt.timedelta(days=i)
        for i in range((end - start).days + 1)
        if cal.is_workday(start + dt.timedelta(days=i))
    ]
    if not workdays:
        raise ConfigurationError("start, end: the window has no working day")
    snapshot = dt.datetime.combine(end, dt.time(23, 59, 59), tzinfo=cal.tz).astimezone(_UTC)
    ctx = _Ctx(
        rng=random.Random(f"lgsp:{spec.name}:{seed}"),
        seed=seed,
        units=leaves,
        h=h,
        start=start,
        end=end,
        snapshot=snapshot,
        cal=cal,
        workdays=workdays,
    )
    maker: Callable[..., Iterator[dict[str, Any]]] = _MAKERS[spec.name]
    if spec.name == "tthc.dossier":
        return maker(ctx, n, online_procedures)
    return maker(ctx, n)


# -- tthc.dossier ---------------------------------------------------------------------------

_PROC_TABLE = people.Weighted([((rank, p), p.weight) for rank, p in enumerate(PROCEDURES)])
_SUPPLEMENT_NOTES = {
    "civil_status": [
        "Thiếu giấy chứng sinh hoặc văn bản thay giấy chứng sinh",
        "Tờ khai chưa ghi đủ thông tin theo mẫu",
        "Cần bổ sung giấy tờ chứng minh quan hệ cha, mẹ, con",
        "Cần bổ sung văn bản ủy quyền có chứng thực",
    ],
    "justice": ["Bản chính không rõ nội dung, cần xuất trình lại", "Thiếu giấy tờ tùy thân"],
    "business_registration": [
        "Tên hộ kinh doanh trùng, đề nghị đặt tên khác",
        "Thiếu bản sao hợp đồng thuê địa điểm kinh doanh",
    ],
    "health_insurance": ["Thông tin trên tờ khai không khớp Cơ sở dữ liệu quốc gia về dân cư"],
    "labour_social": [
        "Cần bổ sung biên bản họp Hội đồng xét duyệt",
        "Thiếu giấy tờ chứng minh hoàn cảnh gia đình",
    ],
    "education": ["Thiếu giấy xác nhận của nhà trường"],
    "land_construction": [
        "Cần bổ sung giấy tờ về quyền sử dụng đất",
        "Cần bổ sung sơ đồ vị trí thửa đất tranh chấp",
    ],
}
_ORG_PROCEDURES = ("2.000815", "2.000884")  # certified copies and signatures
_ORG_WORDS = ["Minh Phát", "Thành Công", "Sài Gòn", "Phú Thịnh", "An Khang", "Hưng Thịnh", "Việt"]
_ORG_KINDS = [
    "Công ty TNHH Thương mại Dịch vụ",
    "Công ty Cổ phần",
    "Công ty TNHH",
    "Hợp tác xã",
]


def _unit_late_rate(seed: int, code: str) -> float:
    """A unit's share of late dossiers, stable for (seed, unit) whatever ``n`` is."""
    return 0.02 + 0.18 * random.Random(f"lgsp:unit-profile:{seed}:{code}").random()


def _applicant(ctx: _Ctx, ids: people.CitizenIds, proc: Procedure) -> tuple[str | None, str]:
    rng = ctx.rng
    if proc.code in _ORG_PROCEDURES and rng.random() < 0.12:
        return None, f"{rng.choice(_ORG_KINDS)} {rng.choice(_ORG_WORDS)}"
    sex = people.pick_sex(rng)
    born = ctx.end - dt.timedelta(days=rng.randint(18 * 365, 75 * 365))
    name, _ = people.full_name(rng, sex, born.year)
    return ids.issue(sex, born), name


def _dossiers(ctx: _Ctx, n: int, online_limit: int | None) -> Iterator[dict[str, Any]]:
    rng, cal = ctx.rng, ctx.cal
    late_rates = {u.code: _unit_late_rate(ctx.seed, u.code) for u in ctx.units}
    counters: dict[tuple[str, dt.date], int] = defaultdict(int)
    ids = people.CitizenIds(f"{ctx.seed}:applicants")
    for _ in range(n):
        unit = ctx.unit()
        rank, proc = _PROC_TABLE.pick(rng)
        online_ok = online_limit is None or rank < online_limit
        channel = "online" if online_ok and rng.random() < ONLINE_SHARE else "offline"
        received = ctx.office_instant()
        local_day = ctx.local_date(received)
        counters[(unit.code, local_day)] += 1
        dossier_id = (
            f"000.00.{unit.code}.H29-{local_day:%y%m%d}-{counters[(unit.code, local_day)]:04d}"
        )
        due = cal.add_workdays(received, proc.days).astimezone(_UTC)
        history = _timeline(ctx, proc, received, late_rates[unit.code])
        seen = [event for event in history if event[1] <= ctx.snapshot]
        status, updated_at, _ = seen[-1]
        resolved_at = updated_at if status in ("resolved", "rejected") else None
        citizen_id, applicant = _applicant(ctx, ids, proc)
        yield {
            "dossier_id": dossier_id,
            "procedure_code": proc.code,
            "procedure_name": proc.name,
            "field": proc.field,
            "receiving_unit": unit.code,
            "channel": channel,
            "received_at": received,
            "due_at": due,
            "resolved_at": resolved_at,
            "status": status,
            "status_history": [{"status": s, "at": at, "note": note} for s, at, note in seen],
            "applicant_citizen_id": citizen_id,
            "applicant_name": applicant,
            "updated_at": updated_at,
        }


def _timeline(
    ctx: _Ctx, proc: Procedure, received: dt.datetime, late_rate: float
) -> list[tuple[str, dt.datetime, str | None]]:
    """The dossier's planned status changes, in order (some may lie after the snapshot).

    Planned in working time spent on the dossier (pauses excluded): ``r * allowed`` until the
    result, so ``r <= 1`` finishes in time and ``r > 1`` is late, as the SLA scoring counts it.
    """
    rng, cal = ctx.rng, ctx.cal
    allowed = cal.day_length * proc.days
    draw = rng.random()
    final: str | None
    if draw < 0.01:
        final, ratio = "withdrawn", rng.uniform(0.1, 0.9)
    elif draw < 0.02:
        final, ratio = None, None  # never finished: stuck in processing or waiting for papers
    else:
        kind = rng.random()
        if kind < late_rate:
            ratio = 1.02 + min(3.0, rng.expovariate(2.0))
        elif kind < late_rate + 0.15:
            ratio = rng.uniform(0.9, 1.0)
        else:
            ratio = 0.05 + 0.8 * rng.random() ** 1.5
        final = "rejected" if rng.random() < 0.03 else "resolved"
    work_end = _seconds(allowed * ratio) if ratio is not None else None
    horizon = work_end if work_end is not None else allowed

    pause_at: dt.timedelta | None = None
    pause_len: dt.timedelta | None = None
    if rng.random() < proc.supplement_rate:
        pause_at = _seconds(horizon * rng.uniform(0.1, 0.7))
        if work_end is None and rng.random() < 0.6:
            pause_len = None  # the applicant never brought the papers
        else:
            pause_len = dt.timedelta(minutes=rng.randint(120, 10 * 8 * 60))

    def at(work: dt.timedelta) -> dt.datetime:
        if pause_at is not None and pause_len is not None and work > pause_at:
            work += pause_len
        return cal.add_work_time(received, work).astimezone(_UTC)

    events: list[tuple[str, dt.datetime, str | None]] = [("received", received, None)]
    first_next = min(t for t in (pause_at, work_end, horizon) if t is not None)
    start_work = dt.timedelta(minutes=rng.randint(5, 90))
    if start_work >= first_next:
        start_work = _seconds(first_next / 2)
    if start_work > dt.timedelta():
        events.append(("processing", at(start_work), None))
    if pause_at is not None:
        note = rng.choice(_SUPPLEMENT_NOTES.get(proc.field, ["Hồ sơ chưa đầy đủ"]))
        events.append(("supplement_requested", at(pause_at), note))
        if pause_len is not None:
            resumed = cal.add_work_time(received, pause_at + pause_len).astimezone(_UTC)
            events.append(("processing", resumed, "Đã nhận hồ sơ bổ sung"))
    if final is not None and work_end is not None:
        note = {
            "rejected": "Không đủ điều kiện giải quyết theo quy định",
            "withdrawn": "Người nộp rút hồ sơ",
        }.get(final)
        events.append((final, at(work_end), note))
    events.sort(key=lambda e: e[1])
    return events


# -- phananh.report -------------------------------------------------------------------------

_CATEGORIES = people.Weighted(
    [
        ("urban_order", 35),
        ("construction_order", 20),
        ("environment", 20),
        ("traffic_safety", 10),
        ("public_security", 10),
        ("other", 5),
    ]
)
_REPORT_CHANNELS = people.Weighted(
    [("hotline", 40), ("app", 25), ("web", 15), ("zalo", 12), ("email", 3), ("in_person", 5)]
)


def _reports(ctx: _Ctx, n: int) -> Iterator[dict[str, Any]]:
    rng = ctx.rng
    counters: dict[tuple[str, int], int] = defaultdict(int)
    for _ in range(n):
        unit = ctx.unit()
        received = ctx.day_instant(6, 23)
        year = ctx.local_date(received).year
        counters[(unit.code, year)] += 1
        events = [("received", received)]
        started = received + dt.timedelta(minutes=rng.randint(10, 600))
        events.append(("processing", started))
        draw = rng.random()
        if draw < 0.08:
            events.append(("transferred", started + dt.timedelta(hours=rng.randint(1, 48))))
        elif draw < 0.11:
            events.append(("rejected", started + dt.timedelta(hours=rng.randint(1, 24))))
        elif draw < 0.97:
            days = rng.lognormvariate(1.0, 0.8)
            events.append(("resolved", started + _seconds(dt.timedelta(days=days))))
        seen = [e for e in events if e[1] <= ctx.snapshot]
        status, updated_at = seen[-1]
        yield {
            "report_id": f"PA-{unit.code}-{year}-{counters[(unit.code, year)]:06d}",
            "category": _CATEGORIES.pick(rng),
            "unit": unit.code,
            "received_at": received,
            "resolved_at": updated_at if status in ("resolved", "rejected") else None,
            "status": status,
            "channel": _REPORT_CHANNELS.pick(rng),
            "reporter_phone": people.phone_number(rng) if rng.random() < 0.65 else None,
            "updated_at": updated_at,
        }


# -- dancu.resident -------------------------------------------------------------------------

_HOUSEHOLD_PERMANENT = people.Weighted([(1, 15), (2, 20), (3, 25), (4, 22), (5, 11), (6, 7)])
_HOUSEHOLD_TEMPORARY = people.Weighted([(1, 35), (2, 30), (3, 20), (4, 10), (5, 5)])


def _residents(ctx: _Ctx, n: int) -> Iterator[dict[str, Any]]:
    """Residents in households; permanent vs temporary in Bình Tân's proportions, exactly.

    ``round(n * 332148 / 778298)`` of the ``n`` residents are permanent (all of Bình Tân's
    332,148 for ``n = 778,298``); each household is of one residence type, drawn in
    proportion to what is left of each type, so the totals come out exact.
    """
    rng = ctx.rng
    permanent_left = round(n * BINH_TAN_PERMANENT / BINH_TAN_RESIDENTS)
    temporary_left = n - permanent_left
    ids = people.CitizenIds(ctx.seed)
    households: dict[str, int] = defaultdict(int)
    names = {u.code: u.name for u in ctx.units}
    ref = ctx.end
    while permanent_left + temporary_left:
        permanent = rng.random() * (permanent_left + temporary_left) < permanent_left
        table = _HOUSEHOLD_PERMANENT if permanent else _HOUSEHOLD_TEMPORARY
        size = min(table.pick(rng), permanent_left if permanent else temporary_left)
        if permanent:
            permanent_left -= size
        else:
            temporary_left -= size
        ages = people.AGES_ALL if permanent else people.AGES_MIGRANT
        unit = ctx.unit()
        households[unit.code] += 1
        household_id = f"HK-{unit.code}-{households[unit.code]:06d}"
        home = places.address(rng, ctx.streets[unit.code], names[unit.code])
        family = people.FAMILY_NAMES.pick(rng)
        kind = "permanent" if permanent else "temporary"
        for member in range(size):
            sex = people.pick_sex(rng)
            born = people.birth_date(rng, ref, ages)
            if member == 0 and (ref - born).days < 18 * 365:
                born = ref - dt.timedelta(days=rng.randint(18 * 365, 60 * 365))
            same_family = member == 0 or rng.random() < 0.6
            name, _ = people.full_name(rng, sex, born.year, family if same_family else None)
            yield {
                "citizen_id": ids.issue(sex, born),
                "full_name": name,
                "birth_date": born,
                "sex": sex,
                "residence_type": kind,
                "unit": unit.code,
                "household_id": household_id,
                "address": home,
                "updated_at": ctx.instant(),
            }


# -- hotich.event ---------------------------------------------------------------------------

_EVENT_KINDS = people.Weighted([("birth", 60), ("marriage", 22), ("death", 18)])


def _civil_events(ctx: _Ctx, n: int) -> Iterator[dict[str, Any]]:
    rng = ctx.rng
    ids = people.CitizenIds(f"{ctx.seed}:hotich")
    event_seq: dict[tuple[str, int], int] = defaultdict(int)
    book_seq: dict[tuple[str, str, int], int] = defaultdict(int)
    for _ in range(n):
        unit = ctx.unit()
        kind = _EVENT_KINDS.pick(rng)
        registered = ctx.office_instant()
        day = ctx.local_date(registered)
        event_seq[(unit.code, day.year)] += 1
        book_seq[(unit.code, kind, day.year)] += 1
        partner = None
        if kind == "birth":
            event_date = day - dt.timedelta(days=rng.randint(1, 60))
            sex = people.pick_sex(rng)
            born = event_date
        elif kind == "marriage":
            event_date = day
            sex = people.pick_sex(rng)
            born = day - dt.timedelta(days=rng.randint(20 * 365, 40 * 365))
            other = "female" if sex == "male" else "male"
            other_born = day - dt.timedelta(days=rng.randint(20 * 365, 40 * 365))
            partner = ids.issue(other, other_born)
        else:
            event_date = day - dt.timedelta(days=rng.randint(0, 15))
            sex = people.pick_sex(rng)
            born = event_date - dt.timedelta(days=rng.randint(45 * 365, 95 * 365))
        name, _ = people.full_name(rng, sex, born.year)
        yield {
            "event_id": f"HT-{unit.code}-{day.year}-{event_seq[(unit.code, day.year)]:05d}",
            "kind": kind,
            "unit": unit.code,
            "registered_at": registered,
            "event_date": event_date,
            "book_number": f"{book_seq[(unit.code, kind, day.year)]}/{day.year}",
            "subject_citizen_id": ids.issue(sex, born),
            "subject_name": name,
            "partner_citizen_id": partner,
            "updated_at": registered,
        }


# -- hocphi.payment -------------------------------------------------------------------------

_METHODS = people.Weighted(
    [("bank_transfer", 50), ("e_wallet", 20), ("card", 10), ("cash", 18), ("other", 2)]
)


def _schools(ctx: _Ctx, unit: Unit) -> list[tuple[str, bool]]:
    """(school code, private?) for the schools of a unit: ``79`` + district + number."""
    rng = random.Random(f"lgsp:schools:{ctx.seed}:{unit.code}")
    district = unit.parent if unit.parent and len(unit.parent) == 3 else unit.code[-3:]
    numbers = rng.sample(range(100, 1000), rng.randint(3, 8))
    return [(f"79{district}{k:03d}", rng.random() < 0.25) for k in sorted(numbers)]


def _payments(ctx: _Ctx, n: int) -> Iterator[dict[str, Any]]:
    rng = ctx.rng
    schools = {u.code: _schools(ctx, u) for u in ctx.units}
    counters: dict[tuple[str, dt.date], int] = defaultdict(int)
    for _ in range(n):
        unit = ctx.unit()
        school, private = rng.choice(schools[unit.code])
        paid = ctx.day_instant(6, 23)
        day = ctx.local_date(paid)
        counters[(unit.code, day)] += 1
        months = rng.choice((1, 1, 1, 3, 5, 9))
        monthly = (rng.randint(200, 1_200) if private else rng.randint(30, 150)) * 10
        yield {
            "payment_id": f"HP-{unit.code}-{day:%y%m%d}-{counters[(unit.code, day)]:05d}",
            "student_id": f"79{rng.randrange(100_000_000):08d}",
            "school_code": school,
            "unit": unit.code,
            "amount": Decimal(monthly * months * 1000),
            "paid_at": paid,
            "method": _METHODS.pick(rng),
            "updated_at": paid,
        }


# -- datdai.parcel --------------------------------------------------------------------------

_LAND_USE = people.Weighted(
    [
        ("ODT", 84),
        ("TMD", 7),
        ("SKC", 2),
        ("CLN", 2),
        ("DGD", 1.5),
        ("TON", 1),
        ("DYT", 0.5),
        ("DCH", 0.5),
        ("DTT", 0.5),
    ]
)
_CERT_SERIES = ["CS", "CT", "CY", "DA", "DB", "DC", "BX", "BY"]
_CENT = Decimal("0.01")


def _parcels(ctx: _Ctx, n: int) -> Iterator[dict[str, Any]]:
    rng = ctx.rng
    ids = people.CitizenIds(f"{ctx.seed}:owners")
    sheets: dict[str, list[int]] = {}  # unit -> [sheet, last parcel number, parcels on sheet]
    for _ in range(n):
        unit = ctx.unit()
        state = sheets.setdefault(unit.code, [1, 0, rng.randint(80, 300)])
        if state[1] >= state[2]:
            state[0], state[1], state[2] = state[0] + 1, 0, rng.randint(80, 300)
        state[1] += rng.randint(1, 3)
        if state[1] > state[2]:
            state[0], state[1], state[2] = state[0] + 1, 1, rng.randint(80, 300)
        sheet, number = state[0], state[1]
        use = _LAND_USE.pick(rng)
        median = 65.0 if use == "ODT" else 400.0
        area = min(20_000.0, max(12.0, rng.lognormvariate(0.0, 0.7) * median))
        owner = None
        if use in ("ODT", "CLN") or rng.random() < 0.3:
            sex = people.pick_sex(rng)
            born = ctx.end - dt.timedelta(days=rng.randint(25 * 365, 85 * 365))
            owner = ids.issue(sex, born)
        certificate = None
        if rng.random() < 0.88:
            certificate = f"{rng.choice(_CERT_SERIES)} {rng.randrange(1_000_000):06d}"
        yield {
            "parcel_id": f"{unit.code}-{sheet}-{number}",
            "map_sheet": sheet,
            "parcel_number": number,
            "unit": unit.code,
            "area_m2": Decimal(str(area)).quantize(_CENT),
            "land_use_type": use,
            "owner_citizen_id": owner,
            "certificate_no": certificate,
            "updated_at": ctx.instant(),
        }


_MAKERS: dict[str, Callable[..., Iterator[dict[str, Any]]]] = {
    "tthc.dossier": _dossiers,
    "phananh.report": _reports,
    "dancu.resident": _residents,
    "hotich.event": _civil_events,
    "hocphi.payment": _payments,
    "datdai.parcel": _parcels,
}
