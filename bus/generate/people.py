"""Synthetic Vietnamese people: names, sex, birth dates, citizen IDs (CCCD) and phone numbers.

Family names follow their published national frequencies (Nguyễn about 38%), with the southern
spellings Huỳnh and Võ weighted above Hoàng and Vũ as they are in Ho Chi Minh City. Middle names
depend on sex and generation (``Văn``/``Thị`` are less common among people born after 1980).

A CCCD is 12 digits: the province code of birth registration (``079`` for Ho Chi Minh City),
one digit for sex and century (0 male / 1 female born 1900-1999, 2 male / 3 female born
2000-2099), the last two digits of the birth year, and six digits. :class:`CitizenIds` draws the
six digits as a seeded permutation per (sex-century, year) bucket, so one generator never
issues the same number twice and needs no memory of the numbers it issued.
"""

from __future__ import annotations

import datetime as dt
import random
from bisect import bisect
from collections.abc import Sequence
from itertools import accumulate
from typing import Generic, TypeVar

from bus.errors import DataError

T = TypeVar("T")

HCMC_PROVINCE = "079"
_SUFFIX_SPACE = 1_000_000


class Weighted(Generic[T]):
    """A weighted choice table, drawn with one ``random()`` call and a bisection."""

    __slots__ = ("_cum", "_total", "values")

    def __init__(self, items: Sequence[tuple[T, float]]) -> None:
        if not items:
            raise ValueError("Weighted: expected at least one item")
        self.values = [value for value, _ in items]
        self._cum = list(accumulate(float(weight) for _, weight in items))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random) -> T:
        return self.values[bisect(self._cum, rng.random() * self._total)]

    def share(self, value: T) -> float:
        """The probability of ``value`` (for tests and documentation)."""
        index = self.values.index(value)
        low = self._cum[index - 1] if index else 0.0
        return (self._cum[index] - low) / self._total


# Per cent of the population; the southern spellings (Huỳnh, Võ) dominate in HCMC.
FAMILY_NAMES: Weighted[str] = Weighted(
    [
        ("Nguyễn", 38.4),
        ("Trần", 11.0),
        ("Lê", 9.5),
        ("Phạm", 7.1),
        ("Huỳnh", 3.6),
        ("Hoàng", 1.5),
        ("Phan", 4.5),
        ("Võ", 2.9),
        ("Vũ", 1.0),
        ("Đặng", 2.1),
        ("Bùi", 2.0),
        ("Đỗ", 1.4),
        ("Hồ", 1.3),
        ("Ngô", 1.3),
        ("Dương", 1.0),
        ("Lý", 0.5),
        ("Trương", 1.5),
        ("Đoàn", 1.1),
        ("Lâm", 1.1),
        ("Mai", 0.8),
        ("Đào", 0.7),
        ("Cao", 0.7),
        ("Lưu", 0.7),
        ("Trịnh", 0.6),
        ("Tô", 0.5),
        ("Châu", 0.5),
        ("Lương", 0.5),
        ("Hà", 0.5),
        ("Tạ", 0.4),
        ("Quách", 0.4),
        ("Thái", 0.4),
        ("La", 0.3),
        ("Tăng", 0.2),
    ]
)

_MIDDLE = {
    ("male", True): Weighted(
        [
            ("Văn", 55),
            ("Hữu", 8),
            ("Đức", 7),
            ("Minh", 7),
            ("Quốc", 5),
            ("Thanh", 5),
            ("Công", 4),
            ("Tấn", 3),
            ("Ngọc", 3),
            ("Hoàng", 3),
            ("Trọng", 2),
        ]
    ),
    ("male", False): Weighted(
        [
            ("Văn", 15),
            ("Minh", 12),
            ("Gia", 10),
            ("Quốc", 8),
            ("Hoàng", 8),
            ("Đức", 7),
            ("Anh", 7),
            ("Bảo", 6),
            ("Nhật", 6),
            ("Thành", 6),
            ("Hữu", 5),
            ("Tuấn", 4),
            ("Đăng", 3),
            ("Khánh", 3),
        ]
    ),
    ("female", True): Weighted(
        [
            ("Thị", 65),
            ("Ngọc", 8),
            ("Thanh", 6),
            ("Kim", 6),
            ("Thu", 5),
            ("Mỹ", 4),
            ("Phương", 3),
            ("Hồng", 3),
        ]
    ),
    ("female", False): Weighted(
        [
            ("Thị", 12),
            ("Ngọc", 14),
            ("Bảo", 10),
            ("Minh", 8),
            ("Khánh", 8),
            ("Phương", 8),
            ("Gia", 6),
            ("Thanh", 6),
            ("Thùy", 6),
            ("Mỹ", 6),
            ("Hoài", 4),
            ("Diễm", 4),
            ("Quỳnh", 4),
        ]
    ),
}
_SECOND_MIDDLE = {
    "male": ["Minh", "Quốc", "Thanh", "Hoàng", "Gia", "Anh"],
    "female": ["Ánh", "Minh", "Ngọc", "Thanh", "Hồng", "Kim", "Bảo"],
}
_GIVEN = {
    "male": [
        "An", "Bảo", "Bình", "Cường", "Dũng", "Duy", "Đạt", "Đức", "Hải", "Hiếu", "Hòa",
        "Hoàng", "Hùng", "Huy", "Khang", "Khoa", "Khôi", "Kiên", "Long", "Lộc", "Minh", "Nam",
        "Nghĩa", "Nhân", "Phát", "Phong", "Phúc", "Quân", "Quang", "Sơn", "Tài", "Tâm",
        "Thắng", "Thành", "Thịnh", "Toàn", "Trí", "Trung", "Tuấn", "Tùng", "Việt", "Vinh", "Vũ",
        "Hậu", "Lợi", "Tín",
    ],
    "female": [
        "Anh", "Ánh", "Chi", "Diệp", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa",
        "Hương", "Huyền", "Lan", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Ngọc", "Nhi",
        "Nhung", "Oanh", "Phương", "Quỳnh", "Tâm", "Thảo", "Thu", "Thủy", "Trâm", "Trang",
        "Trinh", "Tuyết", "Uyên", "Vân", "Vy", "Yến", "Xuân", "Hồng", "Lệ", "Cúc",
    ],
}  # fmt: skip

# Age pyramids (per cent by five-year band from 0), resident and migrant populations.
_AGE_BANDS_ALL = [6, 7, 7, 6, 8, 9.5, 9.5, 9, 8, 7, 6, 5, 4.5, 3.5, 2, 1.2, 0.6, 0.4]
_AGE_BANDS_MIGRANT = [4, 3, 3, 6, 16, 17, 14, 11, 8, 6, 4.5, 3.5, 2, 1, 0.5, 0.3, 0.1, 0.1]
AGES_ALL: Weighted[int] = Weighted([(5 * i, w) for i, w in enumerate(_AGE_BANDS_ALL)])
AGES_MIGRANT: Weighted[int] = Weighted([(5 * i, w) for i, w in enumerate(_AGE_BANDS_MIGRANT)])

# Mobile prefixes of the Vietnamese carriers (10-digit numbers).
_PHONE_PREFIXES = [
    "086", "096", "097", "098", "032", "033", "034", "035", "036", "037", "038", "039",
    "089", "090", "093", "070", "076", "077", "078", "079",
    "088", "091", "094", "081", "082", "083", "084", "085",
    "092", "056", "058",
]  # fmt: skip


def pick_sex(rng: random.Random) -> str:
    return "male" if rng.random() < 0.49 else "female"


def full_name(
    rng: random.Random, sex: str, birth_year: int, family: str | None = None
) -> tuple[str, str]:
    """(full name, family name): family, one or two middle names, given name."""
    family = family or FAMILY_NAMES.pick(rng)
    middle = _MIDDLE[(sex, birth_year < 1980)].pick(rng)
    parts = [family, middle]
    if rng.random() < 0.15:
        second = rng.choice(_SECOND_MIDDLE[sex])
        if second != middle:
            parts.append(second)
    given = rng.choice(_GIVEN[sex])
    if given == parts[-1]:
        given = rng.choice(_GIVEN[sex])
    parts.append(given)
    return " ".join(parts), family


def birth_date(rng: random.Random, on: dt.date, ages: Weighted[int] = AGES_ALL) -> dt.date:
    """A birth date for someone drawn from the age pyramid ``ages``, alive on ``on``."""
    age = ages.pick(rng) + rng.randrange(5)
    days = age * 365 + rng.randrange(365)
    return on - dt.timedelta(days=days)


def sex_century_digit(sex: str, year: int) -> int:
    """The CCCD's fourth digit: 0/1 male/female born 1900-1999, 2/3 born 2000-2099."""
    if not 1900 <= year <= 2099:
        raise DataError("birth_date: expected a year between 1900 and 2099 for a CCCD")
    return (0 if year < 2000 else 2) + (1 if sex == "female" else 0)


class CitizenIds:
    """Issues distinct 12-digit CCCD numbers, deterministically for a seed.

    Within each (sex-century digit, birth year) bucket the n-th number issued is
    ``(a * n + b) mod 10**6`` for odd ``a`` not divisible by 5 (a permutation of the six-digit
    space), with ``a`` and ``b`` drawn from the seed and the bucket.
    """

    def __init__(self, seed: object, province: str = HCMC_PROVINCE) -> None:
        if len(province) != 3 or not province.isdigit():
            raise DataError("province: expected a three-digit province code")
        self.seed = seed
        self.province = province
        self._buckets: dict[tuple[int, int], list[int]] = {}

    def _bucket(self, digit: int, yy: int) -> list[int]:
        found = self._buckets.get((digit, yy))
        if found is None:
            rng = random.Random(f"cccd:{self.seed}:{self.province}:{digit}:{yy}")
            a = rng.randrange(_SUFFIX_SPACE // 10) * 10 + rng.choice((1, 3, 7, 9))
            found = [a, rng.randrange(_SUFFIX_SPACE), 0]
            self._buckets[(digit, yy)] = found
        return found

    def issue(self, sex: str, born: dt.date) -> str:
        digit = sex_century_digit(sex, born.year)
        yy = born.year % 100
        bucket = self._bucket(digit, yy)
        a, b, count = bucket
        if count >= _SUFFIX_SPACE:
            raise DataError("citizen_id: more than a million people in one birth-year bucket")
        bucket[2] = count + 1
        return f"{self.province}{digit}{yy:02d}{(a * count + b) % _SUFFIX_SPACE:06d}"


def phone_number(rng: random.Random) -> str:
    return rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10_000_000):07d}"
