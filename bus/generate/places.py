"""Street addresses in real wards: house number, street of that ward or district, ward name.

District 1's wards (hcmc-2024 codes 26734-26761) have their own street lists; Bình Tân's wards
share the district's main roads; other units use the numbered streets (``Đường số 7``) that
most newer HCMC neighbourhoods have. A 2025 ward code uses the streets of the 2024 wards it
was formed from (through the hierarchy's code mapping).
"""

from __future__ import annotations

import random
from functools import lru_cache

from bus.units import Hierarchy, load_hierarchy

_DISTRICT_1 = {
    "26734": [  # Tân Định
        "Hai Bà Trưng", "Trần Quang Khải", "Trần Khắc Chân", "Nguyễn Hữu Cầu", "Đinh Công Tráng",
        "Bà Lê Chân", "Trần Nhật Duật", "Nguyễn Phi Khanh", "Đặng Dung", "Lý Chính Thắng",
    ],
    "26737": [  # Đa Kao
        "Đinh Tiên Hoàng", "Nguyễn Đình Chiểu", "Điện Biên Phủ", "Phan Kế Bính", "Mai Thị Lựu",
        "Nguyễn Văn Giai", "Đặng Tất", "Huỳnh Khương Ninh", "Nguyễn Bỉnh Khiêm", "Võ Thị Sáu",
    ],
    "26740": [  # Bến Nghé
        "Đồng Khởi", "Nguyễn Huệ", "Lê Thánh Tôn", "Lê Duẩn", "Hai Bà Trưng", "Pasteur",
        "Tôn Đức Thắng", "Nguyễn Du", "Lý Tự Trọng", "Mạc Thị Bưởi", "Thái Văn Lung",
    ],
    "26743": [  # Bến Thành
        "Lê Lợi", "Lê Thánh Tôn", "Nam Kỳ Khởi Nghĩa", "Trương Định", "Nguyễn Thị Minh Khai",
        "Lê Lai", "Phạm Hồng Thái", "Thủ Khoa Huân", "Nguyễn An Ninh", "Lưu Văn Lang",
    ],
    "26746": [  # Nguyễn Thái Bình
        "Hàm Nghi", "Phó Đức Chính", "Nguyễn Công Trứ", "Nguyễn Thái Bình", "Yersin", "Ký Con",
        "Calmette", "Lê Thị Hồng Gấm", "Nam Kỳ Khởi Nghĩa", "Tôn Thất Đạm",
    ],
    "26749": [  # Phạm Ngũ Lão
        "Phạm Ngũ Lão", "Bùi Viện", "Đề Thám", "Đỗ Quang Đẩu", "Nguyễn Trãi", "Trần Hưng Đạo",
        "Cống Quỳnh", "Nguyễn Thái Học", "Tôn Thất Tùng",
    ],
    "26752": [  # Cầu Ông Lãnh
        "Nguyễn Thái Học", "Trần Hưng Đạo", "Yersin", "Ký Con", "Võ Văn Kiệt", "Lê Thị Hồng Gấm",
        "Nguyễn Công Trứ", "Cô Giang",
    ],
    "26755": [  # Cô Giang
        "Cô Giang", "Cô Bắc", "Đề Thám", "Trần Đình Xu", "Hồ Hảo Hớn", "Nguyễn Khắc Nhu",
        "Trần Hưng Đạo", "Nguyễn Cảnh Chân",
    ],
    "26758": [  # Nguyễn Cư Trinh
        "Nguyễn Cư Trinh", "Trần Đình Xu", "Nguyễn Trãi", "Trần Hưng Đạo", "Nguyễn Văn Cừ",
        "Cống Quỳnh", "Nguyễn Cảnh Chân", "Lê Thị Riêng",
    ],
    "26761": [  # Cầu Kho
        "Trần Hưng Đạo", "Trần Đình Xu", "Nguyễn Khắc Nhu", "Nguyễn Cảnh Chân", "Võ Văn Kiệt",
        "Nguyễn Văn Cừ", "Hồ Hảo Hớn", "Cô Bắc",
    ],
}  # fmt: skip

_BINH_TAN = [
    "Tên Lửa", "Kinh Dương Vương", "Tỉnh lộ 10", "Hương lộ 2", "Mã Lò", "Lê Văn Quới",
    "Bình Long", "Tân Kỳ Tân Quý", "Hồ Học Lãm", "An Dương Vương", "Lê Trọng Tấn", "Gò Xoài",
    "Lê Đình Cẩn", "Vành đai Trong", "Trần Văn Giàu", "Phan Anh", "Ao Đôi", "Lô Tư",
    "Bình Trị Đông", "Quốc lộ 1A", "Đường số 1", "Đường số 7", "Đường số 14", "Đường số 19",
]  # fmt: skip
_BINH_TAN_DISTRICT = "777"

_COMMON = ["Lê Văn Sỹ", "Nguyễn Văn Linh", "Phan Văn Trị", "Lê Quang Định", "Quang Trung"]
_NUMBERED = [f"Đường số {i}" for i in range(1, 31)]


@lru_cache(maxsize=512)
def _streets_2024(code: str) -> tuple[str, ...]:
    if code in _DISTRICT_1:
        return tuple(_DISTRICT_1[code])
    h = load_hierarchy("hcmc-2024")
    if code in h and any(u.code == _BINH_TAN_DISTRICT for u in h.ancestors(code)):
        return tuple(_BINH_TAN)
    return ()


def streets_for(h: Hierarchy, code: str) -> tuple[str, ...]:
    """Street names for addresses in unit ``code`` of hierarchy ``h``."""
    found = _streets_2024(code) if h.name == "hcmc-2024" else ()
    if not found:
        old = sorted({m.old for m in h.mappings if m.new == code})
        merged: list[str] = []
        for old_code in old:
            merged.extend(s for s in _streets_2024(old_code) if s not in merged)
        found = tuple(merged)
    return found or tuple(_NUMBERED + _COMMON)


def house_number(rng: random.Random) -> str:
    """``45``, ``45A``, ``45/12``, ``45/12/3`` or ``45 Bis``, in HCMC proportions."""
    main = rng.randint(1, 350)
    draw = rng.random()
    if draw < 0.45:
        return str(main)
    if draw < 0.50:
        return f"{main}{rng.choice('ABC')}"
    if draw < 0.52:
        return f"{main} Bis"
    if draw < 0.88:
        return f"{main}/{rng.randint(1, 60)}"
    return f"{main}/{rng.randint(1, 60)}/{rng.randint(1, 20)}"


def address(rng: random.Random, streets: tuple[str, ...], ward_name: str) -> str:
    """``45/12 Trần Khắc Chân, Phường Tân Định``."""
    return f"{house_number(rng)} {rng.choice(streets)}, {ward_name}"
